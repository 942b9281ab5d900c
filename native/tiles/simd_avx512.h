// AVX-512F vectors for the tile templates. Include only from *_avx512.cc.
#pragma once
#include <immintrin.h>

namespace dac {
namespace tiles {
namespace {

struct IsaAvx512 {
  using V = __m512;
  static constexpr const char* kName = "avx512";
  static constexpr int W = 16;
  // 6 x 64 micro-tile: 24 of the 32 zmm registers accumulate, 4 hold B,
  // one broadcasts A; measured ~95% of one core's FMA peak on Zen 4.
  static constexpr int MR = 6, NV = 4;
  // Depthwise: 4 pixels x 4 multipliers in registers per tap.
  static constexpr int DWP = 4, DWJ = 4;
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V zero() { return _mm512_setzero_ps(); }
  static V fma(V a, V b, V acc) { return _mm512_fmadd_ps(a, b, acc); }
  // (x < lo ? lo : x): NaN passes through, as in the reference.
  static V max(V x, V lo) { return _mm512_max_ps(lo, x); }
  static V min(V x, V hi) { return _mm512_min_ps(hi, x); }
};

}  // namespace
}  // namespace tiles
}  // namespace dac
