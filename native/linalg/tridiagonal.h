// Dense symmetric eigenproblems through a tridiagonal form, shared by the
// planner's spectra (linalg.cc) and the baselines' truncated SVD
// (decompose_svd.cc). Both see Gram matrices of a few thousand rows of which
// they need every eigenvalue but at most a fraction of the eigenvectors, so:
//   - the reduction is blocked (LAPACK sytrd style): half its work becomes
//     matrix products instead of a memory-bound rank-2 update per column;
//   - eigenvalues come from root-free implicit QL/QR on the tridiagonal
//     matrix, O(m^2) with no square root per rotation;
//   - only the wanted eigenvectors are formed, by inverse iteration on the
//     tridiagonal matrix and one blocked back-transformation, instead of
//     accumulating every rotation into a full m x m basis (O(m^3) with a large
//     constant, the cost that dominated wide spatial layers).
#pragma once
#include <Eigen/Dense>

namespace dac {
namespace eig {

// A matrix the reductions work on in place: a MatrixXd, or a Map of a
// caller's buffer (symmetric_eigenvalues' overwrite). Contiguous: its outer
// stride must be its row count.
using MatrixRef = Eigen::Ref<Eigen::MatrixXd>;

// Householder reduction Q^T A Q = T of a symmetric m x m matrix. Only the
// lower triangle of `a` is read; on return it holds the reflectors (Eigen's
// Tridiagonalization layout: reflector j's essential part below row j+1 of
// column j, its coefficient in tau(j)). `threads` workers share the trailing
// updates.
struct Tridiagonal {
  Eigen::VectorXd diag;  // m
  Eigen::VectorXd sub;   // m-1: T(j+1, j)
  Eigen::VectorXd tau;   // m-1
};
void tridiagonalize(MatrixRef a, Tridiagonal* t, int threads);

// The same T (up to rounding) without Q, for eigenvalues only, in two stages:
// A to a band of width `band` by blocked Householder steps that are all matrix
// products, then the band to T by chasing bulges inside a (2 band + 1)-wide
// strip. tridiagonalize() reads the whole trailing matrix once per column
// (a matrix-vector product), this once per `band` columns, so it wins once
// the matrix no longer fits in cache; its products use `threads` workers. Only the lower triangle of `a` is read;
// on return `a` is overwritten; t->tau is empty. The result does not depend
// on `threads`.
void tridiagonalize_two_stage(MatrixRef a, Eigen::Index band, Tridiagonal* t, int threads);

// Every eigenvalue of T, ascending. False if T is not finite or the iteration
// did not converge within 30 m sweeps.
bool tridiagonal_eigenvalues(const Tridiagonal& t, Eigen::VectorXd* values);

// Unit eigenvectors of T (columns of z, m x count) for the given eigenvalues
// (count of them, descending, as tridiagonal_eigenvalues computed them), by
// inverse iteration; vectors whose eigenvalues lie within 1e-3 ||T|| of each
// other are reorthogonalized. False when a residual |T z - lambda z| is not
// at rounding level (callers then use an exact solver).
bool tridiagonal_eigenvectors(const Tridiagonal& t, const double* values, int count, Eigen::MatrixXd* z);

// z <- Q z with Q the reduction's orthogonal factor (`a` as tridiagonalize left it).
void apply_q(const Eigen::MatrixXd& a, const Tridiagonal& t, Eigen::MatrixXd* z);

}  // namespace eig
}  // namespace dac
