// The only N-API file: unpacks JS arguments into the core's params structs
// and turns Status errors into JS exceptions. No computation lives here.
#include <napi.h>

#include <cmath>
#include <climits>
#include <string>
#include <vector>

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "common/version.h"
#include "conv/conv.h"
#include "decompose/decompose.h"
#include "dwpw/dwpw.h"
#include "linalg/linalg.h"

namespace {

// Reads typed fields off one JS object, remembering the first problem so a
// caller can check once after reading everything.
class FieldReader {
 public:
  FieldReader(Napi::Object obj, std::string what) : obj_(obj), what_(std::move(what)) {}

  int Int(const char* key) {
    Napi::Value v = Get(key);
    if (failed()) return 0;
    if (!v.IsNumber()) return Fail(key, "must be a number"), 0;
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < INT_MIN || d > INT_MAX)
      return Fail(key, "must be a 32-bit integer"), 0;
    return static_cast<int>(d);
  }

  // A Float32Array field; null/undefined allowed only when nullable.
  float* Floats(const char* key, int64_t* length, bool nullable = false) {
    *length = 0;
    Napi::Value v = Get(key);
    if (failed()) return nullptr;
    if (nullable && (v.IsNull() || v.IsUndefined())) return nullptr;
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      return Fail(key, "must be a Float32Array"), nullptr;
    Napi::Float32Array a = v.As<Napi::Float32Array>();
    *length = static_cast<int64_t>(a.ElementLength());
    return a.Data();
  }

  double Number(const char* key) {
    Napi::Value v = Get(key);
    if (failed()) return 0;
    if (!v.IsNumber()) return Fail(key, "must be a number"), 0;
    return v.As<Napi::Number>().DoubleValue();
  }

  bool Bool(const char* key) {
    Napi::Value v = Get(key);
    if (failed()) return false;
    if (!v.IsBoolean()) return Fail(key, "must be a boolean"), false;
    return v.As<Napi::Boolean>().Value();
  }

  // A Float64Array field.
  double* Doubles(const char* key, int64_t* length) {
    *length = 0;
    Napi::Value v = Get(key);
    if (failed()) return nullptr;
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      return Fail(key, "must be a Float64Array"), nullptr;
    Napi::Float64Array a = v.As<Napi::Float64Array>();
    *length = static_cast<int64_t>(a.ElementLength());
    return a.Data();
  }

  Napi::Object Object(const char* key) {
    Napi::Value v = Get(key);
    if (failed()) return Napi::Object();
    if (!v.IsObject()) return Fail(key, "must be an object"), Napi::Object();
    return v.As<Napi::Object>();
  }

  bool failed() const { return !error_.empty() || obj_.Env().IsExceptionPending(); }
  const std::string& error() const { return error_; }

 private:
  Napi::Value Get(const char* key) {
    if (failed()) return Napi::Value();
    Napi::Value v = obj_.Get(key);
    return obj_.Env().IsExceptionPending() ? Napi::Value() : v;
  }
  void Fail(const char* key, const char* why) {
    if (error_.empty()) error_ = what_ + ": '" + key + "' " + why;
  }

  Napi::Object obj_;
  std::string what_;
  std::string error_;
};

Napi::Value Throw(Napi::Env env, const std::string& message) {
  if (!env.IsExceptionPending()) Napi::Error::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool CheckObjectArg(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  if (info.Length() > i && info[i].IsObject()) return true;
  Throw(info.Env(), std::string(fn) + ": argument " + std::to_string(i + 1) + " must be an object");
  return false;
}

void ReadWeights(FieldReader& r, dac::ConvWeights* w) {
  w->data = r.Floats("weights", &w->length);
  w->layout = static_cast<dac::WeightLayout>(r.Int("layout"));
  w->n = r.Int("n");
  w->c = r.Int("c");
  w->kh = r.Int("kh");
  w->kw = r.Int("kw");
}

dac::DacParams ReadDac(FieldReader& r) {
  dac::DacParams p;
  ReadWeights(r, &p.w);
  p.rank = r.Int("rank");
  p.depthwise = r.Floats("depthwise", &p.depthwise_length);
  p.pointwise = r.Floats("pointwise", &p.pointwise_length);
  p.singular = r.Floats("singular", &p.singular_length, true);
  p.threads = r.Int("threads");
  return p;
}

Napi::Value DecomposeDac(const Napi::CallbackInfo& info) {
  if (!CheckObjectArg(info, 0, "decomposeDac")) return info.Env().Undefined();
  FieldReader r(info[0].As<Napi::Object>(), "decomposeDac");
  dac::DacParams p = ReadDac(r);
  if (r.failed()) return Throw(info.Env(), r.error());
  dac::Status s = dac::decompose_dac(p);
  return s.ok ? info.Env().Undefined() : Throw(info.Env(), s.message);
}

Napi::Value DecomposeDacBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsNumber())
    return Throw(env, "decomposeDacBatch: expected (layers: object[], threads: number)");
  Napi::Array layers = info[0].As<Napi::Array>();
  std::vector<dac::DacParams> params;
  params.reserve(layers.Length());
  for (uint32_t i = 0; i < layers.Length(); ++i) {
    Napi::Value v = layers.Get(i);
    if (env.IsExceptionPending()) return env.Undefined();
    if (!v.IsObject()) return Throw(env, "decomposeDacBatch: layer " + std::to_string(i) + " must be an object");
    FieldReader r(v.As<Napi::Object>(), "decomposeDacBatch: layer " + std::to_string(i));
    params.push_back(ReadDac(r));
    if (r.failed()) return Throw(env, r.error());
  }
  double threads = info[1].As<Napi::Number>().DoubleValue();
  if (!(threads >= 1 && threads <= 1024)) return Throw(env, "decomposeDacBatch: 'threads' must be in 1..1024");
  dac::Status s = dac::decompose_dac_batch(params.data(), static_cast<int>(params.size()), static_cast<int>(threads));
  return s.ok ? env.Undefined() : Throw(env, s.message);
}

Napi::Value DecomposeSpatial(const Napi::CallbackInfo& info) {
  if (!CheckObjectArg(info, 0, "decomposeSpatial")) return info.Env().Undefined();
  FieldReader r(info[0].As<Napi::Object>(), "decomposeSpatial");
  dac::SpatialParams p;
  ReadWeights(r, &p.w);
  p.width = r.Int("width");
  p.vertical = r.Floats("vertical", &p.vertical_length);
  p.horizontal = r.Floats("horizontal", &p.horizontal_length);
  p.singular = r.Floats("singular", &p.singular_length, true);
  p.threads = r.Int("threads");
  if (r.failed()) return Throw(info.Env(), r.error());
  dac::Status s = dac::decompose_spatial(p);
  return s.ok ? info.Env().Undefined() : Throw(info.Env(), s.message);
}

Napi::Value DecomposeChannel(const Napi::CallbackInfo& info) {
  if (!CheckObjectArg(info, 0, "decomposeChannel")) return info.Env().Undefined();
  FieldReader r(info[0].As<Napi::Object>(), "decomposeChannel");
  dac::ChannelParams p;
  ReadWeights(r, &p.w);
  p.width = r.Int("width");
  p.first = r.Floats("first", &p.first_length);
  p.second = r.Floats("second", &p.second_length);
  p.singular = r.Floats("singular", &p.singular_length, true);
  p.threads = r.Int("threads");
  if (r.failed()) return Throw(info.Env(), r.error());
  dac::Status s = dac::decompose_channel(p);
  return s.ok ? info.Env().Undefined() : Throw(info.Env(), s.message);
}

void ReadGeometry(FieldReader& parent, dac::ConvGeometry* g) {
  Napi::Object o = parent.Object("geometry");
  if (parent.failed()) return;
  FieldReader r(o, "geometry");
  g->batch = r.Int("batch");
  g->in_h = r.Int("inH");
  g->in_w = r.Int("inW");
  g->in_c = r.Int("inC");
  g->kh = r.Int("kh");
  g->kw = r.Int("kw");
  g->stride_h = r.Int("strideH");
  g->stride_w = r.Int("strideW");
  g->dilation_h = r.Int("dilationH");
  g->dilation_w = r.Int("dilationW");
  g->pad_top = r.Int("padTop");
  g->pad_left = r.Int("padLeft");
  g->pad_bottom = r.Int("padBottom");
  g->pad_right = r.Int("padRight");
  g->out_h = r.Int("outH");
  g->out_w = r.Int("outW");
  g->out_c = r.Int("outC");
  if (r.failed() && !r.error().empty()) Throw(o.Env(), r.error());
}

// Optional second argument: a variant name, or null for the CPU's best.
bool ReadVariant(const Napi::CallbackInfo& info, std::string* variant) {
  if (info.Length() < 2 || info[1].IsNull() || info[1].IsUndefined()) return true;
  if (!info[1].IsString()) return Throw(info.Env(), "variant must be a string or null"), false;
  *variant = info[1].As<Napi::String>().Utf8Value();
  return true;
}

Napi::Value DwPw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckObjectArg(info, 0, "dwpw")) return env.Undefined();
  FieldReader r(info[0].As<Napi::Object>(), "dwpw");
  dac::DwPwParams p;
  ReadGeometry(r, &p.g);
  p.rank = r.Int("rank");
  p.input = r.Floats("input", &p.input_length);
  p.depthwise = r.Floats("depthwise", &p.depthwise_length);
  p.pointwise = r.Floats("pointwise", &p.pointwise_length);
  p.bias = r.Floats("bias", &p.bias_length, true);
  p.output = r.Floats("output", &p.output_length);
  p.activation = static_cast<dac::Activation>(r.Int("activation"));
  p.threads = r.Int("threads");
  if (r.failed()) return Throw(env, r.error());
  std::string variant;
  if (!ReadVariant(info, &variant)) return env.Undefined();
  dac::Status s = variant.empty() ? dac::dwpw_forward(p) : dac::dwpw_forward_variant(p, variant.c_str());
  return s.ok ? env.Undefined() : Throw(env, s.message);
}

Napi::Value Conv2D(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckObjectArg(info, 0, "conv2d")) return env.Undefined();
  FieldReader r(info[0].As<Napi::Object>(), "conv2d");
  dac::Conv2DParams p;
  ReadGeometry(r, &p.g);
  p.input = r.Floats("input", &p.input_length);
  p.weights = r.Floats("weights", &p.weights_length);
  p.bias = r.Floats("bias", &p.bias_length, true);
  p.output = r.Floats("output", &p.output_length);
  p.activation = static_cast<dac::Activation>(r.Int("activation"));
  p.threads = r.Int("threads");
  if (r.failed()) return Throw(env, r.error());
  std::string variant;
  if (!ReadVariant(info, &variant)) return env.Undefined();
  dac::Status s = variant.empty() ? dac::conv2d_forward(p) : dac::conv2d_forward_variant(p, variant.c_str());
  return s.ok ? env.Undefined() : Throw(env, s.message);
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  if (!CheckObjectArg(info, 0, "gemm")) return info.Env().Undefined();
  FieldReader r(info[0].As<Napi::Object>(), "gemm");
  dac::GemmParams p;
  p.m = r.Int("m");
  p.n = r.Int("n");
  p.k = r.Int("k");
  p.a = r.Doubles("a", &p.a_length);
  p.trans_a = r.Bool("transA");
  p.b = r.Doubles("b", &p.b_length);
  p.trans_b = r.Bool("transB");
  p.c = r.Doubles("c", &p.c_length);
  if (r.failed()) return Throw(info.Env(), r.error());
  dac::Status s = dac::gemm(p);
  return s.ok ? info.Env().Undefined() : Throw(info.Env(), s.message);
}

Napi::Value Cholesky(const Napi::CallbackInfo& info) {
  if (!CheckObjectArg(info, 0, "cholesky")) return info.Env().Undefined();
  FieldReader r(info[0].As<Napi::Object>(), "cholesky");
  dac::CholeskyParams p;
  p.m = r.Int("m");
  p.a = r.Doubles("a", &p.a_length);
  p.ridge = r.Number("ridge");
  if (r.failed()) return Throw(info.Env(), r.error());
  dac::Status s = dac::cholesky(p);
  return s.ok ? info.Env().Undefined() : Throw(info.Env(), s.message);
}

Napi::Value TriangularSolve(const Napi::CallbackInfo& info) {
  if (!CheckObjectArg(info, 0, "triangularSolve")) return info.Env().Undefined();
  FieldReader r(info[0].As<Napi::Object>(), "triangularSolve");
  dac::TriangularSolveParams p;
  p.m = r.Int("m");
  p.l = r.Doubles("l", &p.l_length);
  p.k = r.Int("k");
  p.rows = r.Int("rows");
  p.b = r.Doubles("b", &p.b_length);
  p.transpose = r.Bool("transpose");
  if (r.failed()) return Throw(info.Env(), r.error());
  dac::Status s = dac::triangular_solve(p);
  return s.ok ? info.Env().Undefined() : Throw(info.Env(), s.message);
}

Napi::Value SymmetricEigenvalues(const Napi::CallbackInfo& info) {
  if (!CheckObjectArg(info, 0, "symmetricEigenvalues")) return info.Env().Undefined();
  FieldReader r(info[0].As<Napi::Object>(), "symmetricEigenvalues");
  dac::SymmetricEigenvaluesParams p;
  p.m = r.Int("m");
  p.a = r.Doubles("a", &p.a_length);
  p.values = r.Doubles("values", &p.values_length);
  if (r.failed()) return Throw(info.Env(), r.error());
  dac::Status s = dac::symmetric_eigenvalues(p);
  return s.ok ? info.Env().Undefined() : Throw(info.Env(), s.message);
}

std::string IsaString() {
  const dac::CpuFeatures& f = dac::cpu_features();
  std::string isa;
#if defined(__x86_64__)
  isa = "x86_64";
#elif defined(__aarch64__)
  isa = "aarch64";
#else
  isa = "other";
#endif
  if (f.avx512f) isa += " avx512f";
  if (f.avx2_fma) isa += " avx2 fma";
  if (f.sse41) isa += " sse4.1";
  if (f.neon) isa += " neon";
  return isa;
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", DAC_CORE_VERSION);
  o.Set("isa", IsaString());
  o.Set("dwpwVariant", dac::dwpw_best_variant());
  o.Set("dwpwVariants", dac::dwpw_available_variants());
  o.Set("conv2dVariant", dac::conv2d_best_variant());
  o.Set("conv2dVariants", dac::conv2d_available_variants());
  o.Set("hardwareThreads", dac::hardware_threads());
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("decomposeDac", Napi::Function::New(env, DecomposeDac));
  exports.Set("decomposeDacBatch", Napi::Function::New(env, DecomposeDacBatch));
  exports.Set("decomposeSpatial", Napi::Function::New(env, DecomposeSpatial));
  exports.Set("decomposeChannel", Napi::Function::New(env, DecomposeChannel));
  exports.Set("dwpw", Napi::Function::New(env, DwPw));
  exports.Set("conv2d", Napi::Function::New(env, Conv2D));
  exports.Set("gemm", Napi::Function::New(env, Gemm));
  exports.Set("cholesky", Napi::Function::New(env, Cholesky));
  exports.Set("triangularSolve", Napi::Function::New(env, TriangularSolve));
  exports.Set("symmetricEigenvalues", Napi::Function::New(env, SymmetricEigenvalues));
  return exports;
}

}  // namespace

NODE_API_MODULE(dac_addon, Init)
