// WebAssembly SIMD128 vectors for the tile templates (no fused multiply-add
// in baseline SIMD128: multiply then add). Include only from *_wasm_simd.cc.
#pragma once
#include <wasm_simd128.h>

namespace dac {
namespace tiles {
namespace {

struct IsaWasmSimd {
  using V = v128_t;
  static constexpr const char* kName = "wasm_simd";
  static constexpr int W = 4;
  // 4 x 8 micro-tile: engines map v128 onto 16 xmm registers on x86.
  static constexpr int MR = 4, NV = 2;
  static constexpr int DWP = 2, DWJ = 4;
  static V load(const float* p) { return wasm_v128_load(p); }
  static void store(float* p, V v) { wasm_v128_store(p, v); }
  static V set1(float x) { return wasm_f32x4_splat(x); }
  static V zero() { return wasm_f32x4_splat(0.f); }
  static V fma(V a, V b, V acc) { return wasm_f32x4_add(acc, wasm_f32x4_mul(a, b)); }
  // pmax/pmin are the one-instruction (x < lo ? lo : x) forms.
  static V max(V x, V lo) { return wasm_f32x4_pmax(x, lo); }
  static V min(V x, V hi) { return wasm_f32x4_pmin(x, hi); }
};

}  // namespace
}  // namespace tiles
}  // namespace dac
