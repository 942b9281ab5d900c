#include "linalg.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../common/parallel.h"
#include "gemm.h"
#include "tridiagonal.h"

namespace dac {
namespace {

using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Map = Eigen::Map<RowMat>;
using ConstMap = Eigen::Map<const RowMat>;

// Cholesky panel width: the diagonal block is factored column by column with
// the pivot floor, the rest goes through Eigen's blocked triangular solve and
// symmetric rank-k update.
constexpr int kBlock = 64;

Status check_dims(const char* fn, std::initializer_list<std::pair<const char*, int>> dims) {
  for (const auto& d : dims) {
    if (d.second < 0)
      return Status::Error(std::string(fn) + ": " + d.first + " must be >= 0, got " + std::to_string(d.second));
  }
  return Status::Ok();
}

Status check_buffer(const char* fn, const char* field, const void* data, int64_t length, int64_t need) {
  if (data == nullptr && need > 0) return Status::Error(std::string(fn) + ": " + field + " is null");
  if (length != need)
    return Status::Error(std::string(fn) + ": " + field + " length " + std::to_string(length) +
                         " does not match the required " + std::to_string(need));
  return Status::Ok();
}

}  // namespace

Status gemm(const GemmParams& p) {
  Status s = check_dims("gemm", {{"m", p.m}, {"n", p.n}, {"k", p.k}});
  if (!s.ok) return s;
  const int64_t m = p.m, n = p.n, k = p.k;
  if (!(s = check_buffer("gemm", "a", p.a, p.a_length, m * k)).ok) return s;
  if (!(s = check_buffer("gemm", "b", p.b, p.b_length, k * n)).ok) return s;
  if (!(s = check_buffer("gemm", "c", p.c, p.c_length, m * n)).ok) return s;
  if (m == 0 || n == 0) return Status::Ok();
  Map c(p.c, m, n);
  if (k == 0) {
    c.setZero();
    return Status::Ok();
  }
  // X X^T or X^T X: one buffer on both sides, read as the same matrix (views of one buffer may differ in rows).
  const bool gram = p.a == p.b && p.trans_a != p.trans_b && m == n;
  if (const detail::GemmKernels* kern = detail::fast_gemm_kernels()) {
    // op(A)(i, j) and op(B)(i, j) as strided views of the row-major buffers.
    const detail::Strided a = p.trans_a ? detail::Strided{p.a, 1, m} : detail::Strided{p.a, k, 1};
    const detail::Strided b = p.trans_b ? detail::Strided{p.b, 1, k} : detail::Strided{p.b, n, 1};
    c.setZero();
    // A Gram matrix is symmetric: its lower triangle (half the work), mirrored.
    detail::gemm_accumulate(*kern, m, n, k, a, b, 1.0, p.c, n, gram ? 1 : 0, p.threads);
    if (gram) c.triangularView<Eigen::StrictlyUpper>() = c.transpose();
    return Status::Ok();
  }
  ConstMap a(p.a, p.trans_a ? k : m, p.trans_a ? m : k);
  ConstMap b(p.b, p.trans_b ? n : k, p.trans_b ? k : n);
  if (gram) {
    // X X^T or X^T X: symmetric, so a rank-k update of one triangle, mirrored (half the work).
    c.setZero();
    if (p.trans_b) c.selfadjointView<Eigen::Lower>().rankUpdate(a);
    else c.selfadjointView<Eigen::Lower>().rankUpdate(a.transpose());
    c.triangularView<Eigen::StrictlyUpper>() = c.transpose();
    return Status::Ok();
  }
  if (p.trans_a && p.trans_b) c.noalias() = a.transpose() * b.transpose();
  else if (p.trans_a) c.noalias() = a.transpose() * b;
  else if (p.trans_b) c.noalias() = a * b.transpose();
  else c.noalias() = a * b;
  return Status::Ok();
}

namespace {

// The blocked right-looking factorization of cholesky(), in place on the
// lower triangle of `a` (ridge already added).
void factor_blocked(Map& a, int64_t m, double floor) {
  // A pivot below the floor means the matrix is not positive semi-definite
  // there (beyond what the ridge covers): that column is dropped (zero below
  // the diagonal) instead of dividing by a vanishing pivot.
  std::vector<char> dropped(static_cast<size_t>(m), 0);
  for (int64_t k0 = 0; k0 < m; k0 += kBlock) {
    const int64_t nb = std::min<int64_t>(kBlock, m - k0);
    // The diagonal block already holds every update from earlier panels.
    for (int64_t i = k0; i < k0 + nb; ++i) {
      for (int64_t j = k0; j <= i; ++j) {
        const double v = a(i, j) - a.row(i).segment(k0, j - k0).dot(a.row(j).segment(k0, j - k0));
        if (i == j) {
          dropped[size_t(i)] = v < floor;
          a(i, i) = std::sqrt(dropped[size_t(i)] ? floor : v);
        } else {
          a(i, j) = dropped[size_t(j)] ? 0.0 : v / a(j, j);
        }
      }
    }
    const int64_t rest = m - k0 - nb;
    if (rest == 0) break;
    auto a21 = a.block(k0 + nb, k0, rest, nb);
    a.block(k0, k0, nb, nb).transpose().triangularView<Eigen::Upper>().solveInPlace<Eigen::OnTheRight>(a21);
    // Later columns of the panel do not depend on a dropped one (its entries in the block are zero).
    for (int64_t j = 0; j < nb; ++j) {
      if (dropped[size_t(k0 + j)]) a21.col(j).setZero();
    }
    a.block(k0 + nb, k0 + nb, rest, rest).selfadjointView<Eigen::Lower>().rankUpdate(a21, -1.0);
  }
}

}  // namespace

Status cholesky(const CholeskyParams& p) {
  Status s = check_dims("cholesky", {{"m", p.m}});
  if (!s.ok) return s;
  const int64_t m = p.m;
  if (!(s = check_buffer("cholesky", "a", p.a, p.a_length, m * m)).ok) return s;
  if (!std::isfinite(p.ridge) || p.ridge < 0)
    return Status::Error("cholesky: ridge must be a finite number >= 0, got " + std::to_string(p.ridge));
  if (m == 0) return Status::Ok();
  Map a(p.a, m, m);
  const double mean = a.diagonal().sum() / static_cast<double>(m);
  const double add = p.ridge * (mean > 0 ? mean : 1.0);
  const double floor = add > 0 ? add * 1e-6 : 1e-300;
  a.diagonal().array() += add;
  bool diagonal = true;
  for (int64_t i = 1; i < m && diagonal; ++i)
    for (int64_t j = 0; j < i; ++j)
      if (a(i, j) != 0) {
        diagonal = false;
        break;
      }
  if (diagonal) {
    // Diagonal (the planner's plain weighting): what factor_blocked computes
    // for it, without its O(m^3) products.
    for (int64_t i = 0; i < m; ++i) a(i, i) = std::sqrt(a(i, i) < floor ? floor : a(i, i));
  } else {
    factor_blocked(a, m, floor);
  }
  a.triangularView<Eigen::StrictlyUpper>().setZero();
  for (int64_t i = 0; i < m; ++i) {
    if (!std::isfinite(a(i, i)))
      return Status::Error("cholesky: the matrix has non-finite entries (row " + std::to_string(i) + ")");
  }
  return Status::Ok();
}

Status triangular_solve(const TriangularSolveParams& p) {
  Status s = check_dims("triangularSolve", {{"m", p.m}, {"k", p.k}, {"rows", p.rows}});
  if (!s.ok) return s;
  const int64_t m = p.m, k = p.k, rows = p.rows;
  if (k > m) return Status::Error("triangularSolve: k " + std::to_string(k) + " exceeds m " + std::to_string(m));
  if (!(s = check_buffer("triangularSolve", "l", p.l, p.l_length, m * m)).ok) return s;
  if (!(s = check_buffer("triangularSolve", "b", p.b, p.b_length, rows * k)).ok) return s;
  if (k == 0 || rows == 0) return Status::Ok();
  ConstMap l(p.l, m, m);
  for (int64_t i = 0; i < k; ++i) {
    if (!(l(i, i) != 0) || !std::isfinite(l(i, i)))
      return Status::Error("triangularSolve: diagonal entry " + std::to_string(i) + " is zero or not finite");
  }
  Map b(p.b, rows, k);
  if (p.transpose) l.topLeftCorner(k, k).transpose().triangularView<Eigen::Upper>().solveInPlace<Eigen::OnTheRight>(b);
  else l.topLeftCorner(k, k).triangularView<Eigen::Lower>().solveInPlace<Eigen::OnTheRight>(b);
  return Status::Ok();
}

namespace {

// Once the trailing matrix no longer stays in cache across sytrd's per-column
// matrix-vector products, the two-stage reduction (matrix products, then a
// band sweep) wins: measured even at 768 and 1024, 1.25x at 1536 (one
// thread). Band width: the sweep's cost grows with it, the products' passes
// over memory shrink; 24 (a multiple of every GEMM variant's tile) measured
// best at 1536 among 16..64.
constexpr int64_t kTwoStageFrom = 1024;
constexpr Eigen::Index kTwoStageBand = 24;

// One matrix of symmetric_eigenvalues: a row-major m x m, values its m outputs;
// with `overwrite`, reduced in `data` itself.
Status eigenvalues_of(double* data, int64_t m, double* values, int threads, bool overwrite) {
  // Only the lower triangle is read, into a column-major matrix whose upper
  // triangle is zero: a copy, or `data` turned so in place.
  Eigen::MatrixXd copy;
  if (overwrite) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < i; ++j) {
        data[j * m + i] = data[i * m + j];
        data[i * m + j] = 0;
      }
  } else {
    copy = ConstMap(data, m, m).triangularView<Eigen::Lower>();
  }
  Eigen::Map<Eigen::MatrixXd> lower(overwrite ? data : copy.data(), m, m);
  // Scaled to a largest entry of 1 so that no squared norm in the reduction
  // can overflow or underflow.
  if (!lower.allFinite()) return Status::Error("symmetricEigenvalues: the matrix has non-finite entries");
  const double scale = lower.cwiseAbs().maxCoeff();
  if (scale == 0) {
    std::fill(values, values + m, 0.0);
    return Status::Ok();
  }
  lower /= scale;
  eig::Tridiagonal t;
  if (m >= kTwoStageFrom) eig::tridiagonalize_two_stage(lower, kTwoStageBand, &t, threads);
  else eig::tridiagonalize(lower, &t, threads);
  Eigen::VectorXd ev;
  if (!eig::tridiagonal_eigenvalues(t, &ev))
    return Status::Error("symmetricEigenvalues: the QR iteration did not converge");
  for (int64_t i = 0; i < m; ++i) values[i] = ev(m - 1 - i) * scale;
  return Status::Ok();
}

}  // namespace

Status symmetric_eigenvalues(const SymmetricEigenvaluesParams& p) {
  Status s = check_dims("symmetricEigenvalues", {{"m", p.m}, {"count", p.count}});
  if (!s.ok) return s;
  const int64_t m = p.m, count = p.count;
  if (m > 0 && count > std::numeric_limits<int64_t>::max() / (m * m))
    return Status::Error("symmetricEigenvalues: count * m * m overflows");
  if (!(s = check_buffer("symmetricEigenvalues", "a", p.a, p.a_length, count * m * m)).ok) return s;
  if (!(s = check_buffer("symmetricEigenvalues", "values", p.values, p.values_length, count * m)).ok) return s;
  if (m == 0 || count == 0) return Status::Ok();
  if (count == 1) return eigenvalues_of(p.a, m, p.values, p.threads, p.overwrite);
  std::vector<Status> status(count, Status::Ok());
  parallel_for(count, static_cast<int>(std::min<int64_t>(std::max(p.threads, 1), count)), [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) status[k] = eigenvalues_of(p.a + k * m * m, m, p.values + k * m, 1, p.overwrite);
  });
  for (const Status& st : status)
    if (!st.ok) return st;
  return Status::Ok();
}

}  // namespace dac
