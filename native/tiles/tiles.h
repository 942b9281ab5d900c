// The tiled kernels, written once over an ISA's vector type (simd_*.h) and
// instantiated by each *_<isa>.cc file. Everything here sits in an unnamed
// namespace and uses no standard-library template or inline function, so
// every TU gets its own copy compiled with its own flags: the linker can
// never hand an AVX-512 instantiation to a caller on a CPU without AVX-512.
//
// The GEMM: C[pixels][out_c] = A[pixels][K] * B[K][out_c], C being the NHWC
// output itself. A is a pixel tile's im2col rows (dense conv) or its
// depthwise outputs (fused kernel), built per K block; B is the weights,
// packed once and cached across calls (plan.h, kernel_common.h). Micro-tiles
// of MR pixels x NV vectors of output channels keep their accumulators in
// registers; A is broadcast, B is loaded.
#pragma once
#include <cstdint>
#include <cstring>

#include "plan.h"

namespace dac {
namespace tiles {
namespace {

inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

struct UkArgs {
  int kc;
  const float* a;
  int64_t lda;
  const float* b;  // kc x (NV * W) panel
  float* c;
  int64_t ldc;
  int nr;              // valid output channels in this panel (<= NV * W)
  const float* bias;   // at this panel's first channel; read when !accumulate
  bool accumulate;     // add to C (a later K block) instead of starting afresh
  bool clamp;          // last K block with ReLU / ReLU6
  float lo, hi;
};

template <class I, int MR, int NV>
inline void ukernel_full(const UkArgs& u) {
  using V = typename I::V;
  constexpr int W = I::W, NR = NV * W;
  const int kc = u.kc;
  const float* a = u.a;
  const int64_t lda = u.lda;
  const float* b = u.b;
  float* c = u.c;
  const int64_t ldc = u.ldc;
  V acc[MR][NV];
  if (u.accumulate) {
    for (int m = 0; m < MR; ++m)
      for (int v = 0; v < NV; ++v) acc[m][v] = I::load(c + m * ldc + v * W);
  } else if (u.bias) {
    for (int v = 0; v < NV; ++v) {
      V bv = I::load(u.bias + v * W);
      for (int m = 0; m < MR; ++m) acc[m][v] = bv;
    }
  } else {
    for (int m = 0; m < MR; ++m)
      for (int v = 0; v < NV; ++v) acc[m][v] = I::zero();
  }
  for (int k = 0; k < kc; ++k) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = I::load(b + k * NR + v * W);
    for (int m = 0; m < MR; ++m) {
      V av = I::set1(a[m * lda + k]);
      for (int v = 0; v < NV; ++v) acc[m][v] = I::fma(av, bv[v], acc[m][v]);
    }
  }
  if (u.clamp) {
    V lo = I::set1(u.lo), hi = I::set1(u.hi);
    for (int m = 0; m < MR; ++m)
      for (int v = 0; v < NV; ++v) acc[m][v] = I::min(I::max(acc[m][v], lo), hi);
  }
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) I::store(c + m * ldc + v * W, acc[m][v]);
}

// A panel narrower than its vectors (out_c not a multiple of W) goes through
// a local tile so no lane outside the output (or the bias) is touched.
template <class I, int MR, int NV>
inline void ukernel(const UkArgs& u) {
  constexpr int NR = NV * I::W;
  if (u.nr == NR) {
    ukernel_full<I, MR, NV>(u);
    return;
  }
  alignas(64) float tile[MR * NR];
  alignas(64) float bias[NR];
  UkArgs t = u;
  t.c = tile;
  t.ldc = NR;
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NR; ++j) tile[m * NR + j] = (u.accumulate && j < u.nr) ? u.c[m * u.ldc + j] : 0.f;
  if (!u.accumulate && u.bias) {
    for (int j = 0; j < NR; ++j) bias[j] = j < u.nr ? u.bias[j] : 0.f;
    t.bias = bias;
  }
  ukernel_full<I, MR, NV>(t);
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < u.nr; ++j) u.c[m * u.ldc + j] = tile[m * NR + j];
}

// Picks the instantiation for a partial tile: mr <= MR rows, nv <= NV vectors.
template <class I, int MR, int NV>
inline void ukernel_nv(int nv, const UkArgs& u) {
  if constexpr (NV > 1) {
    if (nv < NV) return ukernel_nv<I, MR, NV - 1>(nv, u);
  }
  ukernel<I, MR, NV>(u);
}

template <class I, int MR>
inline void ukernel_mr(int mr, int nv, const UkArgs& u) {
  if constexpr (MR > 1) {
    if (mr < MR) return ukernel_mr<I, MR - 1>(mr, nv, u);
  }
  ukernel_nv<I, MR, I::NV>(nv, u);
}

// C[mc][n] (+)= A[mc][kc] * Bblock; bias on the first K block, activation on
// the last. Panels outer, pixels inner: a B panel is reused by every
// micro-tile of the pixel tile while A streams from L2.
template <class I>
void gemm_block(int mc, const KBlock& blk, const float* A, int64_t lda, const PackedB& B, int n, float* C,
                const Epilogue& epi, bool first, bool last) {
  constexpr int W = I::W, NR = I::NV * I::W;
  const float* bblock = B.data + blk.k0 * B.npad;
  for (int j0 = 0; j0 < n; j0 += NR) {
    UkArgs u;
    u.kc = blk.kc;
    u.lda = lda;
    u.b = bblock + static_cast<int64_t>(j0) * blk.kc;
    u.ldc = n;
    u.nr = static_cast<int>(min_i64(NR, n - j0));
    u.bias = (first && epi.bias) ? epi.bias + j0 : nullptr;
    u.accumulate = !first;
    u.clamp = last && epi.clamp;
    u.lo = epi.lo;
    u.hi = epi.hi;
    const int nv = (u.nr + W - 1) / W;
    for (int i0 = 0; i0 < mc; i0 += I::MR) {
      u.a = A + i0 * lda;
      u.c = C + static_cast<int64_t>(i0) * n + j0;
      ukernel_mr<I, I::MR>(static_cast<int>(min_i64(I::MR, mc - i0)), nv, u);
    }
  }
}

// For each pixel of [m0, m0 + mc) and each tap, the address of the input
// pixel it reads (channel 0), or the zero row where it falls in the padding.
inline void build_taps(const ConvGeometry& g, const float* input, const float* zeros, int64_t m0, int mc,
                       const float** taps) {
  const int64_t plane = static_cast<int64_t>(g.out_h) * g.out_w;
  int64_t b = m0 / plane;
  int oh = static_cast<int>((m0 % plane) / g.out_w);
  int ow = static_cast<int>(m0 % g.out_w);
  const int T = g.kh * g.kw;
  for (int p = 0; p < mc; ++p) {
    const float* image = input + b * g.in_h * static_cast<int64_t>(g.in_w) * g.in_c;
    for (int dh = 0; dh < g.kh; ++dh) {
      const int ih = oh * g.stride_h - g.pad_top + dh * g.dilation_h;
      const bool row = ih >= 0 && ih < g.in_h;
      for (int dw = 0; dw < g.kw; ++dw) {
        const int iw = ow * g.stride_w - g.pad_left + dw * g.dilation_w;
        taps[p * T + dh * g.kw + dw] =
            (row && iw >= 0 && iw < g.in_w) ? image + (static_cast<int64_t>(ih) * g.in_w + iw) * g.in_c : zeros;
      }
    }
    if (++ow == g.out_w) {
      ow = 0;
      if (++oh == g.out_h) {
        oh = 0;
        ++b;
      }
    }
  }
}

inline float** tap_area(void* scratch) { return static_cast<float**>(scratch); }

inline float* a_area(void* scratch, const TilePlan& t) {
  const int64_t bytes = static_cast<int64_t>(t.mc) * t.g.kh * t.g.kw * static_cast<int64_t>(sizeof(float*));
  return reinterpret_cast<float*>(static_cast<char*>(scratch) + (bytes + 63) / 64 * 64);
}

// Depthwise for P pixels x J multipliers of one W-channel vector: per tap,
// J weight vectors and P input vectors make P*J FMAs.
template <class I, int P, int J>
inline void dw_micro(int T, const float* const* taps, int64_t coff, const float* w, int64_t wstride, float* out,
                     int64_t lda) {
  using V = typename I::V;
  constexpr int W = I::W;
  V acc[P][J];
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < J; ++j) acc[p][j] = I::zero();
  for (int t = 0; t < T; ++t) {
    V wv[J];
    for (int j = 0; j < J; ++j) wv[j] = I::load(w + t * wstride + j * W);
    for (int p = 0; p < P; ++p) {
      V x = I::load(taps[p * T + t] + coff);
      for (int j = 0; j < J; ++j) acc[p][j] = I::fma(x, wv[j], acc[p][j]);
    }
  }
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < J; ++j) I::store(out + p * lda + j * W, acc[p][j]);
}

template <class I, int P, int J>
inline void dw_j(int jc, int T, const float* const* taps, int64_t coff, const float* w, int64_t wstride, float* out,
                 int64_t lda) {
  if constexpr (J > 1) {
    if (jc < J) return dw_j<I, P, J - 1>(jc, T, taps, coff, w, wstride, out, lda);
  }
  dw_micro<I, P, J>(T, taps, coff, w, wstride, out, lda);
}

template <class I, int P, int JMAX>
inline void dw_p(int pc, int jc, int T, const float* const* taps, int64_t coff, const float* w, int64_t wstride,
                 float* out, int64_t lda) {
  if constexpr (P > 1) {
    if (pc < P) return dw_p<I, P - 1, JMAX>(pc, jc, T, taps, coff, w, wstride, out, lda);
  }
  dw_j<I, P, JMAX>(jc, T, taps, coff, w, wstride, out, lda);
}

// The whole-vector channels of a block, PB pixels x up to JMAX multipliers
// per micro-step. Pixels outer, channel vectors inner: a pixel block reads
// each input pixel's channel run of the block front to back, which the
// hardware prefetchers follow.
template <class I, int PB, int JMAX>
void depthwise_vectors(const DwPwPlan& p, const KBlock& blk, int mc, const float* const* taps, float* A) {
  constexpr int W = I::W;
  const int T = p.t.g.kh * p.t.g.kw;
  const int r = p.rank;
  const int64_t lda = p.t.lda;
  const int groups = blk.full / W;
  const int64_t run = blk.full;  // floats of each input pixel read here
  for (int p0 = 0; p0 < mc; p0 += PB) {
    const int pc = static_cast<int>(min_i64(PB, mc - p0));
    // The next pixel block's input lines, while this one computes: the taps
    // jump between image rows, which the prefetchers do not predict.
    const int pn = static_cast<int>(min_i64(PB, mc - p0 - PB));
    for (int q = 0; q < pn * T; ++q) {
      const float* x = taps[(p0 + PB) * T + q] + blk.c0;
      for (int64_t off = 0; off < run; off += 16) __builtin_prefetch(x + off);
    }
    for (int gl = 0; gl < groups; ++gl) {
      const int64_t g = blk.c0 / W + gl;
      const float* wg = p.dw_packed + g * T * r * W;
      for (int j0 = 0; j0 < r; j0 += JMAX) {
        const int jc = static_cast<int>(min_i64(JMAX, r - j0));
        dw_p<I, PB, JMAX>(pc, jc, T, taps + p0 * T, g * W, wg + j0 * W, static_cast<int64_t>(r) * W,
                          A + p0 * lda + (static_cast<int64_t>(gl) * r + j0) * W, lda);
      }
    }
  }
}

// The fused kernel's A tile for one channel block. Column order (matched by
// the pointwise packing in dwpw_dispatch.cc): for each whole vector g of the
// block, its multipliers j, then W lanes — (g*r + j)*W + lane; then the
// block's leftover channels i, (i - first_leftover)*r + j after those.
template <class I>
void depthwise_block(const DwPwPlan& p, const KBlock& blk, int mc, const float* const* taps, float* A) {
  const int T = p.t.g.kh * p.t.g.kw;
  const int r = p.rank;
  const int64_t lda = p.t.lda;
  // Few multipliers leave registers free for more pixels, which keeps the
  // weight loads per FMA low.
  if (2 * r <= I::DWJ) {
    depthwise_vectors<I, 2 * I::DWP, I::DWJ / 2>(p, blk, mc, taps, A);
  } else {
    depthwise_vectors<I, I::DWP, I::DWJ>(p, blk, mc, taps, A);
  }
  const int first = blk.c0 + blk.full;
  if (first == blk.c1) return;
  const int64_t col0 = static_cast<int64_t>(blk.full) * r;
  for (int px = 0; px < mc; ++px) {
    const float* const* pt = taps + px * T;
    float* row = A + px * lda + col0;
    for (int i = first; i < blk.c1; ++i) {
      for (int j = 0; j < r; ++j) {
        const float* w = p.dw + (static_cast<int64_t>(i) * r + j) * T;
        float s = 0.f;
        for (int t = 0; t < T; ++t) s += w[t] * pt[t][i];
        row[(i - first) * r + j] = s;
      }
    }
  }
}

template <class I>
void dwpw_tiles(const DwPwPlan& p, int64_t m0, int64_t m1, void* scratch) {
  const TilePlan& t = p.t;
  const float** taps = const_cast<const float**>(tap_area(scratch));
  float* A = a_area(scratch, t);
  for (int64_t mt = m0; mt < m1; mt += t.mc) {
    const int mc = static_cast<int>(min_i64(t.mc, m1 - mt));
    build_taps(t.g, t.input, t.zeros, mt, mc, taps);
    float* C = t.output + mt * t.g.out_c;
    for (int bi = 0; bi < t.nblocks; ++bi) {
      depthwise_block<I>(p, t.blocks[bi], mc, taps, A);
      gemm_block<I>(mc, t.blocks[bi], A, t.lda, t.b, t.g.out_c, C, t.epi, bi == 0, bi == t.nblocks - 1);
    }
  }
}

// im2col rows for one K block; K runs over (tap, channel), channels fastest,
// so a block is a few contiguous channel runs per pixel.
inline void im2col_block(const TilePlan& t, const KBlock& blk, int mc, const float* const* taps, float* A) {
  const int c = t.g.in_c;
  const int T = t.g.kh * t.g.kw;
  const int64_t end = blk.k0 + blk.kc;
  for (int px = 0; px < mc; ++px) {
    float* row = A + px * t.lda;
    int64_t k = blk.k0;
    int tap = static_cast<int>(k / c);
    int i = static_cast<int>(k % c);
    while (k < end) {
      const int len = static_cast<int>(min_i64(c - i, end - k));
      std::memcpy(row + (k - blk.k0), taps[px * T + tap] + i, sizeof(float) * static_cast<size_t>(len));
      k += len;
      ++tap;
      i = 0;
    }
  }
}

template <class I>
void conv_tiles(const TilePlan& t, int64_t m0, int64_t m1, void* scratch) {
  const float** taps = const_cast<const float**>(tap_area(scratch));
  float* A = a_area(scratch, t);
  for (int64_t mt = m0; mt < m1; mt += t.mc) {
    const int mc = static_cast<int>(min_i64(t.mc, m1 - mt));
    build_taps(t.g, t.input, t.zeros, mt, mc, taps);
    float* C = t.output + mt * t.g.out_c;
    for (int bi = 0; bi < t.nblocks; ++bi) {
      im2col_block(t, t.blocks[bi], mc, taps, A);
      gemm_block<I>(mc, t.blocks[bi], A, t.lda, t.b, t.g.out_c, C, t.epi, bi == 0, bi == t.nblocks - 1);
    }
  }
}

}  // namespace
}  // namespace tiles
}  // namespace dac
