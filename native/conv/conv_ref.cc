#include "conv_ref.h"

#include <cstdint>

#include "../common/parallel.h"

namespace dac {

void conv2d_reference(const Conv2DParams& p) {
  const ConvGeometry& g = p.g;
  const int64_t T = static_cast<int64_t>(g.kh) * g.kw;
  const float lo = 0.f, hi = p.activation == Activation::Relu6 ? 6.f : __builtin_huge_valf();
  parallel_for(static_cast<int64_t>(g.batch) * g.out_h, p.threads, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / g.out_h;
      const int oh = static_cast<int>(row % g.out_h);
      for (int ow = 0; ow < g.out_w; ++ow) {
        float* y = p.output + ((b * g.out_h + oh) * g.out_w + ow) * g.out_c;
        for (int o = 0; o < g.out_c; ++o) {
          double s = p.bias ? p.bias[o] : 0.0;
          for (int dh = 0; dh < g.kh; ++dh) {
            const int ih = oh * g.stride_h - g.pad_top + dh * g.dilation_h;
            if (ih < 0 || ih >= g.in_h) continue;
            for (int dw = 0; dw < g.kw; ++dw) {
              const int iw = ow * g.stride_w - g.pad_left + dw * g.dilation_w;
              if (iw < 0 || iw >= g.in_w) continue;
              const float* x = p.input + ((b * g.in_h + ih) * g.in_w + iw) * g.in_c;
              // OIHW: weight (o, i, dh, dw).
              const float* w = p.weights + static_cast<int64_t>(o) * g.in_c * T + dh * g.kw + dw;
              for (int i = 0; i < g.in_c; ++i) s += static_cast<double>(w[i * T]) * x[i];
            }
          }
          float v = static_cast<float>(s);
          if (p.activation != Activation::None) {
            v = v < lo ? lo : v;
            v = v > hi ? hi : v;
          }
          y[o] = v;
        }
      }
    }
  });
}

}  // namespace dac
