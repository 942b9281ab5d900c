// Fused depthwise(multiplier r) + pointwise convolution, NHWC float32:
//   y[b, oh, ow, o] = act(bias[o] + sum_{i,j} pw[o][i*r+j] *
//                       sum_{dh,dw} dwk[i*r+j][dh*kw+dw] * x[b, oh*sh - pt + dh*dh_, ow*sw - pl + dw*dw_, i])
// Weights are in the decomposition's canonical layout (see decompose.h).
#pragma once
#include <cstdint>

#include "../common/status.h"

namespace dac {

enum class Activation : int { None = 0, Relu = 1, Relu6 = 2 };

// Geometry shared by every conv kernel. Output size is derived by the caller
// (TS) and re-checked here: out = floor((in + pad_a + pad_b - dil*(k-1) - 1) / stride) + 1.
struct ConvGeometry {
  int batch = 1, in_h = 0, in_w = 0, in_c = 0;
  int kh = 1, kw = 1;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int out_h = 0, out_w = 0, out_c = 0;
};

struct DwPwParams {
  ConvGeometry g;
  int rank = 1;  // depth multiplier r
  const float* input = nullptr;      int64_t input_length = 0;      // [batch][in_h][in_w][in_c]
  const float* depthwise = nullptr;  int64_t depthwise_length = 0;  // [in_c*r][kh*kw]
  const float* pointwise = nullptr;  int64_t pointwise_length = 0;  // [out_c][in_c*r]
  const float* bias = nullptr;       int64_t bias_length = 0;       // [out_c] or null
  float* output = nullptr;           int64_t output_length = 0;     // [batch][out_h][out_w][out_c]
  Activation activation = Activation::None;
  int threads = 1;
  // Kernel variant by name ("ref", "sse41", "avx2", "avx512", "neon",
  // "wasm_simd"), or null for the best this CPU runs.
  const char* variant = nullptr;
};

// Checks the variant, the geometry and every length, then runs the kernel;
// errors if this CPU or build lacks the variant.
Status dwpw_forward(const DwPwParams& p);

// Variants this build and CPU can run, comma-separated, "ref" first and the
// default (the best) last.
const char* dwpw_variants();

}  // namespace dac
