// SSE4.1 vectors for the tile templates (x86-64 CPUs without AVX2; no FMA,
// so multiply then add). Include only from *_sse41.cc.
#pragma once
#include <smmintrin.h>

namespace dac {
namespace tiles {
namespace {

struct IsaSse41 {
  using V = __m128;
  static constexpr const char* kName = "sse41";
  static constexpr int W = 4;
  // 4 x 8 micro-tile: 8 of the 16 xmm registers accumulate.
  static constexpr int MR = 4, NV = 2;
  static constexpr int DWP = 2, DWJ = 4;
  static V load(const float* p) { return _mm_loadu_ps(p); }
  static void store(float* p, V v) { _mm_storeu_ps(p, v); }
  static V set1(float x) { return _mm_set1_ps(x); }
  static V zero() { return _mm_setzero_ps(); }
  static V fma(V a, V b, V acc) { return _mm_add_ps(acc, _mm_mul_ps(a, b)); }
  static V max(V x, V lo) { return _mm_max_ps(lo, x); }
  static V min(V x, V hi) { return _mm_min_ps(hi, x); }
};

}  // namespace
}  // namespace tiles
}  // namespace dac
