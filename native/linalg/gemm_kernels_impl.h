// The packed GEMM block and the fused symmetric product (gemm_kernels.h) for
// one x86 vector width, included by gemm_avx2.cc (4 doubles) and
// gemm_avx512.cc (8 doubles). Everything here has internal linkage and calls
// no inline library templates, so no copy compiled with wider ISA flags can
// be merged by the linker into the portable path.
#include <immintrin.h>

#include <cstdint>

#include "gemm_kernels.h"

#if !defined(DAC_GEMM_VEC_DOUBLES) || !defined(DAC_GEMM_MR) || !defined(DAC_GEMM_NV)
#error "define DAC_GEMM_VEC_DOUBLES, DAC_GEMM_MR and DAC_GEMM_NV before including gemm_kernels_impl.h"
#endif

namespace dac {
namespace detail {
namespace {

constexpr int kW = DAC_GEMM_VEC_DOUBLES;
// A tile of kMr rows by kNv vectors: kMr * kNv accumulators, kNv loads of B
// and kMr broadcasts of A per step of p, all in registers.
constexpr int kMr = DAC_GEMM_MR;
constexpr int kNv = DAC_GEMM_NV;
constexpr int kNr = kNv * kW;

#if DAC_GEMM_VEC_DOUBLES == 8
using vd = __m512d;
inline vd zero() { return _mm512_setzero_pd(); }
inline vd splat(double x) { return _mm512_set1_pd(x); }
inline vd load(const double* p) { return _mm512_loadu_pd(p); }
inline void store(double* p, vd v) { _mm512_storeu_pd(p, v); }
inline vd fma(vd a, vd b, vd c) { return _mm512_fmadd_pd(a, b, c); }
inline double hsum(vd v) { return _mm512_reduce_add_pd(v); }
#elif DAC_GEMM_VEC_DOUBLES == 4
using vd = __m256d;
inline vd zero() { return _mm256_setzero_pd(); }
inline vd splat(double x) { return _mm256_set1_pd(x); }
inline vd load(const double* p) { return _mm256_loadu_pd(p); }
inline void store(double* p, vd v) { _mm256_storeu_pd(p, v); }
inline vd fma(vd a, vd b, vd c) { return _mm256_fmadd_pd(a, b, c); }
inline double hsum(vd v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
#else
#error "DAC_GEMM_VEC_DOUBLES must be 4 or 8"
#endif

// acc = A_panel * B_panel over kc steps (a: kc x kMr, b: kc x kNr, packed).
inline void tile(int64_t kc, const double* a, const double* b, vd (&acc)[kMr][kNv]) {
  for (int r = 0; r < kMr; ++r)
    for (int v = 0; v < kNv; ++v) acc[r][v] = zero();
  for (int64_t p = 0; p < kc; ++p) {
    vd bv[kNv];
    for (int v = 0; v < kNv; ++v) bv[v] = load(b + v * kW);
    for (int r = 0; r < kMr; ++r) {
      const vd av = splat(a[r]);
      for (int v = 0; v < kNv; ++v) acc[r][v] = fma(av, bv[v], acc[r][v]);
    }
    a += kMr;
    b += kNr;
  }
}

void block(int64_t mc, int64_t nc, int64_t kc, const double* pa, const double* pb, double alpha, double* c,
           int64_t ldc, int triangle, int64_t diag) {
  const vd va = splat(alpha);
  // B's micro-panel stays in L1 while A's panels stream from L2.
  for (int64_t j0 = 0; j0 < nc; j0 += kNr) {
    for (int64_t i0 = 0; i0 < mc; i0 += kMr) {
      // Entry (r, q) of the tile is wanted when its column minus its row,
      // j0 + q + diag - i0 - r, is <= 0 (lower) or >= 0 (upper).
      const int64_t offset = j0 + diag - i0;
      if (triangle > 0 && offset > kMr - 1) continue;
      if (triangle < 0 && offset < -(kNr - 1)) continue;
      vd acc[kMr][kNv];
      tile(kc, pa + i0 * kc, pb + j0 * kc, acc);
      double* ct = c + i0 * ldc + j0;
      const bool crossing = (triangle > 0 && offset + kNr - 1 > 0) || (triangle < 0 && offset < kMr - 1);
      if (i0 + kMr <= mc && j0 + kNr <= nc && !crossing) {
        for (int r = 0; r < kMr; ++r)
          for (int v = 0; v < kNv; ++v) store(ct + r * ldc + v * kW, fma(va, acc[r][v], load(ct + r * ldc + v * kW)));
        continue;
      }
      // Through a full tile in memory, with the same fused multiply-add as
      // above (an entry's bits do not depend on where the tiles fall); only
      // the entries inside C and the triangle are written back.
      double buf[kMr * kNr] = {};
      for (int64_t r = 0; r < kMr && i0 + r < mc; ++r)
        for (int64_t q = 0; q < kNr && j0 + q < nc; ++q) buf[r * kNr + q] = ct[r * ldc + q];
      for (int r = 0; r < kMr; ++r)
        for (int v = 0; v < kNv; ++v) store(buf + r * kNr + v * kW, fma(va, acc[r][v], load(buf + r * kNr + v * kW)));
      for (int64_t r = 0; r < kMr && i0 + r < mc; ++r) {
        for (int64_t q = 0; q < kNr && j0 + q < nc; ++q) {
          const int64_t d = offset + q - r;
          if ((triangle > 0 && d > 0) || (triangle < 0 && d < 0)) continue;
          ct[r * ldc + q] = buf[r * kNr + q];
        }
      }
    }
  }
}

void symv_lower(int64_t n, const double* a, int64_t lda, const double* x, double* y) {
  int64_t j = 0;
  // Four columns per pass over the rows below them: y(i) is loaded and
  // stored once for four columns' axpys, and their four dot products ride along.
  for (; j + 4 <= n; j += 4) {
    const double* col[4] = {a + j * lda, a + (j + 1) * lda, a + (j + 2) * lda, a + (j + 3) * lda};
    double dot[4] = {0, 0, 0, 0};
    for (int q = 0; q < 4; ++q) {
      y[j + q] += col[q][j + q] * x[j + q];
      for (int i = q + 1; i < 4; ++i) {
        y[j + i] += col[q][j + i] * x[j + q];
        dot[q] += col[q][j + i] * x[j + i];
      }
    }
    const vd x0 = splat(x[j]), x1 = splat(x[j + 1]), x2 = splat(x[j + 2]), x3 = splat(x[j + 3]);
    vd t0 = zero(), t1 = zero(), t2 = zero(), t3 = zero();
    int64_t i = j + 4;
    for (; i + kW <= n; i += kW) {
      const vd xi = load(x + i);
      const vd a0 = load(col[0] + i), a1 = load(col[1] + i), a2 = load(col[2] + i), a3 = load(col[3] + i);
      vd yi = load(y + i);
      yi = fma(a0, x0, yi);
      yi = fma(a1, x1, yi);
      yi = fma(a2, x2, yi);
      yi = fma(a3, x3, yi);
      store(y + i, yi);
      t0 = fma(a0, xi, t0);
      t1 = fma(a1, xi, t1);
      t2 = fma(a2, xi, t2);
      t3 = fma(a3, xi, t3);
    }
    dot[0] += hsum(t0);
    dot[1] += hsum(t1);
    dot[2] += hsum(t2);
    dot[3] += hsum(t3);
    for (; i < n; ++i) {
      for (int q = 0; q < 4; ++q) {
        y[i] += col[q][i] * x[j + q];
        dot[q] += col[q][i] * x[i];
      }
    }
    for (int q = 0; q < 4; ++q) y[j + q] += dot[q];
  }
  for (; j < n; ++j) {
    const double* cj = a + j * lda;
    double dot = 0;
    for (int64_t i = j + 1; i < n; ++i) {
      y[i] += cj[i] * x[j];
      dot += cj[i] * x[i];
    }
    y[j] += cj[j] * x[j] + dot;
  }
}

}  // namespace
}  // namespace detail
}  // namespace dac
