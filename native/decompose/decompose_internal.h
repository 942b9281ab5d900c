// Shared pieces of the decomposition core: argument checks and a truncated
// SVD through the Gram matrix of the smaller side, with an exact-SVD fallback.
#pragma once
#include <Eigen/Dense>
#include <cstdint>
#include <exception>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "decompose.h"

namespace dac {
namespace detail {

// --- argument checks (decompose_validate.cc) ---------------------------------

// Checks dims, layout, data pointer and length; sets *total = n*c*kh*kw.
Status check_weights(const char* fn, const ConvWeights& w, int64_t* total);

// An output buffer must be non-null and hold exactly `need` floats. Optional
// buffers (singular values) may instead be null with length 0.
Status check_output(const char* fn, const char* field, const float* data,
                    int64_t length, int64_t need, bool optional);

// a*b, or false when it does not fit in int64.
bool mul_checked(int64_t a, int64_t b, int64_t* out);

// Reads element W[o][i][h][w] of either layout.
inline int64_t weight_index(const ConvWeights& w, int64_t o, int64_t i,
                            int64_t h, int64_t x) {
  if (w.layout == WeightLayout::OIHW)
    return ((o * w.c + i) * w.kh + h) * w.kw + x;
  return ((h * w.kw + x) * w.c + i) * w.n + o;
}

// Runs body() and turns a C++ exception (allocation failure, thread creation)
// into an error: none may cross into N-API or out of a worker thread. Builds
// without exceptions (the WASM one) run body() as is.
template <class F>
Status guarded(const std::string& prefix, F&& body) {
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return Status::Error(prefix + "out of memory");
  } catch (const std::exception& e) {
    return Status::Error(prefix + e.what());
  }
#else
  return std::forward<F>(body)();
#endif
}

// --- small symmetric eigensolver (decompose_eig.cc) ----------------------------

// Eigenvalues (descending) and eigenvectors (column j of `vectors`, k x k
// column-major) of a symmetric k x k matrix A given column-major with both
// triangles; A is destroyed; work holds 3k doubles. False if the QR
// iteration did not converge.
bool small_symmetric_eigen(double* A, int64_t k, double* values, double* vectors, double* work);

// --- truncated SVD (decompose_svd.cc) ----------------------------------------

// Index whose sign decides a vector's orientation: the largest magnitude,
// near-ties (within a relative 1e-9, i.e. equal up to rounding noise) going to
// the lowest index, so that every backend picks the same entry.
int64_t sign_pivot(const double* v, int64_t len);

// Truncated SVD A = sum_j sigma_j u_j v_j^T of a dense R x C matrix. Results
// are split by stage rather than by side: `first` holds the unit singular
// vectors of the first-stage side (columns when first_is_right, else rows),
// sign-fixed; `second` holds the other side's vectors scaled by sigma_j.
// Components with sigma_j <= kNullTolerance * sigma_max are all zero.
//
// The Gram matrix of the smaller side is formed in double and reduced to
// tridiagonal form (native/linalg/tridiagonal.h): every eigenvalue, but only
// the `width` wanted eigenvectors (inverse iteration), so the cost is the
// Gram product and the reduction, not a full eigenbasis. Squaring the matrix
// costs precision for small singular values (absolute error about
// eps * sigma_max^2 on sigma^2), so an exact SVD of A takes over whenever a
// kept component is in that zone, its neighbour's eigenvalue is too close to
// separate (see kGram* below), or inverse iteration misses its residual.
class TruncatedSvd {
 public:
  // A NaN or infinity anywhere in A is reported as an error.
  Status compute(const Eigen::MatrixXd& A, int width, bool first_is_right,
                 int threads);

  Eigen::VectorXd sigma;   // min(R, C) singular values, descending
  Eigen::MatrixXd first;   // (first_is_right ? C : R) x width
  Eigen::MatrixXd second;  // (first_is_right ? R : C) x width

 private:
  void gram(const Eigen::MatrixXd& A, bool right_side, int threads);
  void project(const Eigen::MatrixXd& A, bool right_side, int threads);
  void exact_svd(const Eigen::MatrixXd& A, int width, bool first_is_right);
  void finish(int width);

  Eigen::MatrixXd gram_, q_, y_;
  std::vector<Eigen::MatrixXd> partial_;
};

// Below this ratio sigma_j^2 / sigma_max^2 the Gram route's sigma_j carries
// fewer than ~6 correct digits and could land on either side of the null rule.
constexpr double kGramSmallRatio = 1e-10;
// Adjacent eigenvalues closer than this (relative to the largest) leave the
// Gram eigenvectors with errors near float32 resolution.
constexpr double kGramGapRatio = 1e-7;

}  // namespace detail
}  // namespace dac
