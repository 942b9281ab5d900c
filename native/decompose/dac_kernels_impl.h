// The DAC kernels (dac_kernels.h) for vectors of DAC_VEC_DOUBLES doubles,
// included by one .cc per ISA. Everything here has internal linkage and calls
// no inline library templates, so no copy compiled with wider ISA flags can
// be merged by the linker into the portable path.
#include <cstdint>
#include <cstring>

#include "dac_kernels.h"

#if defined(__SSE2__) || defined(__AVX2__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#ifndef DAC_VEC_DOUBLES
#error "define DAC_VEC_DOUBLES before including dac_kernels_impl.h"
#endif

namespace dac {
namespace detail {
namespace {

constexpr int kW = DAC_VEC_DOUBLES;

#if defined(__GNUC__) || defined(__clang__)
// GCC/Clang vector extensions: SSE2/AVX, NEON or wasm simd128 as the
// file's flags allow, without intrinsics.
typedef double vd __attribute__((vector_size(8 * DAC_VEC_DOUBLES)));
typedef float vf __attribute__((vector_size(4 * DAC_VEC_DOUBLES)));
// GCC lowers __builtin_convertvector float -> double poorly (scalar
// converts, or split halves through the stack), so each target gets its
// one-instruction convert; the intrinsics are always-inline, never emitted
// out of line.
#if DAC_VEC_DOUBLES == 4 && defined(__AVX__)
inline vd load(const float* p) { return (vd)_mm256_cvtps_pd(_mm_loadu_ps(p)); }
#elif DAC_VEC_DOUBLES == 2 && defined(__SSE2__)
inline vd load(const float* p) {
  double two;  // the two floats' bytes; memcpy, as p is only 4-byte aligned
  std::memcpy(&two, p, sizeof two);
  return (vd)_mm_cvtps_pd(_mm_castpd_ps(_mm_set_sd(two)));
}
#elif DAC_VEC_DOUBLES == 2 && defined(__aarch64__)
inline vd load(const float* p) { return (vd)vcvt_f64_f32(vld1_f32(p)); }
#else
inline vd load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, vd);
}
#endif
inline vd splat(double x) {
  vd v;
  for (int i = 0; i < kW; ++i) v[i] = x;
  return v;
}
#else
struct vd {
  double l[kW];
  double operator[](int i) const { return l[i]; }
  vd& operator+=(const vd& o) {
    for (int i = 0; i < kW; ++i) l[i] += o.l[i];
    return *this;
  }
  friend vd operator*(const vd& a, const vd& b) {
    vd r;
    for (int i = 0; i < kW; ++i) r.l[i] = a.l[i] * b.l[i];
    return r;
  }
};
inline vd load(const float* p) {
  vd r;
  for (int i = 0; i < kW; ++i) r.l[i] = p[i];
  return r;
}
inline vd splat(double x) {
  vd r;
  for (int i = 0; i < kW; ++i) r.l[i] = x;
  return r;
}
#endif

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

inline double hsum(const vd& v) {
  double s = 0;
  for (int i = 0; i < kW; ++i) s += v[i];
  return s;
}

// 3 x 3 tiles of G stay in registers (9 accumulators + 6 loads fit even
// SSE2's 16) while the tile's rows stream through once; lane l sums the
// outputs o = l (mod kW).
void gram(const float* X, int64_t ld, int64_t k, int64_t n, double* G) {
  const int64_t nv = n - n % kW;
  for (int64_t a0 = 0; a0 < k; a0 += 3) {
    for (int64_t b0 = 0; b0 <= a0; b0 += 3) {
      const float* xa[3];
      const float* xb[3];
      for (int t = 0; t < 3; ++t) {
        xa[t] = X + imin(a0 + t, k - 1) * ld;  // clipped rows are computed and dropped
        xb[t] = X + imin(b0 + t, k - 1) * ld;
      }
      vd acc[3][3];
      for (int t = 0; t < 3; ++t)
        for (int u = 0; u < 3; ++u) acc[t][u] = splat(0.0);
      for (int64_t o = 0; o < nv; o += kW) {
        const vd va[3] = {load(xa[0] + o), load(xa[1] + o), load(xa[2] + o)};
        const vd vb[3] = {load(xb[0] + o), load(xb[1] + o), load(xb[2] + o)};
        for (int t = 0; t < 3; ++t)
          for (int u = 0; u < 3; ++u) acc[t][u] += va[t] * vb[u];
      }
      for (int t = 0; t < 3 && a0 + t < k; ++t)
        for (int u = 0; u < 3 && b0 + u <= a0 + t; ++u) {
          double g = hsum(acc[t][u]);
          for (int64_t o = nv; o < n; ++o) g += double(xa[t][o]) * double(xb[u][o]);
          G[(b0 + u) * k + a0 + t] = g;
        }
    }
  }
}

// Four components by kW outputs in registers per pass over the k rows.
// Weights come pre-broadcast from `wb` ([a][4] vectors) when given, else are
// broadcast on the fly (k too large for the stack buffer).
template <bool kPre>
void project_rows(const float* X, int64_t ld, int64_t k, int64_t nv, const vd* wb, const double* v,
                  int64_t j0, int64_t nj, float* proj, int64_t pitch) {
  for (int64_t o = 0; o < nv; o += kW) {
    vd acc[4];
    for (int jj = 0; jj < 4; ++jj) acc[jj] = splat(0.0);
    for (int64_t a = 0; a < k; ++a) {
      const vd x = load(X + a * ld + o);
      for (int jj = 0; jj < 4; ++jj)
        acc[jj] += x * (kPre ? wb[a * 4 + jj] : splat(jj < nj ? v[(j0 + jj) * k + a] : 0.0));
    }
    // Whole vectors out first, then plain scalar moves into [o][j]: cheaper
    // than extracting each lane from a register.
    double tmp[4][kW];
    std::memcpy(tmp, acc, sizeof tmp);
    for (int l = 0; l < kW; ++l)
      for (int64_t jj = 0; jj < nj; ++jj) proj[(o + l) * pitch + j0 + jj] = float(tmp[jj][l]);
  }
}

void project(const float* X, int64_t ld, int64_t k, int64_t n, const double* v, int64_t r,
             float* proj, int64_t pitch) {
  const int64_t nv = n - n % kW;
  constexpr int64_t kMaxPre = 64;
  vd wb[kMaxPre * 4];
  for (int64_t j0 = 0; j0 < r; j0 += 4) {
    const int64_t nj = imin(4, r - j0);
    if (k <= kMaxPre) {
      for (int64_t a = 0; a < k; ++a)
        for (int jj = 0; jj < 4; ++jj) wb[a * 4 + jj] = splat(jj < nj ? v[(j0 + jj) * k + a] : 0.0);
      project_rows<true>(X, ld, k, nv, wb, v, j0, nj, proj, pitch);
    } else {
      project_rows<false>(X, ld, k, nv, nullptr, v, j0, nj, proj, pitch);
    }
    for (int64_t o = nv; o < n; ++o)
      for (int64_t jj = 0; jj < nj; ++jj) {
        double sum = 0;
        for (int64_t a = 0; a < k; ++a) sum += double(X[a * ld + o]) * v[(j0 + jj) * k + a];
        proj[o * pitch + j0 + jj] = float(sum);
      }
  }
}

}  // namespace
}  // namespace detail
}  // namespace dac
