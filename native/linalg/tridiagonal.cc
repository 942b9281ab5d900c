#include "tridiagonal.h"

#include <algorithm>
#include <cmath>
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

// A(s:, s:) -= V W^T + W V^T on the lower triangle, V = A(s:, k:k+nb) and
// W = w(s:, 0:nb).
void trailing_update(MatrixXd& a, Index s, const MatrixXd& w, Index k, Index nb, int threads) {
  const Index r = a.rows() - s;
  if (r <= 0) return;
  if (const detail::GemmKernels* kern = detail::fast_gemm_kernels()) {
    // Read row-major, column-major A's lower triangle is the upper one.
    const Index m = a.rows();
    const detail::Strided v{a.data() + k * m + s, 1, m}, vt{a.data() + k * m + s, m, 1};
    const detail::Strided wv{w.data() + s, 1, m}, wt{w.data() + s, m, 1};
    double* c = a.data() + s * m + s;
    detail::gemm_accumulate(*kern, r, r, nb, v, wt, -1.0, c, m, -1, threads);
    detail::gemm_accumulate(*kern, r, r, nb, wv, vt, -1.0, c, m, -1, threads);
    return;
  }
  const auto v = a.block(s, k, r, nb);
  const auto wt = w.block(s, 0, r, nb);
  const Index blocks = (r + kUpdateBlock - 1) / kUpdateBlock;
  const int workers = r < kMinParallelRows ? 1 : static_cast<int>(std::min<Index>(threads, blocks));
  // By column blocks; worker t takes blocks t, t + workers, ... so the tall
  // left blocks are spread out. The products read columns k..k+nb-1 of A
  // and write columns >= s: no overlap.
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

}  // namespace

void tridiagonalize(MatrixXd& a, Tridiagonal* t, int threads) {
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

bool tridiagonal_eigenvalues(const Tridiagonal& t, VectorXd* values) {
  const Index m = t.diag.size();
  if (m == 0) {
    values->resize(0);
    return true;
  }
  Eigen::SelfAdjointEigenSolver<MatrixXd> solver;
  solver.computeFromTridiagonal(t.diag, t.sub, Eigen::EigenvaluesOnly);
  if (solver.info() != Eigen::Success) return false;
  *values = solver.eigenvalues();
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

}  // namespace eig
}  // namespace dac
