// WASM entry points over the same core and the same op tables (native/ops.h)
// as the addon: JS reads the tables (dac_op), writes an op's params struct
// into module memory at their offsets and calls dac_run. Strings returned
// here stay valid until the next call that returns one.
#include <emscripten/emscripten.h>

#include <string>

#include "../native/common/version.h"
#include "../native/ops.h"

namespace {

std::string g_text;

const char* Text(std::string s) {
  g_text = std::move(s);
  return g_text.c_str();
}

}  // namespace

extern "C" {

EMSCRIPTEN_KEEPALIVE const char* dac_version() { return DAC_CORE_VERSION; }
EMSCRIPTEN_KEEPALIVE const char* dac_isa() { return Text(dac::ops::isa_description()); }
EMSCRIPTEN_KEEPALIVE const char* dac_variants() { return Text(dac::ops::kernel_variants()); }
EMSCRIPTEN_KEEPALIVE int dac_op_count() { return dac::ops::kOpCount; }
EMSCRIPTEN_KEEPALIVE const char* dac_op(int index) {
  return index >= 0 && index < dac::ops::kOpCount ? Text(dac::ops::describe(*dac::ops::kOps[index])) : nullptr;
}

// 0 on success; otherwise the error is dac_last_error().
EMSCRIPTEN_KEEPALIVE int dac_run(int index, const void* params) {
  if (index < 0 || index >= dac::ops::kOpCount) return Text("dac_run: no op " + std::to_string(index)), 1;
  dac::Status s = dac::ops::kOps[index]->run(params);
  if (s.ok) return 0;
  Text(s.message);
  return 1;
}

EMSCRIPTEN_KEEPALIVE const char* dac_last_error() { return g_text.c_str(); }

}  // extern "C"
