#include "dwpw_ref.h"

#include <cstdint>
#include <vector>

#include "../common/parallel.h"

namespace dac {

void dwpw_reference(const DwPwParams& p) {
  const ConvGeometry& g = p.g;
  const int r = p.rank, T = g.kh * g.kw, cr = g.in_c * r;
  const float lo = 0.f, hi = p.activation == Activation::Relu6 ? 6.f : __builtin_huge_valf();
  parallel_for(static_cast<int64_t>(g.batch) * g.out_h, p.threads, [&](int64_t begin, int64_t end) {
    std::vector<double> mid(static_cast<size_t>(cr));
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / g.out_h;
      const int oh = static_cast<int>(row % g.out_h);
      for (int ow = 0; ow < g.out_w; ++ow) {
        // Depthwise: channel i's r filters, each over the kh x kw window.
        for (int i = 0; i < g.in_c; ++i) {
          for (int j = 0; j < r; ++j) {
            const float* w = p.depthwise + (static_cast<int64_t>(i) * r + j) * T;
            double s = 0.0;
            for (int dh = 0; dh < g.kh; ++dh) {
              const int ih = oh * g.stride_h - g.pad_top + dh * g.dilation_h;
              if (ih < 0 || ih >= g.in_h) continue;
              for (int dw = 0; dw < g.kw; ++dw) {
                const int iw = ow * g.stride_w - g.pad_left + dw * g.dilation_w;
                if (iw < 0 || iw >= g.in_w) continue;
                const float x = p.input[((b * g.in_h + ih) * g.in_w + iw) * g.in_c + i];
                s += static_cast<double>(w[dh * g.kw + dw]) * x;
              }
            }
            mid[static_cast<size_t>(i) * r + j] = s;
          }
        }
        // Pointwise: out_c rows of c*r weights, plus bias, then activation.
        float* y = p.output + ((b * g.out_h + oh) * g.out_w + ow) * g.out_c;
        for (int o = 0; o < g.out_c; ++o) {
          const float* w = p.pointwise + static_cast<int64_t>(o) * cr;
          double s = p.bias ? p.bias[o] : 0.0;
          for (int k = 0; k < cr; ++k) s += static_cast<double>(w[k]) * mid[static_cast<size_t>(k)];
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
