// AArch64 NEON vectors for the tile templates. Include only from *_neon.cc.
#pragma once
#include <arm_neon.h>

namespace dac {
namespace tiles {
namespace {

struct IsaNeon {
  using V = float32x4_t;
  static constexpr const char* kName = "neon";
  static constexpr int W = 4;
  // 6 x 16 micro-tile: 24 of the 32 q registers accumulate.
  static constexpr int MR = 6, NV = 4;
  static constexpr int DWP = 4, DWJ = 4;
  static V load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, V v) { vst1q_f32(p, v); }
  static V set1(float x) { return vdupq_n_f32(x); }
  static V zero() { return vdupq_n_f32(0.f); }
  static V fma(V a, V b, V acc) { return vfmaq_f32(acc, a, b); }
  // NEON's fmax/fmin return NaN for a NaN operand, like the reference.
  static V max(V x, V lo) { return vmaxq_f32(x, lo); }
  static V min(V x, V hi) { return vminq_f32(x, hi); }
};

}  // namespace
}  // namespace tiles
}  // namespace dac
