// AVX2 + FMA3 vectors for the tile templates. Include only from *_avx2.cc.
#pragma once
#include <immintrin.h>

namespace dac {
namespace tiles {
namespace {

struct IsaAvx2 {
  using V = __m256;
  static constexpr const char* kName = "avx2";
  static constexpr int W = 8;
  // 6 x 16 micro-tile: 12 of the 16 ymm registers accumulate.
  static constexpr int MR = 6, NV = 2;
  static constexpr int DWP = 2, DWJ = 4;
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V zero() { return _mm256_setzero_ps(); }
  static V fma(V a, V b, V acc) { return _mm256_fmadd_ps(a, b, acc); }
  static V max(V x, V lo) { return _mm256_max_ps(lo, x); }
  static V min(V x, V hi) { return _mm256_min_ps(hi, x); }
};

}  // namespace
}  // namespace tiles
}  // namespace dac
