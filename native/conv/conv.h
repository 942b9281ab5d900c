// Dense KxK convolution, NHWC float32, the "original layer" inside the same
// engine as the fused kernel, so original vs decomposed is measured fairly.
#pragma once
#include <cstdint>

#include "../common/status.h"
#include "../dwpw/dwpw.h"

namespace dac {

struct Conv2DParams {
  ConvGeometry g;
  const float* input = nullptr;   int64_t input_length = 0;   // [batch][in_h][in_w][in_c]
  const float* weights = nullptr; int64_t weights_length = 0; // OIHW [out_c][in_c][kh][kw]
  const float* bias = nullptr;    int64_t bias_length = 0;    // [out_c] or null
  float* output = nullptr;        int64_t output_length = 0;  // [batch][out_h][out_w][out_c]
  Activation activation = Activation::None;
  int threads = 1;
  const char* variant = nullptr;  // as DwPwParams::variant
};

// As dwpw_forward and dwpw_variants.
Status conv2d_forward(const Conv2DParams& p);
const char* conv2d_variants();

}  // namespace dac
