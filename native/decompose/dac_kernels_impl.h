// The DAC kernels (dac_kernels.h) for vectors of DAC_VEC_DOUBLES doubles,
// included by one .cc per ISA. Everything here has internal linkage and calls
// no inline library templates, so no copy compiled with wider ISA flags can
// be merged by the linker into the portable path.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "dac_kernels.h"

#if defined(__SSE2__) || defined(__AVX2__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#elif defined(__wasm_simd128__)
#include <wasm_simd128.h>
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
#if DAC_VEC_DOUBLES == 4 && defined(__AVX__)
inline vd vsqrt(vd x) { return (vd)_mm256_sqrt_pd((__m256d)x); }
#elif DAC_VEC_DOUBLES == 2 && defined(__SSE2__)
inline vd vsqrt(vd x) { return (vd)_mm_sqrt_pd((__m128d)x); }
#elif DAC_VEC_DOUBLES == 2 && defined(__aarch64__)
inline vd vsqrt(vd x) { return (vd)vsqrtq_f64((float64x2_t)x); }
#elif DAC_VEC_DOUBLES == 2 && defined(__wasm_simd128__)
inline vd vsqrt(vd x) { return (vd)wasm_f64x2_sqrt((v128_t)x); }
#else
inline vd vsqrt(vd x) {
  for (int i = 0; i < kW; ++i) x[i] = __builtin_sqrt(x[i]);
  return x;
}
#endif
inline vd vabs(vd x) { return x < 0 ? -x : x; }
// a where x == 0, else b.
inline vd where_zero(vd x, vd a, vd b) { return x == 0 ? a : b; }
// x, zeroed in lanes where it no longer changes |a| or |b| at a hundredth of
// double precision (the Jacobi rule for an already-negligible coupling).
inline vd drop_negligible(vd x, vd a, vd b) {
  const vd g = 100.0 * vabs(x), fa = vabs(a), fb = vabs(b);
  return ((fa + g == fa) & (fb + g == fb)) ? splat(0.0) : x;
}
// sign(h) * g, with sign(0) = 1.
inline vd sign_times(vd h, vd g) { return h < 0 ? -g : g; }
#else
struct vd {
  double l[kW];
  double operator[](int i) const { return l[i]; }
  vd& operator+=(const vd& o) {
    for (int i = 0; i < kW; ++i) l[i] += o.l[i];
    return *this;
  }
  double& operator[](int i) { return l[i]; }
  friend vd operator*(const vd& a, const vd& b) {
    vd r;
    for (int i = 0; i < kW; ++i) r.l[i] = a.l[i] * b.l[i];
    return r;
  }
  friend vd operator+(const vd& a, const vd& b) {
    vd r;
    for (int i = 0; i < kW; ++i) r.l[i] = a.l[i] + b.l[i];
    return r;
  }
  friend vd operator-(const vd& a, const vd& b) {
    vd r;
    for (int i = 0; i < kW; ++i) r.l[i] = a.l[i] - b.l[i];
    return r;
  }
  friend vd operator/(const vd& a, const vd& b) {
    vd r;
    for (int i = 0; i < kW; ++i) r.l[i] = a.l[i] / b.l[i];
    return r;
  }
  friend vd operator*(double a, const vd& b) {
    vd r;
    for (int i = 0; i < kW; ++i) r.l[i] = a * b.l[i];
    return r;
  }
  friend vd operator+(const vd& a, double b) {
    vd r;
    for (int i = 0; i < kW; ++i) r.l[i] = a.l[i] + b;
    return r;
  }
  friend vd operator+(double a, const vd& b) {
    vd r;
    for (int i = 0; i < kW; ++i) r.l[i] = a + b.l[i];
    return r;
  }
  friend vd operator/(double a, const vd& b) {
    vd r;
    for (int i = 0; i < kW; ++i) r.l[i] = a / b.l[i];
    return r;
  }
};
inline vd vsqrt(vd x) {
  for (int i = 0; i < kW; ++i) x.l[i] = std::sqrt(x.l[i]);
  return x;
}
inline vd vabs(vd x) {
  for (int i = 0; i < kW; ++i) x.l[i] = std::fabs(x.l[i]);
  return x;
}
inline vd where_zero(vd x, vd a, vd b) {
  for (int i = 0; i < kW; ++i) a.l[i] = x.l[i] == 0 ? a.l[i] : b.l[i];
  return a;
}
inline vd drop_negligible(vd x, vd a, vd b) {
  for (int i = 0; i < kW; ++i) {
    const double g = 100.0 * std::fabs(x.l[i]), fa = std::fabs(a.l[i]), fb = std::fabs(b.l[i]);
    if (fa + g == fa && fb + g == fb) x.l[i] = 0;
  }
  return x;
}
inline vd sign_times(vd h, vd g) {
  for (int i = 0; i < kW; ++i) g.l[i] = h.l[i] < 0 ? -g.l[i] : g.l[i];
  return g;
}
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

// 16 x 16 tiles through a local buffer: each source row segment and each
// destination line is touched once, whatever the source's (often
// power-of-two) row stride does to cache sets.
void transpose_tiles(const float* src, int64_t src_ld, int64_t rows, int64_t cols, float* dst,
                     int64_t dst_ld) {
  float tile[16][16];
  for (int64_t o0 = 0; o0 < rows; o0 += 16) {
    const int64_t no = imin(16, rows - o0);
    for (int64_t q0 = 0; q0 < cols; q0 += 16) {
      const int64_t nq = imin(16, cols - q0);
      for (int64_t oo = 0; oo < no; ++oo) {
        const float* s = src + (o0 + oo) * src_ld + q0;
        for (int64_t qq = 0; qq < nq; ++qq) tile[qq][oo] = s[qq];
      }
      for (int64_t qq = 0; qq < nq; ++qq) {
        float* d = dst + (q0 + qq) * dst_ld + o0;
        if (no == 16) {
          for (int z = 0; z < 16; ++z) d[z] = tile[qq][z];  // fixed size: plain vector moves
        } else {
          for (int64_t z = 0; z < no; ++z) d[z] = tile[qq][z];
        }
      }
    }
  }
}

// A transpose through kB x kB register blocks (`block(src, dst)`), with a
// hook at the start of each band of kB rows (`band(o0)`) and the ragged
// right columns and bottom rows done by transpose_tiles.
template <int kB, class Band, class Block>
void transpose_blocked(const float* src, int64_t src_ld, int64_t rows, int64_t cols, float* dst,
                       int64_t dst_ld, Band band, Block block) {
  const int64_t rv = rows - rows % kB, cv = cols - cols % kB;
  for (int64_t o0 = 0; o0 < rv; o0 += kB) {
    band(o0);
    for (int64_t q0 = 0; q0 < cv; q0 += kB) block(src + o0 * src_ld + q0, dst + q0 * dst_ld + o0);
  }
  if (cv < cols) transpose_tiles(src + cv, src_ld, rows, cols - cv, dst + cv * dst_ld, dst_ld);
  if (rv < rows) transpose_tiles(src + rv * src_ld, src_ld, rows - rv, cv, dst + rv, dst_ld);
}

// Matrices per Jacobi call: two vectors' worth, i.e. two independent chains
// through each rotation's divides and square roots for the core to overlap.
constexpr int kJacobiGroups = 2;
constexpr int kJ = kJacobiGroups * kW;
constexpr double kJacobiTolerance = 1.2e-32;  // (eps / 2)^2

// A Jacobi rotation in the (p, q) plane of kW matrices (one per lane).
struct Rotation {
  vd c, s, t, apq;
};

// The rotation that zeroes A[p][q]: t = tan of the angle, the smaller root
// (Rutishauser), from h = aqq - app, g = 2 apq and r = sqrt(h^2 + g^2),
// u = |h| + r as t = sign(h) g / u, c = sqrt(u / 2r), s = t c, one square
// root and one divide shorter than through t. Gram entries are sums of
// squared floats, so the squares cannot overflow. Lanes with apq == 0 get
// the identity.
inline Rotation angle(const vd* A, int64_t k, int64_t p, int64_t q) {
  const vd app = A[p * k + p], aqq = A[q * k + q];
  const vd apq = drop_negligible(A[p * k + q], app, aqq);
  const vd h = aqq - app, g = 2.0 * apq;
  const vd r = vsqrt(h * h + g * g), u = vabs(h) + r;
  const vd inv = 1.0 / vsqrt(2.0 * r * u);
  const vd zero = splat(0.0), one = splat(1.0);
  const vd c = where_zero(apq, one, u * inv);
  const vd s = where_zero(apq, zero, sign_times(h, g) * inv);
  const vd t = where_zero(apq, zero, sign_times(h, g) / u);
  return {c, s, t, apq};
}

// Applies rotation `z` to A (zeroing A[p][q]) and accumulates it into V
// (columns = eigenvectors).
inline void apply(const Rotation& z, vd* A, vd* V, int64_t k, int64_t p, int64_t q) {
  const vd c = z.c, s = z.s;
  for (int64_t r = 0; r < k; ++r) {
    if (r == p || r == q) continue;
    const vd arp = A[r * k + p], arq = A[r * k + q];
    const vd np = c * arp - s * arq, nq = s * arp + c * arq;
    A[r * k + p] = np;
    A[p * k + r] = np;
    A[r * k + q] = nq;
    A[q * k + r] = nq;
  }
  A[p * k + p] = A[p * k + p] - z.t * z.apq;
  A[q * k + q] = A[q * k + q] + z.t * z.apq;
  A[p * k + q] = splat(0.0);
  A[q * k + p] = splat(0.0);
  for (int64_t r = 0; r < k; ++r) {
    const vd vp = V[p * k + r], vq = V[q * k + r];
    V[p * k + r] = c * vp - s * vq;
    V[q * k + r] = s * vp + c * vq;
  }
}

// Cyclic Jacobi on `count` <= kJ matrices at once, one per lane: the same
// arithmetic for every matrix, so the only branch is the shared stopping
// test, and the tiny k x k problems (thousands per model) run kJ at a time
// instead of one by one through a branchy QR iteration.
unsigned jacobi_eigen(const double* const* G, int count, int64_t k, double* const* values,
                      double* const* vectors) {
  constexpr int64_t kk = kJacobiMaxK * kJacobiMaxK;
  vd A[kJacobiGroups][kk], V[kJacobiGroups][kk];
  for (int h = 0; h < kJacobiGroups; ++h) {
    for (int64_t i = 0; i < k * k; ++i) {
      vd a = splat(0.0);  // unused lanes hold a zero matrix: already diagonal
      for (int l = 0; l < kW && h * kW + l < count; ++l) a[l] = G[h * kW + l][i];
      A[h][i] = a;
      V[h][i] = splat(0.0);
    }
    for (int64_t i = 0; i < k; ++i) V[h][i * k + i] = splat(1.0);
  }
  auto lane = [&](const vd (*M)[kk], int l, int64_t i) { return M[l / kW][i][l % kW]; };

  const unsigned all = (1u << count) - 1;
  unsigned converged = 0;
  for (int sweep = 0; sweep <= kJacobiMaxSweeps; ++sweep) {
    // Done when the couplings are below double precision next to the
    // diagonal: (sum of squared off-diagonal entries) <= eps^2/4 * (sum of
    // squared diagonal entries), the accuracy of a QR eigensolver.
    converged = 0;
    for (int h = 0; h < kJacobiGroups; ++h) {
      vd off = splat(0.0), diag = splat(0.0);
      for (int64_t q = 0; q < k; ++q) {
        diag += A[h][q * k + q] * A[h][q * k + q];
        for (int64_t p = 0; p < q; ++p) off += A[h][q * k + p] * A[h][q * k + p];
      }
      for (int l = 0; l < kW; ++l)
        if (off[l] <= kJacobiTolerance * diag[l]) converged |= 1u << (h * kW + l);
    }
    converged &= all;
    if (converged == all || sweep == kJacobiMaxSweeps) break;
    // The groups' rotation angles first: their divides and square roots are
    // independent chains the core overlaps, then the updates.
    for (int64_t p = 0; p + 1 < k; ++p) {
      for (int64_t q = p + 1; q < k; ++q) {
        Rotation z[kJacobiGroups];
        bool idle = true;  // late sweeps: most pairs are already decoupled in every lane
        for (int h = 0; h < kJacobiGroups; ++h) {
          z[h] = angle(A[h], k, p, q);
          for (int l = 0; l < kW; ++l) idle = idle && z[h].apq[l] == 0;
        }
        if (idle) continue;
        for (int h = 0; h < kJacobiGroups; ++h) apply(z[h], A[h], V[h], k, p, q);
      }
    }
  }

  for (int l = 0; l < count; ++l) {
    int64_t order[kJacobiMaxK];
    for (int64_t j = 0; j < k; ++j) order[j] = j;
    // Descending; equal values keep index order (insertion sort is stable).
    for (int64_t j = 1; j < k; ++j) {
      const int64_t x = order[j];
      int64_t i = j;
      for (; i > 0 && lane(A, l, order[i - 1] * (k + 1)) < lane(A, l, x * (k + 1)); --i) order[i] = order[i - 1];
      order[i] = x;
    }
    for (int64_t j = 0; j < k; ++j) {
      values[l][j] = lane(A, l, order[j] * (k + 1));
      for (int64_t r = 0; r < k; ++r) vectors[l][j * k + r] = lane(V, l, order[j] * k + r);
    }
  }
  return converged;
}

// A product that stays a rounded product: where the file's flags allow FMA,
// the compiler would fuse it into the add that takes it (one rounding instead
// of two), and the variants would stop matching ref bit for bit.
#if defined(__FMA__) && (defined(__GNUC__) || defined(__clang__))
template <class T>
inline T product(T a, T b) {
  T x = a * b;
  __asm__("" : "+x"(x));
  return x;
}
#else
template <class T>
inline T product(T a, T b) {
  return a * b;
}
#endif

// dac_pair_energy, one output channel at a time as decompose.h states it:
// each (j, i) slice of k taps copied out, the pair's slice built beside it
// from the channel's r filters, the three sums taken over the two. KC > 0
// fixes k at compile time (3x3, the common case) so the tap loops unroll.
template <int KC>
void pair_rows_scalar(const PairEnergyRows& p, int64_t j0, int64_t j1, double* scratch) {
  const int64_t c = p.c, r = p.r, K = KC > 0 ? KC : p.k;
  double* orig = scratch;
  double* pair = scratch + K;
  for (int64_t j = j0; j < j1; ++j) {
    const float* wj = p.w + j * p.sj;
    const float* pj = p.pointwise + j * c * r;
    double energy = 0, approx = 0, residual = 0;
    for (int64_t i = 0; i < c; ++i) {
      for (int64_t t = 0; t < K; ++t) orig[t] = wj[i * p.si + t * p.st];
      for (int64_t t = 0; t < K; ++t) pair[t] = 0;
      const float* f = p.depthwise + i * r * K;
      for (int64_t m = 0; m < r; ++m) {
        const double a = pj[i * r + m];
        for (int64_t t = 0; t < K; ++t) pair[t] += product(a, double(f[m * K + t]));
      }
      double e = 0, ea = 0, d2 = 0;
      for (int64_t t = 0; t < K; ++t) {
        const double v = orig[t], u = pair[t], d = v - u;
        e += product(p.tap2[t] * v, v);
        ea += product(p.tap2[t] * u, u);
        d2 += product(d, d);
      }
      const double ch2 = p.channel_scale[i] * p.channel_scale[i];
      energy += product(ch2, e);
      approx += product(ch2, ea);
      residual += d2;
    }
    p.energy[j] = energy;
    p.approx_energy[j] = approx;
    p.residual[j] = residual;
  }
}

// Largest k the lanes keep on the stack (up to 8x8 kernels); larger go scalar.
constexpr int64_t kPairMaxK = 64;

// pair_rows_scalar's arithmetic for kW output channels at once, one per lane:
// every lane does its channel's operations in the scalar order, so the sums
// are bit-identical, while the filters are widened once for kW channels and
// the multiply-adds run kW wide. Leftover channels go scalar.
template <int KC>
void pair_rows_lanes(const PairEnergyRows& p, int64_t j0, int64_t j1, double* scratch) {
  const int64_t c = p.c, r = p.r, K = KC > 0 ? KC : p.k;
  vd orig[KC > 0 ? KC : kPairMaxK], pair[KC > 0 ? KC : kPairMaxK], tap2[KC > 0 ? KC : kPairMaxK];
  for (int64_t t = 0; t < K; ++t) tap2[t] = splat(p.tap2[t]);
  int64_t j = j0;
  for (; j + kW <= j1; j += kW) {
    vd energy = splat(0.0), approx = splat(0.0), residual = splat(0.0);
    for (int64_t i = 0; i < c; ++i) {
      const float* wi = p.w + j * p.sj + i * p.si;
      const float* pi = p.pointwise + j * c * r + i * r;
      for (int64_t t = 0; t < K; ++t) {
        vd v;
        for (int l = 0; l < kW; ++l) v[l] = wi[l * p.sj + t * p.st];
        orig[t] = v;
        pair[t] = splat(0.0);
      }
      const float* f = p.depthwise + i * r * K;
      for (int64_t m = 0; m < r; ++m) {
        vd a;
        for (int l = 0; l < kW; ++l) a[l] = pi[l * c * r + m];
        for (int64_t t = 0; t < K; ++t) pair[t] += product(a, splat(f[m * K + t]));
      }
      vd e = splat(0.0), ea = splat(0.0), d2 = splat(0.0);
      for (int64_t t = 0; t < K; ++t) {
        const vd v = orig[t], u = pair[t], d = v - u;
        e += product(tap2[t] * v, v);
        ea += product(tap2[t] * u, u);
        d2 += product(d, d);
      }
      const vd ch2 = splat(p.channel_scale[i] * p.channel_scale[i]);
      energy += product(ch2, e);
      approx += product(ch2, ea);
      residual += d2;
    }
    for (int l = 0; l < kW; ++l) {
      p.energy[j + l] = energy[l];
      p.approx_energy[j + l] = approx[l];
      p.residual[j + l] = residual[l];
    }
  }
  pair_rows_scalar<KC>(p, j, j1, scratch);
}

// The kernel table's entry: 3x3 with k fixed, other sizes as they come.
template <bool kLanes>
void pair_energy(const PairEnergyRows& p, int64_t j0, int64_t j1, double* scratch) {
  if (kLanes && p.k == 9) return pair_rows_lanes<9>(p, j0, j1, scratch);
  if (kLanes && p.k <= kPairMaxK) return pair_rows_lanes<0>(p, j0, j1, scratch);
  if (p.k == 9) return pair_rows_scalar<9>(p, j0, j1, scratch);
  pair_rows_scalar<0>(p, j0, j1, scratch);
}

}  // namespace
}  // namespace detail
}  // namespace dac
