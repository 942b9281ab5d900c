// Dense double-precision linear algebra for rank planning (src/plan): the
// input model propagates c x c covariances through each conv, and the DAC
// error model refits the pointwise stage by least squares, a (c*r)^2 system.
// Both are too slow in JavaScript for wide layers.
//
// All matrices are row-major doubles. Every function checks each length
// against the dimensions it is given before touching memory.
#pragma once
#include <cstdint>

#include "../common/status.h"

namespace dac {

// C = op(A) * op(B), op(X) = X or X^T; op(A) is m x k, op(B) is k x n, C is
// m x n. A is stored m x k (k x m when transposed), B k x n (n x k). When A
// and B are the same buffer and one of them is transposed, C is a Gram matrix
// and only one triangle is computed. `threads` workers share the product.
struct GemmParams {
  int m = 0, n = 0, k = 0;
  const double* a = nullptr;
  int64_t a_length = 0;
  bool trans_a = false;
  const double* b = nullptr;
  int64_t b_length = 0;
  bool trans_b = false;
  double* c = nullptr;
  int64_t c_length = 0;
  int threads = 1;
};

// In place: the lower Cholesky factor L of a symmetric positive semi-definite
// m x m matrix (only its lower triangle is read; the upper one is zeroed).
// ridge * (mean diagonal, or 1 when that is not positive) is added to the
// diagonal first, so singular inputs (dead channels) still factor. A pivot
// below 1e-6 of that amount (the matrix is not positive semi-definite there,
// beyond rounding) is set to it and its column below the diagonal to zero,
// so the factor stays bounded; for positive semi-definite inputs and a
// positive ridge this never happens.
struct CholeskyParams {
  int m = 0;
  double* a = nullptr;
  int64_t a_length = 0;
  double ridge = 0;
};

// In place: B = B * op(L_k)^-1 with L_k the leading k x k block of the lower
// triangular m x m matrix L, op(X) = X or X^T; B is rows x k. With transpose,
// each row b of B becomes L_k^-1 b (forward substitution); without, L_k^-T b.
struct TriangularSolveParams {
  int m = 0;
  const double* l = nullptr;
  int64_t l_length = 0;
  int k = 0;
  int rows = 0;
  double* b = nullptr;
  int64_t b_length = 0;
  bool transpose = false;
};

// Eigenvalues of `count` symmetric m x m matrices stored one after another
// (each one's lower triangle is read), each in descending order into its m
// values; no eigenvectors (the planner needs spectra only). The reduction to
// tridiagonal form is bound by memory bandwidth and gains little from a second
// thread, while two matrices reduced side by side each run at full speed: so
// with count > 1 the threads take whole matrices, and with one matrix they
// share its reduction.
struct SymmetricEigenvaluesParams {
  int m = 0;
  int count = 1;
  double* a = nullptr;  // read only, unless overwrite
  int64_t a_length = 0;
  double* values = nullptr;
  int64_t values_length = 0;
  int threads = 1;
  // The reduction runs in `a` itself (left undefined) instead of in a copy:
  // for a caller whose matrices are scratch, one matrix less in memory.
  bool overwrite = false;
};

Status gemm(const GemmParams& p);
Status cholesky(const CholeskyParams& p);
Status triangular_solve(const TriangularSolveParams& p);
Status symmetric_eigenvalues(const SymmetricEigenvaluesParams& p);

}  // namespace dac
