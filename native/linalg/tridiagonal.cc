#include "tridiagonal.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../common/parallel.h"
#include "gemm.h"

namespace dac {
namespace eig {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

namespace {

// Panel width of the reduction and column-block width of its trailing update.
constexpr Index kPanel = 32;
constexpr Index kUpdateBlock = 64;
// Below this many trailing rows the update is not worth a thread.
constexpr Index kMinParallelRows = 256;
constexpr double kEps = 2.220446049250313e-16;

// A(s:, s:) -= V W^T + W V^T on the lower triangle, V and W r x nb
// column-major (ldv, ldw apart), r = m - s, neither inside A(s:, s:).
void rank2k_lower(MatrixRef a, Index s, const double* vp, Index ldv, const double* wp, Index ldw, Index nb,
                  int threads) {
  const Index r = a.rows() - s;
  if (r <= 0 || nb <= 0) return;
  if (const detail::GemmKernels* kern = detail::fast_gemm_kernels()) {
    // Read row-major, column-major A's lower triangle is the upper one.
    const Index m = a.rows();
    const detail::Strided v{vp, 1, ldv}, vt{vp, ldv, 1};
    const detail::Strided wv{wp, 1, ldw}, wt{wp, ldw, 1};
    double* c = a.data() + s * m + s;
    detail::gemm_accumulate(*kern, r, r, nb, v, wt, -1.0, c, m, -1, threads);
    detail::gemm_accumulate(*kern, r, r, nb, wv, vt, -1.0, c, m, -1, threads);
    return;
  }
  using ConstStrided = Eigen::Map<const MatrixXd, 0, Eigen::OuterStride<>>;
  const ConstStrided v(vp, r, nb, Eigen::OuterStride<>(ldv));
  const ConstStrided wt(wp, r, nb, Eigen::OuterStride<>(ldw));
  const Index blocks = (r + kUpdateBlock - 1) / kUpdateBlock;
  const int workers = r < kMinParallelRows ? 1 : static_cast<int>(std::min<Index>(threads, blocks));
  // By column blocks; worker t takes blocks t, t + workers, ... so the tall
  // left blocks are spread out. Each writes its own columns of A.
  parallel_for(workers, workers, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      for (Index blk = t; blk < blocks; blk += workers) {
        const Index c0 = blk * kUpdateBlock, bw = std::min(kUpdateBlock, r - c0), h = r - c0;
        auto dst = a.block(s + c0, s + c0, h, bw);
        dst.noalias() -= v.middleRows(c0, h) * wt.middleRows(c0, bw).transpose();
        dst.noalias() -= wt.middleRows(c0, h) * v.middleRows(c0, bw).transpose();
      }
    }
  });
}

// A(s:, s:) -= V W^T + W V^T on the lower triangle, V = A(s:, k:k+nb) and
// W = w(s:, 0:nb). The products read columns k..k+nb-1 of A and write
// columns >= s: no overlap.
void trailing_update(MatrixRef a, Index s, const MatrixXd& w, Index k, Index nb, int threads) {
  const Index m = a.rows();
  rank2k_lower(a, s, a.data() + k * m + s, m, w.data() + s, m, nb, threads);
}

}  // namespace

void tridiagonalize(MatrixRef a, Tridiagonal* t, int threads) {
  const Index m = a.rows();
  t->diag.resize(m);
  t->sub.resize(std::max<Index>(m - 1, 0));
  t->tau.resize(std::max<Index>(m - 1, 0));
  MatrixXd w(m, kPanel);
  VectorXd tmp(kPanel);
  const detail::GemmKernels* fast = detail::fast_gemm_kernels();
  for (Index k = 0; k < m; k += kPanel) {
    const Index nb = std::min(kPanel, m - k);
    // LAPACK latrd: reduce columns k..k+nb-1, keeping the trailing matrix as it
    // was and the panel's effect as A - V W^T - W V^T, applied lazily.
    for (Index i = 0; i < nb; ++i) {
      const Index j = k + i;
      if (i > 0) {
        a.col(j).tail(m - j).noalias() -= a.block(j, k, m - j, i) * w.row(j).head(i).transpose();
        a.col(j).tail(m - j).noalias() -= w.block(j, 0, m - j, i) * a.row(j).segment(k, i).transpose();
      }
      t->diag(j) = a(j, j);
      if (j + 1 >= m) continue;
      const Index len = m - j - 1;
      auto x = a.col(j).tail(len);
      double tau = 0, beta = 0;
      x.makeHouseholderInPlace(tau, beta);
      t->sub(j) = beta;
      t->tau(j) = tau;
      x(0) = 1;  // the implicit leading 1, stored while the panel needs it
      auto wi = w.col(i).tail(len);
      // The memory-bound half of the work: one pass over the trailing triangle
      // per column, reading each element once. Not split over threads: the
      // workers would meet twice per column, which on a busy machine (a zoo
      // run keeps every core busy) costs far more than the product saves.
      if (fast) {
        wi.setZero();
        fast->symv_lower(len, &a(j + 1, j + 1), m, x.data(), wi.data());
      } else {
        wi.noalias() = a.bottomRightCorner(len, len).selfadjointView<Eigen::Lower>() * x;
      }
      if (i > 0) {
        tmp.head(i).noalias() = w.block(j + 1, 0, len, i).transpose() * x;
        wi.noalias() -= a.block(j + 1, k, len, i) * tmp.head(i);
        tmp.head(i).noalias() = a.block(j + 1, k, len, i).transpose() * x;
        wi.noalias() -= w.block(j + 1, 0, len, i) * tmp.head(i);
      }
      wi *= tau;
      wi -= (0.5 * tau * wi.dot(x)) * x;
    }
    trailing_update(a, k + nb, w, k, nb, threads);
    for (Index j = k; j < k + nb && j + 1 < m; ++j) a(j + 1, j) = t->sub(j);
  }
}

namespace {

// Eigenvalues of the 2 x 2 block [a b; b c], b != 0, in either order.
void two_by_two(double a, double b, double c, double* rt1, double* rt2) {
  const double sum = a + c;
  const double big = std::fabs(a) > std::fabs(c) ? a : c, small = std::fabs(a) > std::fabs(c) ? c : a;
  const double rad = std::hypot(0.5 * (a - c), b);
  // The root of the sign of the trace is computed directly, the other from
  // the determinant, so neither cancels.
  *rt1 = sum > 0 ? 0.5 * sum + rad : sum < 0 ? 0.5 * sum - rad : rad;
  *rt2 = sum == 0 ? -rad : (big / *rt1) * small - (b / *rt1) * b;
}

// The Wilkinson-style shift of the leading 2 x 2 block [p ., . q] with
// squared off-diagonal e2 > 0: the eigenvalue of that block nearer p.
double shift(double p, double q, double e2) {
  const double rte = std::sqrt(e2);
  const double g = (q - p) / (2 * rte);
  return p - rte / (g + std::copysign(std::hypot(g, 1.0), g));
}

// The next p = gamma^2 / c of a root-free sweep, multiplying by 1 / c = r / p
// where that is finite (it overflows once p is subnormal), and old_c e^2 where
// c = 0 (sterf's rule).
inline double next_p(double gamma, double c, double inv_c, double if_c_zero) {
  if (c == 0) return if_c_zero;
  return std::isfinite(inv_c) ? gamma * gamma * inv_c : gamma * gamma / c;
}

// Powers of two leave the mantissas, and so the eigenvalues, exact.
void scale_block(VectorXd& d, VectorXd& e, Index lo, Index hi, int exponent) {
  for (Index i = lo; i <= hi; ++i) d(i) = std::ldexp(d(i), exponent);
  for (Index i = lo; i < hi; ++i) e(i) = std::ldexp(e(i), exponent);
}

}  // namespace

// Root-free implicit QL/QR (Pal, Walker and Kahan; LAPACK's sterf): the
// iteration runs on the squared off-diagonals, so a rotation costs a few
// divisions (independent of each other) and no square root, less than half
// of the classic QR's time. Blocks
// split at off-diagonals below eps sqrt|d_i d_i+1|; each block runs QL
// (deflating at its top) or QR (at its bottom) toward its larger-magnitude end,
// where the small eigenvalues that graded matrices hide are found first. A
// block near overflow or underflow is scaled first, since its squares
// would not be representable.
bool tridiagonal_eigenvalues(const Tridiagonal& t, VectorXd* values) {
  const Index m = t.diag.size();
  VectorXd& d = *values;
  d = t.diag;
  if (m <= 1) return m == 0 || std::isfinite(d(0));
  VectorXd e = t.sub;
  if (!d.allFinite() || !e.allFinite()) return false;
  constexpr double eps = 0.5 * kEps;  // unit roundoff
  constexpr double eps2 = eps * eps;
  // Bounds within which the squares and their products below neither overflow
  // nor underflow (LAPACK's choice).
  const double scale_max = std::sqrt(std::numeric_limits<double>::max()) / 3;
  const double scale_min = std::sqrt(std::numeric_limits<double>::min()) / eps2;
  const Index max_iterations = 30 * m;
  Index iterations = 0;
  for (Index first = 0; first < m;) {
    Index last = first;
    for (; last < m - 1; ++last) {
      const double bound = std::sqrt(std::fabs(d(last))) * std::sqrt(std::fabs(d(last + 1))) * eps;
      if (std::fabs(e(last)) <= bound) {
        e(last) = 0;
        break;
      }
    }
    const Index lo = first, hi = last;
    first = last + 1;
    if (hi == lo) continue;
    double norm = 0;
    for (Index i = lo; i <= hi; ++i) norm = std::max(norm, std::fabs(d(i)));
    for (Index i = lo; i < hi; ++i) norm = std::max(norm, std::fabs(e(i)));
    int exponent = 0;
    if (norm > scale_max) exponent = std::ilogb(scale_max) - std::ilogb(norm) - 1;
    else if (norm < scale_min) exponent = std::ilogb(scale_min) - std::ilogb(norm) + 1;
    if (exponent != 0) scale_block(d, e, lo, hi, exponent);
    for (Index i = lo; i < hi; ++i) e(i) *= e(i);
    if (std::fabs(d(hi)) >= std::fabs(d(lo))) {
      // QL: eigenvalues leave at the top, l rising to hi.
      for (Index l = lo; l <= hi;) {
        Index k = l;  // the first negligible e(k) at or below l, else hi
        while (k < hi && std::fabs(e(k)) > eps2 * std::fabs(d(k) * d(k + 1))) ++k;
        if (k < hi) e(k) = 0;
        if (k == l) {
          ++l;
          continue;
        }
        if (k == l + 1) {
          two_by_two(d(l), std::sqrt(e(l)), d(l + 1), &d(l), &d(l + 1));
          e(l) = 0;
          l += 2;
          continue;
        }
        if (++iterations > max_iterations) return false;
        // One implicit shifted QL sweep on rows l..k, from the bottom up, on
        // squared quantities only: c and s are the squared cosine and sine.
        const double sigma = shift(d(l), d(l + 1), e(l));
        double c = 1, s = 0, gamma = d(k) - sigma, p = gamma * gamma;
        for (Index i = k - 1; i >= l; --i) {
          const double bb = e(i), r = p + bb;
          if (i != k - 1) e(i + 1) = s * r;
          const double old_c = c, old_gamma = gamma, alpha = d(i);
          const double inv_c = r / p;  // computed beside c, off the critical path
          c = p / r;
          s = bb / r;
          gamma = c * (alpha - sigma) - s * old_gamma;
          d(i + 1) = old_gamma + (alpha - gamma);
          p = next_p(gamma, c, inv_c, old_c * bb);
        }
        e(l) = s * p;
        d(l) = sigma + gamma;
      }
    } else {
      // QR: the mirror image, eigenvalues leave at the bottom, l falling to lo.
      for (Index l = hi; l >= lo;) {
        Index k = l;  // the first negligible e(k - 1) at or above l, else lo
        while (k > lo && std::fabs(e(k - 1)) > eps2 * std::fabs(d(k) * d(k - 1))) --k;
        if (k > lo) e(k - 1) = 0;
        if (k == l) {
          --l;
          continue;
        }
        if (k == l - 1) {
          two_by_two(d(l), std::sqrt(e(l - 1)), d(l - 1), &d(l), &d(l - 1));
          e(l - 1) = 0;
          l -= 2;
          continue;
        }
        if (++iterations > max_iterations) return false;
        const double sigma = shift(d(l), d(l - 1), e(l - 1));
        double c = 1, s = 0, gamma = d(k) - sigma, p = gamma * gamma;
        for (Index i = k; i < l; ++i) {
          const double bb = e(i), r = p + bb;
          if (i != k) e(i - 1) = s * r;
          const double old_c = c, old_gamma = gamma, alpha = d(i + 1);
          const double inv_c = r / p;  // computed beside c, off the critical path
          c = p / r;
          s = bb / r;
          gamma = c * (alpha - sigma) - s * old_gamma;
          d(i) = old_gamma + (alpha - gamma);
          p = next_p(gamma, c, inv_c, old_c * bb);
        }
        e(l - 1) = s * p;
        d(l) = sigma + gamma;
      }
    }
    if (exponent != 0)
      for (Index i = lo; i <= hi; ++i) d(i) = std::ldexp(d(i), -exponent);
  }
  // Overflow inside a sweep would stop it looking like a converging one.
  if (!d.allFinite()) return false;
  std::sort(d.data(), d.data() + m);
  return true;
}

bool tridiagonal_eigenvectors(const Tridiagonal& t, const double* values, int count, MatrixXd* z) {
  const Index m = t.diag.size();
  z->setZero(m, count);
  if (m == 0 || count == 0) return true;
  const VectorXd& d = t.diag;
  const VectorXd& e = t.sub;
  double norm = 0;  // infinity norm of T
  for (Index i = 0; i < m; ++i)
    norm = std::max(norm, std::fabs(d(i)) + (i > 0 ? std::fabs(e(i - 1)) : 0.0) + (i + 1 < m ? std::fabs(e(i)) : 0.0));
  if (norm == 0) {
    for (int j = 0; j < count && j < m; ++j) (*z)(j, j) = 1;
    return true;
  }
  const double tiny = kEps * norm;
  const double cluster = 1e-3 * norm;
  // Residuals of inverse iteration are a small multiple of eps ||T|| (growing
  // slowly with m); far above that, the vector is not an eigenvector and the
  // caller must not use it.
  const double tolerance = 256 * kEps * norm * std::sqrt(double(m));
  std::vector<double> lo(m), dd(m), up(m), up2(m), x(m);
  std::vector<char> swapped(m);
  Index first_in_cluster = 0;
  for (int j = 0; j < count; ++j) {
    const double lambda = values[j];
    if (j > 0 && values[j - 1] - lambda > cluster) first_in_cluster = j;
    // LU with partial pivoting of T - lambda I (LAPACK gttrf); pivots that
    // vanish are replaced by eps ||T||, which inverse iteration tolerates.
    for (Index i = 0; i < m; ++i) {
      dd[i] = d(i) - lambda;
      if (i + 1 < m) lo[i] = up[i] = e(i);
      up2[i] = 0;
    }
    for (Index i = 0; i + 1 < m; ++i) {
      swapped[i] = std::fabs(dd[i]) < std::fabs(lo[i]);
      if (!swapped[i]) {
        if (dd[i] == 0) dd[i] = tiny;
        lo[i] /= dd[i];
        dd[i + 1] -= lo[i] * up[i];
      } else {
        const double f = dd[i] / lo[i];
        dd[i] = lo[i];
        lo[i] = f;
        const double u = up[i];
        up[i] = dd[i + 1];
        dd[i + 1] = u - f * dd[i + 1];
        if (i + 2 < m) {
          up2[i] = up[i + 1];
          up[i + 1] = -f * up[i + 1];
        }
      }
    }
    for (Index i = 0; i < m; ++i)
      if (std::fabs(dd[i]) < tiny) dd[i] = dd[i] < 0 ? -tiny : tiny;
    // A fixed, component-rich start (a deterministic sequence, not a seeded
    // random one: no state to carry across calls or threads).
    for (Index i = 0; i < m; ++i) x[i] = 1.0 + 0.5 * std::sin(0.7 * double(i) + 1.3 * double(j));
    auto col = z->col(j);
    for (int it = 0; it < 3; ++it) {
      for (Index i = 0; i + 1 < m; ++i) {
        if (swapped[i]) std::swap(x[i], x[i + 1]);
        x[i + 1] -= lo[i] * x[i];
      }
      x[m - 1] /= dd[m - 1];
      if (m >= 2) x[m - 2] = (x[m - 2] - up[m - 2] * x[m - 1]) / dd[m - 2];
      for (Index i = m - 3; i >= 0; --i) x[i] = (x[i] - up[i] * x[i + 1] - up2[i] * x[i + 2]) / dd[i];
      for (Index i = 0; i < m; ++i) col(i) = x[i];
      // Close eigenvalues leave their vectors free to mix: keep them orthogonal.
      for (Index p = first_in_cluster; p < j; ++p) col -= z->col(p).dot(col) * z->col(p);
      const double n2 = col.norm();
      if (!(n2 > 0) || !std::isfinite(n2)) return false;
      col /= n2;
      for (Index i = 0; i < m; ++i) x[i] = col(i);
    }
    double r2 = 0;
    for (Index i = 0; i < m; ++i) {
      double r = (d(i) - lambda) * col(i);
      if (i > 0) r += e(i - 1) * col(i - 1);
      if (i + 1 < m) r += e(i) * col(i + 1);
      r2 += r * r;
    }
    if (!(std::sqrt(r2) <= tolerance)) return false;
  }
  return true;
}

void apply_q(const MatrixXd& a, const Tridiagonal& t, MatrixXd* z) {
  const Index m = a.rows();
  if (m < 2) return;
  Eigen::HouseholderSequence<MatrixXd, VectorXd> q(a, t.tau);
  q.setLength(m - 1).setShift(1);
  z->applyOnTheLeft(q);
}

namespace {

// Copies A's strictly lower triangle from row and column s on into the upper
// one, by square tiles so that both sides stay in cache. Bound by memory
// bandwidth, which a second core adds to: worker t takes tile columns t,
// t + workers, ... (the tall left ones spread out).
void mirror_lower(MatrixRef a, Index s, int threads) {
  constexpr Index kTile = 32;
  const Index m = a.rows();
  if (s >= m) return;
  const Index columns = (m - s + kTile - 1) / kTile;
  const int workers = m - s < kMinParallelRows ? 1 : static_cast<int>(std::min<Index>(threads, columns));
  parallel_for(workers, workers, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      for (Index col = t; col < columns; col += workers) {
        const Index j0 = s + col * kTile, bj = std::min(kTile, m - j0);
        auto diag = a.block(j0, j0, bj, bj);
        diag.triangularView<Eigen::StrictlyUpper>() = diag.transpose();
        for (Index i0 = j0 + bj; i0 < m; i0 += kTile) {
          const Index bi = std::min(kTile, m - i0);
          a.block(j0, i0, bj, bi) = a.block(i0, j0, bi, bj).transpose();
        }
      }
    }
  });
}

// C += alpha op(A) B on column-major matrices (lda, ldb, ldc apart), op(A)
// rows x depth, A used as is or transposed: by the packed product where this
// build has one.
void multiply(Index rows, Index cols, Index depth, const double* a, Index lda, bool trans_a, const double* b,
              Index ldb, double alpha, double* c, Index ldc, int threads) {
  if (const detail::GemmKernels* kern = detail::fast_gemm_kernels()) {
    // Column-major C is row-major C^T = B^T op(A)^T.
    const detail::Strided at = trans_a ? detail::Strided{a, 1, lda} : detail::Strided{a, lda, 1};
    detail::gemm_accumulate(*kern, cols, rows, depth, detail::Strided{b, ldb, 1}, at, alpha, c, ldc, 0, threads);
    return;
  }
  using ConstStrided = Eigen::Map<const MatrixXd, 0, Eigen::OuterStride<>>;
  const ConstStrided am(a, trans_a ? depth : rows, trans_a ? rows : depth, Eigen::OuterStride<>(lda));
  const ConstStrided bm(b, depth, cols, Eigen::OuterStride<>(ldb));
  Eigen::Map<MatrixXd, 0, Eigen::OuterStride<>> cm(c, rows, cols, Eigen::OuterStride<>(ldc));
  if (trans_a) cm.noalias() += alpha * am.transpose() * bm;
  else cm.noalias() += alpha * am * bm;
}

// Stage 1: Q^T A Q = B with B of bandwidth `band`, by panels of `band`
// columns. Each panel below the band is QR-factored (Householder), and the
// trailing matrix gets both sides of Q = I - V T V^T as A V (a product) and
// a rank-2k update: every pass over the trailing matrix does `band` times the
// work of sytrd's matrix-vector product per column. The band is left in A's
// lower triangle; entries further down are undefined.
void reduce_to_band(MatrixRef a, Index band, int threads) {
  const Index m = a.rows();
  const bool fast = detail::fast_gemm_kernels() != nullptr;
  // The packed product reads the trailing matrix as a plain one: keep both
  // triangles (Eigen's fallback reads the lower one only).
  if (fast) mirror_lower(a, 0, threads);
  // Columns [V W V]: V W^T + W V^T is then one product of [V W] (r x 2h) by
  // [W V]^T, a single pass over the trailing matrix with twice the depth.
  MatrixXd vwv(m, 3 * band), y(m, band), t(band, band), z(band, band), tz(band, band);
  VectorXd work(band);
  std::vector<double> y_rows(size_t(m * band));
  for (Index k = 0; k + band + 1 < m; k += band) {
    const Index s = k + band, r = m - s, h = std::min(band, r - 1);
    auto panel = a.block(s, k, r, band);
    auto vr = vwv.block(0, 0, r, h);
    auto wr = vwv.block(0, h, r, h);
    auto yr = y.topLeftCorner(r, h);
    auto th = t.topLeftCorner(h, h);
    auto zh = z.topLeftCorner(h, h);
    vr.setZero();
    th.setZero();
    for (Index q = 0; q < h; ++q) {
      auto x = panel.col(q).tail(r - q);
      double tau = 0, beta = 0;
      x.makeHouseholderInPlace(tau, beta);
      vr(q, q) = 1;
      vr.col(q).tail(r - q - 1) = x.tail(r - q - 1);
      if (q + 1 < band)
        panel.block(q, q + 1, r - q, band - q - 1).applyHouseholderOnTheLeft(x.tail(r - q - 1), tau, work.data());
      x(0) = beta;
      x.tail(r - q - 1).setZero();
      th(q, q) = tau;
    }
    // T of the compact WY form (LAPACK larft) from S = V^T V: column q is
    // -tau_q T(0:q, 0:q) S(0:q, q).
    zh.setZero();
    multiply(h, h, r, vr.data(), m, true, vr.data(), m, 1.0, zh.data(), band, 1);
    for (Index q = 1; q < h; ++q)
      th.col(q).head(q) = th.topLeftCorner(q, q).triangularView<Eigen::Upper>() * (-th(q, q) * zh.col(q).head(q));
    // Y = A22 V; W = Y T - V (T^T V^T Y T) / 2: then Q^T A22 Q = A22 - V W^T - W V^T.
    if (fast) {
      // A22 is symmetric and whole: as the product's left operand read by
      // rows, its packing walks a few columns from top to bottom, which the
      // prefetcher follows. The product comes out row-major.
      Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> yt(y_rows.data(), r, h);
      yt.setZero();
      detail::gemm_accumulate(*detail::fast_gemm_kernels(), r, h, r, detail::Strided{&a(s, s), m, 1},
                              detail::Strided{vr.data(), 1, m}, 1.0, yt.data(), h, 0, threads);
      yr = yt;
    } else {
      yr.noalias() = a.bottomRightCorner(r, r).selfadjointView<Eigen::Lower>() * vr;
    }
    wr.setZero();
    multiply(r, h, h, yr.data(), m, false, th.data(), band, 1.0, wr.data(), m, threads);
    zh.setZero();
    multiply(h, h, r, vr.data(), m, true, wr.data(), m, 1.0, zh.data(), band, 1);
    auto tzh = tz.topLeftCorner(h, h);
    tzh.noalias() = th.transpose().triangularView<Eigen::Lower>() * zh;
    multiply(r, h, h, vr.data(), m, false, tzh.data(), band, -0.5, wr.data(), m, threads);
    if (fast) {
      vwv.block(0, 2 * h, r, h) = vr;
      // Column-major A22's lower triangle is row-major C's upper one:
      // C(i, j) -= sum_p [W V](i, p) [V W](j, p) over p < 2h.
      detail::gemm_accumulate(*detail::fast_gemm_kernels(), r, r, 2 * h, detail::Strided{vwv.data() + h * m, 1, m},
                              detail::Strided{vwv.data(), m, 1}, -1.0, &a(s, s), m, -1, threads);
      mirror_lower(a, s + band, threads);
    } else {
      rank2k_lower(a, s, vr.data(), m, wr.data(), m, h, threads);
    }
  }
}

// sum_i a[i] b[i] in four interleaved partial sums: the band sweep's dot
// products are short, so a single chain of dependent additions would bound
// them. The order is fixed, so the result is too.
double dot(const double* a, const double* b, Index n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  Index i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

// Stage 2 (Lang's bulge chasing): sweep j annihilates column j of the band
// below its subdiagonal with one reflector, which fills a bulge in the next
// block down; a reflector on the bulge's first column pushes it `band` rows
// further, and so on off the end. The rest of each bulge is removed by the
// next sweep, so nothing wider than 2 * band is ever stored.
//
// Storage: A(i, j), 0 <= i - j <= 2 * band, at ab[i + j * ld] with
// ld = 2 * band: a block inside the strip is then an ordinary column-major
// matrix with leading dimension ld.
class BandChaser {
 public:
  BandChaser(const Eigen::Ref<const MatrixXd>& a, Index band)
      : m_(a.rows()), band_(band), ld_(2 * band), ab_(size_t((ld_ + 1) * m_), 0.0), v_(size_t(band)), w_(size_t(band)) {
    for (Index j = 0; j < m_; ++j)
      for (Index i = j; i < std::min(m_, j + band_ + 1); ++i) *at(i, j) = a(i, j);
  }

  void run(Tridiagonal* t) {
    for (Index j = 0; j + 2 < m_; ++j) {
      Index c = j, r0 = j + 1, len = std::min(band_, m_ - r0);
      while (len >= 2) {
        chase(c, r0, len);
        c = r0;
        r0 += len;
        len = std::min(band_, m_ - r0);
      }
    }
    t->diag.resize(m_);
    t->sub.resize(std::max<Index>(m_ - 1, 0));
    t->tau.resize(0);
    for (Index j = 0; j < m_; ++j) {
      t->diag(j) = *at(j, j);
      if (j + 1 < m_) t->sub(j) = *at(j + 1, j);
    }
  }

 private:
  double* at(Index i, Index j) { return ab_.data() + i + j * ld_; }

  // Rows r0..r0+len-1 of column c become (beta, 0, ...) by H = I - tau v v^T,
  // applied to those rows left of the diagonal block (the bulge's other
  // columns, c+1..r0-1), to both sides of the diagonal block (its lower
  // triangle: the upper one is outside the strip), and from the right to the
  // block below it, which makes the next bulge.
  void chase(Index c, Index r0, Index len) {
    double* x = at(r0, c);
    Eigen::Map<VectorXd> xv(x, len);
    double tau = 0, beta = 0;
    xv.makeHouseholderInPlace(tau, beta);
    double* v = v_.data();
    double* w = w_.data();
    v[0] = 1;
    for (Index i = 1; i < len; ++i) v[i] = x[i];
    x[0] = beta;
    std::fill(x + 1, x + len, 0.0);
    if (tau == 0) return;
    for (Index q = c + 1; q < r0; ++q) {
      double* col = at(r0, q);
      const double d = tau * dot(v, col, len);
      for (Index i = 0; i < len; ++i) col[i] -= d * v[i];
    }
    // w = tau D v - (tau^2 v^T D v / 2) v; D -= v w^T + w v^T.
    std::fill(w, w + len, 0.0);
    for (Index j = 0; j < len; ++j) {
      const double* dj = at(r0 + j, r0 + j);
      for (Index i = j + 1; i < len; ++i) w[i] += dj[i - j] * v[j];
      w[j] += dj[0] * v[j] + dot(dj + 1, v + j + 1, len - j - 1);
    }
    for (Index i = 0; i < len; ++i) w[i] *= tau;
    const double alpha = 0.5 * tau * dot(w, v, len);
    for (Index i = 0; i < len; ++i) w[i] -= alpha * v[i];
    for (Index j = 0; j < len; ++j) {
      double* dj = at(r0 + j, r0 + j);
      for (Index i = j; i < len; ++i) dj[i - j] -= v[i] * w[j] + w[i] * v[j];
    }
    const Index below = std::min(band_, m_ - r0 - len);
    if (below <= 0) return;
    // E -= tau (E v) v^T, E = rows r0+len.., columns r0..r0+len-1.
    double* y = w;  // free again; below <= band
    std::fill(y, y + below, 0.0);
    for (Index j = 0; j < len; ++j) {
      const double* ej = at(r0 + len, r0 + j);
      for (Index i = 0; i < below; ++i) y[i] += ej[i] * v[j];
    }
    for (Index j = 0; j < len; ++j) {
      double* ej = at(r0 + len, r0 + j);
      const double f = tau * v[j];
      for (Index i = 0; i < below; ++i) ej[i] -= f * y[i];
    }
  }

  Index m_, band_, ld_;
  std::vector<double> ab_, v_, w_;
};

}  // namespace

void tridiagonalize_two_stage(MatrixRef a, Index band, Tridiagonal* t, int threads) {
  band = std::max<Index>(1, std::min(band, a.rows()));
  reduce_to_band(a, band, threads);
  BandChaser(a, band).run(t);
}

}  // namespace eig
}  // namespace dac
