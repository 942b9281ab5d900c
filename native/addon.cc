// The only N-API file: reads JS objects into the core's params structs
// through the op tables of ops.h and turns Status errors into JS exceptions.
// No computation lives here.
#include <napi.h>

#include <climits>
#include <cmath>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "common/allocator.h"
#include "common/parallel.h"
#include "common/version.h"
#include "ops.h"

namespace {

using dac::ops::Field;
using dac::ops::Kind;
using dac::ops::Op;

// A params struct in automatic storage, built by its op.
struct alignas(std::max_align_t) ParamsBuffer {
  unsigned char bytes[dac::ops::kMaxParamsSize];
};

// Fills one params struct from one JS object, field by field as the op's
// table says, stopping at the first problem. Variant names are copied into
// `names`, which must outlive the call.
class ParamsReader {
 public:
  ParamsReader(std::string what, std::deque<std::string>* names) : what_(std::move(what)), names_(names) {}

  bool Read(Napi::Object obj, const Op& op, void* params) {
    for (int i = 0; i < op.field_count && error_.empty(); ++i) ReadField(obj, op.fields[i], static_cast<char*>(params));
    return error_.empty() && !obj.Env().IsExceptionPending();
  }
  const std::string& error() const { return error_; }

 private:
  template <class T>
  static void Put(char* base, int32_t offset, T value) {
    std::memcpy(base + offset, &value, sizeof value);
  }

  // The property a dotted name leads to; an intermediate must be an object.
  bool Lookup(Napi::Object obj, const std::string& name, Napi::Value* out) {
    size_t start = 0;
    for (size_t dot; (dot = name.find('.', start)) != std::string::npos; start = dot + 1) {
      Napi::Value v = obj.Get(name.substr(start, dot - start));
      if (obj.Env().IsExceptionPending()) return false;
      if (!v.IsObject()) return Fail(name.substr(0, dot).c_str(), "must be an object");
      obj = v.As<Napi::Object>();
    }
    *out = obj.Get(name.substr(start));
    return !obj.Env().IsExceptionPending();
  }

  void ReadField(Napi::Object obj, const Field& f, char* base) {
    Napi::Value v;
    if (!Lookup(obj, f.name, &v)) return;
    switch (f.kind) {
      case Kind::Int: {
        if (!v.IsNumber()) return void(Fail(f.name, "must be a number"));
        const double d = v.As<Napi::Number>().DoubleValue();
        if (!std::isfinite(d) || d != std::floor(d) || d < INT_MIN || d > INT_MAX)
          return void(Fail(f.name, "must be a 32-bit integer"));
        return Put(base, f.offset, static_cast<int>(d));
      }
      case Kind::Number:
        if (!v.IsNumber()) return void(Fail(f.name, "must be a number"));
        return Put(base, f.offset, v.As<Napi::Number>().DoubleValue());
      case Kind::Bool:
        if (!v.IsBoolean()) return void(Fail(f.name, "must be a boolean"));
        return Put(base, f.offset, v.As<Napi::Boolean>().Value());
      case Kind::Floats:
      case Kind::FloatsOrNull:
      case Kind::Doubles: {
        if (f.kind == Kind::FloatsOrNull && (v.IsNull() || v.IsUndefined())) {
          Put(base, f.offset, static_cast<void*>(nullptr));
          return Put(base, f.length_offset, int64_t{0});
        }
        const napi_typedarray_type want = f.kind == Kind::Doubles ? napi_float64_array : napi_float32_array;
        if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want)
          return void(Fail(f.name, f.kind == Kind::Doubles ? "must be a Float64Array" : "must be a Float32Array"));
        Napi::TypedArray a = v.As<Napi::TypedArray>();
        void* data = static_cast<char*>(a.ArrayBuffer().Data()) + a.ByteOffset();
        Put(base, f.offset, data);
        return Put(base, f.length_offset, static_cast<int64_t>(a.ElementLength()));
      }
      case Kind::Name:
        if (v.IsNull() || v.IsUndefined()) return Put(base, f.offset, static_cast<const char*>(nullptr));
        if (!v.IsString()) return void(Fail(f.name, "must be a string or null"));
        names_->push_back(v.As<Napi::String>().Utf8Value());
        return Put(base, f.offset, names_->back().c_str());
    }
  }

  bool Fail(const char* field, const char* why) {
    if (error_.empty()) error_ = what_ + ": '" + field + "' " + why;
    return false;
  }

  std::string what_;
  std::deque<std::string>* names_;
  std::string error_;
};

Napi::Value Throw(Napi::Env env, const std::string& message) {
  if (!env.IsExceptionPending()) Napi::Error::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value Done(Napi::Env env, const dac::Status& s) { return s.ok ? env.Undefined() : Throw(env, s.message); }

// Every op's function: (params: object) => undefined; the op rides in the
// function's data.
Napi::Value CallOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Op& op = *static_cast<const Op*>(info.Data());
  if (info.Length() < 1 || !info[0].IsObject()) return Throw(env, std::string(op.name) + ": argument 1 must be an object");
  ParamsBuffer params;
  op.construct(params.bytes);
  std::deque<std::string> names;
  ParamsReader r(op.name, &names);
  if (!r.Read(info[0].As<Napi::Object>(), op, params.bytes)) return Throw(env, r.error());
  return Done(env, op.run(params.bytes));
}

// (layers: decomposeDac params[], threads) => undefined; the layers share
// one call so the core can spread them over threads.
Napi::Value DecomposeDacBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsNumber())
    return Throw(env, "decomposeDacBatch: expected (layers: object[], threads: number)");
  const Op& op = dac::ops::kDecomposeDac;
  Napi::Array layers = info[0].As<Napi::Array>();
  std::vector<dac::DacParams> params(layers.Length());
  std::deque<std::string> names;
  for (uint32_t i = 0; i < layers.Length(); ++i) {
    Napi::Value v = layers.Get(i);
    if (env.IsExceptionPending()) return env.Undefined();
    const std::string what = "decomposeDacBatch: layer " + std::to_string(i);
    if (!v.IsObject()) return Throw(env, what + " must be an object");
    ParamsReader r(what, &names);
    if (!r.Read(v.As<Napi::Object>(), op, &params[i])) return Throw(env, r.error());
  }
  const double threads = info[1].As<Napi::Number>().DoubleValue();
  if (!(threads >= 1 && threads <= 1024)) return Throw(env, "decomposeDacBatch: 'threads' must be in 1..1024");
  return Done(env, dac::decompose_dac_batch(params.data(), static_cast<int>(params.size()), static_cast<int>(threads)));
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", DAC_CORE_VERSION);
  o.Set("isa", dac::ops::isa_description());
  o.Set("variants", dac::ops::kernel_variants());
  o.Set("hardwareThreads", dac::hardware_threads());
  return o;
}

// mapLargeAllocations(bytes): common/allocator.h, for the zoo command.
Napi::Value MapLargeAllocations(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double bytes = info.Length() == 1 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(bytes >= 0 && bytes <= double(INT_MAX) && std::floor(bytes) == bytes)) {
    return Throw(env, "mapLargeAllocations: expected (bytes: an integer in 0..2^31-1)");
  }
  return Napi::Boolean::New(env, dac::map_large_allocations(static_cast<std::size_t>(bytes)));
}

// The op tables as text (ops.h describe), for the loader's check.
Napi::Value Contract(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env(), dac::ops::kOpCount);
  for (int i = 0; i < dac::ops::kOpCount; ++i) out.Set(i, dac::ops::describe(*dac::ops::kOps[i]));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("contract", Napi::Function::New(env, Contract));
  exports.Set("decomposeDacBatch", Napi::Function::New(env, DecomposeDacBatch));
  exports.Set("mapLargeAllocations", Napi::Function::New(env, MapLargeAllocations));
  for (const Op* op : dac::ops::kOps)
    exports.Set(op->name, Napi::Function::New(env, CallOp, op->name, const_cast<Op*>(op)));
  return exports;
}

}  // namespace

NODE_API_MODULE(dac_addon, Init)
