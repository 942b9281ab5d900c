#include <algorithm>
#include <cmath>

#include "../common/parallel.h"
#include "../linalg/gemm.h"
#include "../linalg/tridiagonal.h"
#include "decompose_internal.h"

namespace dac {
namespace detail {

using Eigen::Index;
using Eigen::MatrixXd;

// Below this many multiply-adds a product is not worth a thread.
constexpr double kMinParallelWork = 4e6;

int64_t sign_pivot(const double* v, int64_t len) {
  double maxabs = 0;
  for (int64_t i = 0; i < len; ++i) maxabs = std::max(maxabs, std::fabs(v[i]));
  const double cut = maxabs * (1 - 1e-9);
  for (int64_t i = 0; i < len; ++i)
    if (std::fabs(v[i]) >= cut) return i;
  return 0;
}

static int workers_for(double work, int threads) {
  if (threads <= 1 || work < kMinParallelWork) return 1;
  return std::max(1, std::min<int>(threads, static_cast<int>(work / kMinParallelWork)));
}

// Lower triangle of A^T A (right_side) or A A^T. With several workers each
// sums a slab of the shared dimension into its own matrix.
void TruncatedSvd::gram(const MatrixXd& A, bool right_side, int threads) {
  const Index m = right_side ? A.cols() : A.rows();
  const Index len = right_side ? A.rows() : A.cols();
  gram_.setZero(m, m);
  if (const GemmKernels* kern = fast_gemm_kernels()) {
    // Row-major, the column-major lower triangle is the upper one; the
    // operands are views of A (R rows, column-major).
    const Index R = A.rows();
    const Strided a{A.data(), right_side ? R : 1, right_side ? 1 : R};
    const Strided at{A.data(), right_side ? 1 : R, right_side ? R : 1};
    gemm_accumulate(*kern, m, m, len, a, at, 1.0, gram_.data(), m, -1, threads);
    return;
  }
  const int workers = workers_for(0.5 * double(m) * double(m) * double(len), threads);
  if (workers == 1) {
    if (right_side)
      gram_.selfadjointView<Eigen::Lower>().rankUpdate(A.transpose());
    else
      gram_.selfadjointView<Eigen::Lower>().rankUpdate(A);
    return;
  }
  partial_.resize(static_cast<size_t>(workers));
  const Index chunk = (len + workers - 1) / workers;
  parallel_for(workers, workers, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      MatrixXd& g = partial_[static_cast<size_t>(t)];
      g.setZero(m, m);
      const Index s = t * chunk, n = std::min(len, s + chunk) - s;
      if (n <= 0) continue;
      if (right_side)
        g.selfadjointView<Eigen::Lower>().rankUpdate(A.middleRows(s, n).transpose());
      else
        g.selfadjointView<Eigen::Lower>().rankUpdate(A.middleCols(s, n));
    }
  });
  for (const MatrixXd& g : partial_) gram_.triangularView<Eigen::Lower>() += g;
}

// y_ = A q_ (q_ holds right vectors) or A^T q_ (left vectors), split by rows of y_.
void TruncatedSvd::project(const MatrixXd& A, bool right_side, int threads) {
  const Index rows = right_side ? A.rows() : A.cols();
  const Index inner = right_side ? A.cols() : A.rows();
  y_.resize(rows, q_.cols());
  if (const GemmKernels* kern = fast_gemm_kernels()) {
    // y_^T = q_^T op(A)^T, row-major y_^T being column-major y_.
    y_.setZero();
    const Index R = A.rows(), Q = q_.rows();
    const Strided qt{q_.data(), Q, 1};
    const Strided at{A.data(), right_side ? R : 1, right_side ? 1 : R};
    gemm_accumulate(*kern, q_.cols(), rows, inner, qt, at, 1.0, y_.data(), rows, 0, threads);
    return;
  }
  const int workers = workers_for(double(rows) * double(inner) * double(q_.cols()), threads);
  const Index chunk = (rows + workers - 1) / workers;
  parallel_for(workers, workers, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const Index s = t * chunk, n = std::min(rows, s + chunk) - s;
      if (n <= 0) continue;
      if (right_side)
        y_.middleRows(s, n).noalias() = A.middleRows(s, n) * q_;
      else
        y_.middleRows(s, n).noalias() = A.middleCols(s, n).transpose() * q_;
    }
  });
}

void TruncatedSvd::exact_svd(const MatrixXd& A, int width, bool first_is_right) {
  auto take = [&](const auto& svd) {
    sigma = svd.singularValues();
    const MatrixXd& f = first_is_right ? svd.matrixV() : svd.matrixU();
    const MatrixXd& s = first_is_right ? svd.matrixU() : svd.matrixV();
    first = f.leftCols(width);
    second = s.leftCols(width) * sigma.head(width).asDiagonal();
  };
  // Jacobi is the most accurate; divide-and-conquer keeps big matrices tractable.
  if (std::min(A.rows(), A.cols()) <= 64)
    take(Eigen::JacobiSVD<MatrixXd>(A, Eigen::ComputeThinU | Eigen::ComputeThinV));
  else
    take(Eigen::BDCSVD<MatrixXd>(A, Eigen::ComputeThinU | Eigen::ComputeThinV));
}

void TruncatedSvd::finish(int width) {
  const double smax = sigma.size() > 0 ? sigma(0) : 0.0;
  for (int j = 0; j < width; ++j) {
    if (!(sigma(j) > kNullTolerance * smax)) {
      first.col(j).setZero();
      second.col(j).setZero();
      continue;
    }
    const int64_t p = sign_pivot(first.col(j).data(), first.rows());
    if (first(p, j) < 0) {
      first.col(j) *= -1.0;
      second.col(j) *= -1.0;
    }
  }
}

Status TruncatedSvd::compute(const MatrixXd& A, int width, bool first_is_right,
                             int threads) {
  const Index R = A.rows(), C = A.cols(), m = std::min(R, C);
  const bool right_side = C <= R;
  gram(A, right_side, threads);
  // Every entry of A is squared into some diagonal element, so a NaN or Inf
  // anywhere makes the trace non-finite (finite floats cannot overflow double).
  const double trace = gram_.diagonal().sum();
  if (!std::isfinite(trace)) return Status::Error("weights contain NaN or infinity");
  if (trace == 0) {
    sigma.setZero(m);
    first.setZero(first_is_right ? C : R, width);
    second.setZero(first_is_right ? R : C, width);
    return Status::Ok();
  }
  // Every eigenvalue (the spectrum is returned whole), the wanted vectors only.
  eig::Tridiagonal tri;
  eig::tridiagonalize(gram_, &tri, threads);
  Eigen::VectorXd ev;  // ascending
  bool gram_ok = eig::tridiagonal_eigenvalues(tri, &ev);
  if (gram_ok) {
    const double lmax = ev(m - 1);
    for (Index j = 0; j < width && gram_ok; ++j) {
      const double lj = ev(m - 1 - j);
      if (lj < kGramSmallRatio * lmax) gram_ok = false;
      if (j + 1 < m && lj - ev(m - 2 - j) < kGramGapRatio * lmax) gram_ok = false;
    }
  }
  if (gram_ok) {
    std::vector<double> wanted(static_cast<size_t>(width));
    for (Index j = 0; j < width; ++j) wanted[size_t(j)] = ev(m - 1 - j);
    gram_ok = eig::tridiagonal_eigenvectors(tri, wanted.data(), width, &q_);
  }
  if (!gram_ok) {
    exact_svd(A, width, first_is_right);
    finish(width);
    return Status::Ok();
  }
  sigma.resize(m);
  for (Index j = 0; j < m; ++j) sigma(j) = std::sqrt(std::max(ev(m - 1 - j), 0.0));
  eig::apply_q(gram_, tri, &q_);
  // The Gram matrix (and its reflectors) is spent: as large as A on a square
  // layer (19 MiB at VGG16's 512->512), it would otherwise stay beside A, the
  // projection and the results until this object goes.
  MatrixXd().swap(gram_);
  project(A, right_side, threads);
  if (first_is_right != right_side) {
    // The other side's unit vectors are A v_j / sigma_j; sigma_j is well above
    // the noise floor here (kGramSmallRatio), so the division is safe.
    y_ *= sigma.head(width).cwiseInverse().asDiagonal();
    q_ *= sigma.head(width).asDiagonal();
    q_.swap(y_);
  }
  // Moved, not copied.
  first.swap(q_);
  second.swap(y_);
  finish(width);
  return Status::Ok();
}

}  // namespace detail
}  // namespace dac
