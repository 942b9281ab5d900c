// The planner's double-precision linear algebra (native/linalg): every
// packed-GEMM variant against a plain triple loop on odd shapes (edges of
// every blocking level, all transposes, accumulation, one triangle, several
// workers), the fused symmetric product against a plain loop, the public
// gemm's Gram path, the eigenvalues against Eigen's solver on random,
// graded and rank-deficient spectra, the root-free tridiagonal QL/QR against
// Sturm counts, Eigen's QR and the dense solver, and the two-stage
// tridiagonal reduction against the one-stage one and Eigen's solver.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../linalg/gemm.h"
#include "../linalg/linalg.h"
#include "../linalg/tridiagonal.h"
#include "harness.h"

using dac_test::report;
using dac_test::Rng;
using Eigen::MatrixXd;
using Eigen::VectorXd;

namespace {

std::vector<double> doubles(Rng& rng, int64_t n) {
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = rng.next();
  return v;
}

// C += alpha op(A) op(B) for every variant, against the plain loop on the
// entries the triangle asks for.
void test_gemm_variants() {
  Rng rng(7);
  const auto& variants = dac::detail::gemm_kernel_variants();
  struct Shape {
    int64_t m, n, k;
  };
  // 1s, sizes just off every variant's tile (4, 6, 8, 24) and past kMc = 144,
  // kKc = 256 and kNc = 1536.
  const Shape shapes[] = {{1, 1, 1}, {5, 7, 3}, {13, 25, 17}, {145, 31, 257}, {49, 1539, 9}, {40, 1539, 40}, {150, 150, 300}};
  for (int v = 0; v < variants.count; ++v) {
    const dac::detail::GemmKernels& kern = *variants.tables[v];
    double worst = 0;
    bool others_untouched = true, threads_same = true;
    for (const Shape& s : shapes) {
      for (int trans = 0; trans < 4; ++trans) {
        const bool ta = trans & 1, tb = trans & 2;
        for (int triangle = -1; triangle <= 1; ++triangle) {
          if (triangle != 0 && s.m != s.n) continue;
          const std::vector<double> a = doubles(rng, s.m * s.k), b = doubles(rng, s.k * s.n);
          const std::vector<double> c0 = doubles(rng, s.m * s.n);
          std::vector<double> c = c0, c3 = c0;
          const dac::detail::Strided sa = ta ? dac::detail::Strided{a.data(), 1, s.m} : dac::detail::Strided{a.data(), s.k, 1};
          const dac::detail::Strided sb = tb ? dac::detail::Strided{b.data(), 1, s.k} : dac::detail::Strided{b.data(), s.n, 1};
          dac::detail::gemm_accumulate(kern, s.m, s.n, s.k, sa, sb, -0.5, c.data(), s.n, triangle, 1);
          dac::detail::gemm_accumulate(kern, s.m, s.n, s.k, sa, sb, -0.5, c3.data(), s.n, triangle, 3);
          threads_same = threads_same && c == c3;
          for (int64_t i = 0; i < s.m; ++i) {
            for (int64_t j = 0; j < s.n; ++j) {
              const bool wanted = triangle == 0 || (triangle > 0 ? j <= i : j >= i);
              double want = 0;
              for (int64_t p = 0; p < s.k; ++p) want += sa.data[i * sa.rs + p * sa.cs] * sb.data[p * sb.rs + j * sb.cs];
              want = c0[size_t(i * s.n + j)] - 0.5 * want;
              const double got = c[size_t(i * s.n + j)];
              if (wanted) worst = std::max(worst, std::fabs(got - want) / (1 + std::fabs(want)));
              else others_untouched = others_untouched && got == c0[size_t(i * s.n + j)];
            }
          }
        }
      }
    }
    report(worst < 1e-13, std::string("gemm ") + kern.name + " matches the plain product", "worst " + std::to_string(worst));
    report(others_untouched, std::string("gemm ") + kern.name + ": one triangle leaves the other alone");
    report(threads_same, std::string("gemm ") + kern.name + ": three workers give the one-worker result, bit for bit");
  }
}

void test_symv_variants() {
  Rng rng(11);
  const auto& variants = dac::detail::gemm_kernel_variants();
  for (int v = 0; v < variants.count; ++v) {
    const dac::detail::GemmKernels& kern = *variants.tables[v];
    double worst = 0;
    for (int64_t n : {1, 3, 4, 5, 6, 17, 23, 64, 301}) {
      const int64_t lda = n + 3;
      const std::vector<double> a = doubles(rng, n * lda), x = doubles(rng, n);
      std::vector<double> y = doubles(rng, n);
      std::vector<double> want = y;
      for (int64_t j = 0; j < n; ++j) {
        for (int64_t i = j; i < n; ++i) {
          want[size_t(i)] += a[size_t(j * lda + i)] * x[size_t(j)];
          if (i > j) want[size_t(j)] += a[size_t(j * lda + i)] * x[size_t(i)];
        }
      }
      kern.symv_lower(n, a.data(), lda, x.data(), y.data());
      for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(y[size_t(i)] - want[size_t(i)]));
    }
    report(worst < 1e-12, std::string("symv_lower ") + kern.name + " matches the plain loop", "worst " + std::to_string(worst));
  }
}

// The public gemm: a Gram matrix (one buffer, one side transposed) is
// computed as one triangle and mirrored, so it is exactly symmetric, and the
// same with one or two workers.
void test_gram() {
  Rng rng(13);
  double worst = 0;
  bool symmetric = true, threads_same = true;
  for (int m : {1, 7, 150, 301}) {
    for (int k : {1, 33, 260}) {
      for (bool trans_b : {true, false}) {
        const std::vector<double> x = doubles(rng, int64_t(m) * k);
        std::vector<double> c1(static_cast<size_t>(m) * m), c2(static_cast<size_t>(m) * m);
        dac::GemmParams p;
        p.m = p.n = m;
        p.k = k;
        p.a = p.b = x.data();
        p.a_length = p.b_length = int64_t(m) * k;
        p.trans_a = !trans_b;
        p.trans_b = trans_b;
        p.c = c1.data();
        p.c_length = int64_t(m) * m;
        dac::gemm(p);
        p.c = c2.data();
        p.threads = 2;
        dac::gemm(p);
        threads_same = threads_same && c1 == c2;
        // x is m x k for X X^T (trans_b), k x m for X^T X.
        for (int i = 0; i < m; ++i) {
          for (int j = 0; j < m; ++j) {
            double want = 0;
            for (int q = 0; q < k; ++q)
              want += trans_b ? x[size_t(i * k + q)] * x[size_t(j * k + q)] : x[size_t(q * m + i)] * x[size_t(q * m + j)];
            worst = std::max(worst, std::fabs(c1[size_t(i * m + j)] - want) / (1 + std::fabs(want)));
            symmetric = symmetric && c1[size_t(i * m + j)] == c1[size_t(j * m + i)];
          }
        }
      }
    }
  }
  report(worst < 1e-13, "gemm: Gram matrices match the plain product", "worst " + std::to_string(worst));
  report(symmetric, "gemm: Gram matrices are exactly symmetric");
  report(threads_same, "gemm: two workers give the one-worker Gram matrix");
}

// Q diag(values) Q^T with Q orthogonal from a random matrix.
MatrixXd with_spectrum(Rng& rng, const VectorXd& values) {
  const int m = int(values.size());
  MatrixXd r(m, m);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j) r(i, j) = rng.next();
  const MatrixXd q = Eigen::HouseholderQR<MatrixXd>(r).householderQ();
  return q * values.asDiagonal() * q.transpose();
}

void test_eigenvalues() {
  Rng rng(17);
  double worst = 0;
  bool ok = true, threads_same = true, input_kept = true, overwrite_same = true;
  for (int m : {1, 5, 64, 300, 520}) {
    for (int kind = 0; kind < 3; ++kind) {
      MatrixXd g;
      if (kind == 0) {  // random symmetric, both signs
        g = MatrixXd(m, m);
        for (int i = 0; i < m; ++i)
          for (int j = 0; j <= i; ++j) g(i, j) = g(j, i) = rng.next();
      } else if (kind == 1) {  // graded: 1 down to 1e-12
        VectorXd values(m);
        for (int i = 0; i < m; ++i) values(i) = std::pow(10.0, -12.0 * i / std::max(m - 1, 1));
        g = with_spectrum(rng, values);
      } else {  // rank-deficient Gram matrix: rank about m / 3
        MatrixXd x(m, std::max(m / 3, 1));
        for (int i = 0; i < x.rows(); ++i)
          for (int j = 0; j < x.cols(); ++j) x(i, j) = rng.next();
        g = x * x.transpose();
      }
      // Row-major with a poisoned upper triangle: only the lower one is read.
      Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm = g;
      for (int i = 0; i < m; ++i)
        for (int j = i + 1; j < m; ++j) rm(i, j) = 1e300;
      const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> before = rm;
      std::vector<double> v1(static_cast<size_t>(m)), v2(static_cast<size_t>(m));
      dac::SymmetricEigenvaluesParams p;
      p.m = m;
      p.a = rm.data();
      p.a_length = int64_t(m) * m;
      p.values = v1.data();
      p.values_length = m;
      ok = ok && dac::symmetric_eigenvalues(p).ok;
      p.values = v2.data();
      p.threads = 2;
      ok = ok && dac::symmetric_eigenvalues(p).ok;
      threads_same = threads_same && v1 == v2;
      // The input is left as it was; with overwrite, reduced in place to the same values, bit for bit.
      input_kept = input_kept && rm == before;
      Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> scratch = rm;
      std::vector<double> v3(static_cast<size_t>(m));
      p.a = scratch.data();
      p.values = v3.data();
      p.threads = 1;
      p.overwrite = true;
      ok = ok && dac::symmetric_eigenvalues(p).ok;
      overwrite_same = overwrite_same && v1 == v3;
      const VectorXd ref = Eigen::SelfAdjointEigenSolver<MatrixXd>(g, Eigen::EigenvaluesOnly).eigenvalues();
      const double scale = std::max(ref.cwiseAbs().maxCoeff(), 1e-300);
      for (int i = 0; i < m; ++i) worst = std::max(worst, std::fabs(v1[size_t(i)] - ref(m - 1 - i)) / scale);
    }
  }
  report(ok, "symmetricEigenvalues succeeds");
  report(worst < 1e-12, "symmetricEigenvalues matches Eigen on random, graded and rank-deficient spectra",
         "worst " + std::to_string(worst));
  report(threads_same, "symmetricEigenvalues: two threads give the one-thread values");
  report(input_kept, "symmetricEigenvalues leaves its input as it was");
  report(overwrite_same, "symmetricEigenvalues with overwrite: the same values, bit for bit");
}

// Eigenvalues of T, descending.
VectorXd spectrum(const dac::eig::Tridiagonal& t, bool* ok) {
  VectorXd ev;
  *ok = *ok && dac::eig::tridiagonal_eigenvalues(t, &ev);
  return ev.reverse();
}

// The two-stage reduction (band, then bulge chasing) gives the spectrum of
// the one-stage one and of Eigen's solver to rounding, on sizes around the
// band width and kinds that stress it (many zero, repeated or already
// separated eigenvalues, a matrix already banded), the same T for any
// number of threads, and reads only the lower triangle.
void test_two_stage() {
  Rng rng(19);
  double worst = 0, worst_eigen = 0;
  bool ok = true, threads_same = true;
  int cases = 0;
  for (int band : {8, 24, 32}) {
    std::vector<int> sizes = {1, 2, 3, band - 1, band, band + 1, 2 * band + 3, 200};
    if (band == 24) sizes.push_back(777);  // the band symmetricEigenvalues uses
    for (int m : sizes) {
      for (int kind = 0; kind < 5; ++kind) {
        MatrixXd g = MatrixXd::Zero(m, m);
        if (kind == 0) {  // random symmetric
          for (int i = 0; i < m; ++i)
            for (int j = 0; j <= i; ++j) g(i, j) = g(j, i) = rng.next();
        } else if (kind == 1) {  // Gram of a thin matrix: rank m / 4, the rest zero
          MatrixXd x(m, std::max(m / 4, 1));
          for (int i = 0; i < x.rows(); ++i)
            for (int j = 0; j < x.cols(); ++j) x(i, j) = rng.next();
          g = x * x.transpose();
        } else if (kind == 2) {  // diagonal
          for (int i = 0; i < m; ++i) g(i, i) = rng.next();
        } else if (kind == 3) {  // already banded, half the band wide
          for (int i = 0; i < m; ++i)
            for (int j = std::max(0, i - band / 2); j <= i; ++j) g(i, j) = g(j, i) = rng.next();
        } else {  // three eigenvalues, each repeated
          VectorXd values(m);
          for (int i = 0; i < m; ++i) values(i) = double(i % 3) - 0.5;
          g = with_spectrum(rng, values);
        }
        // Only the lower triangle may be read.
        MatrixXd poisoned = g;
        for (int i = 0; i < m; ++i)
          for (int j = i + 1; j < m; ++j) poisoned(i, j) = 1e300;
        dac::eig::Tridiagonal one, two1, two2;
        MatrixXd a = poisoned;
        dac::eig::tridiagonalize(a, &one, 1);
        a = poisoned;
        dac::eig::tridiagonalize_two_stage(a, band, &two1, 1);
        a = poisoned;
        dac::eig::tridiagonalize_two_stage(a, band, &two2, 2);
        threads_same = threads_same && two1.diag == two2.diag && two1.sub == two2.sub;
        const VectorXd v_one = spectrum(one, &ok), v_two = spectrum(two1, &ok);
        const VectorXd ref = Eigen::SelfAdjointEigenSolver<MatrixXd>(g, Eigen::EigenvaluesOnly).eigenvalues().reverse();
        const double scale = std::max(ref.cwiseAbs().maxCoeff(), 1e-300);
        worst = std::max(worst, (v_two - v_one).cwiseAbs().maxCoeff() / scale);
        worst_eigen = std::max(worst_eigen, (v_two - ref).cwiseAbs().maxCoeff() / scale);
        ++cases;
      }
    }
  }
  report(ok, "two-stage tridiagonal: the QR iteration converges");
  report(worst < 1e-12, "two-stage tridiagonal: eigenvalues match the one-stage reduction's",
         "worst " + std::to_string(worst) + " over " + std::to_string(cases) + " cases");
  report(worst_eigen < 1e-12, "two-stage tridiagonal: eigenvalues match Eigen's solver", "worst " + std::to_string(worst_eigen));
  report(threads_same, "two-stage tridiagonal: two threads give the one-thread T, bit for bit");
}

// symmetricEigenvalues at an order that takes the two-stage path: the values
// of the one-stage reduction, the same for one and two threads, and the same
// for two matrices batched as for each alone.
void test_eigenvalues_two_stage_path() {
  Rng rng(23);
  const int m = 1100;
  MatrixXd x(m, 300);
  for (int i = 0; i < x.rows(); ++i)
    for (int j = 0; j < x.cols(); ++j) x(i, j) = rng.next();
  const MatrixXd g = x * x.transpose();
  MatrixXd b(m, m);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j <= i; ++j) b(i, j) = b(j, i) = rng.next();
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> both(2 * m, m);
  both.topRows(m) = g;
  both.bottomRows(m) = b;
  std::vector<double> v1(2 * size_t(m)), v2(2 * size_t(m)), batched(2 * size_t(m));
  dac::SymmetricEigenvaluesParams p;
  p.m = m;
  p.a_length = int64_t(m) * m;
  p.values_length = m;
  bool ok = true;
  for (int k = 0; k < 2; ++k) {
    p.a = both.data() + size_t(k) * m * m;
    p.threads = 1;
    p.values = v1.data() + size_t(k) * m;
    ok = ok && dac::symmetric_eigenvalues(p).ok;
    p.threads = 2;
    p.values = v2.data() + size_t(k) * m;
    ok = ok && dac::symmetric_eigenvalues(p).ok;
  }
  p.count = 2;
  p.a = both.data();
  p.a_length = 2 * int64_t(m) * m;
  p.values = batched.data();
  p.values_length = 2 * m;
  ok = ok && dac::symmetric_eigenvalues(p).ok;
  // Both matrices reduced in place, side by side: the same values.
  std::vector<double> in_place(2 * size_t(m));
  p.a = both.data();
  p.values = in_place.data();
  p.overwrite = true;
  ok = ok && dac::symmetric_eigenvalues(p).ok;
  p.overwrite = false;
  double worst = 0;
  for (int k = 0; k < 2; ++k) {
    MatrixXd a = k == 0 ? g : b;
    const double s = a.cwiseAbs().maxCoeff();
    a /= s;
    dac::eig::Tridiagonal t;
    dac::eig::tridiagonalize(a, &t, 1);
    const VectorXd ref = spectrum(t, &ok) * s;
    for (int i = 0; i < m; ++i)
      worst = std::max(worst, std::fabs(v1[size_t(k * m + i)] - ref(i)) / ref.cwiseAbs().maxCoeff());
  }
  report(ok, "symmetricEigenvalues (two-stage order) succeeds");
  report(worst < 1e-12, "symmetricEigenvalues (two-stage order) matches the one-stage reduction",
         "worst " + std::to_string(worst));
  report(v1 == v2 && v1 == batched && v1 == in_place,
         "symmetricEigenvalues (two-stage order): threads, batching and overwrite do not change the values");
}

// The reference for tridiagonal_eigenvalues: Eigen's implicit QR on the same
// T, run on T scaled by 2^-exponent (exact) where T's squares would leave the
// double range, then scaled back.
VectorXd eigen_tridiagonal_reference(const dac::eig::Tridiagonal& t, int exponent, bool* ok) {
  Eigen::SelfAdjointEigenSolver<MatrixXd> solver;
  VectorXd d = t.diag, e = t.sub;
  for (auto& x : d) x = std::ldexp(x, -exponent);
  for (auto& x : e) x = std::ldexp(x, -exponent);
  solver.computeFromTridiagonal(d, e, Eigen::EigenvaluesOnly);
  *ok = *ok && solver.info() == Eigen::Success;
  VectorXd v = solver.eigenvalues();
  for (auto& x : v) x = std::ldexp(x, exponent);
  return v;
}

// How many eigenvalues of T lie below x: the negative pivots of T - x I
// (Sturm), in long double, on T and x scaled by 2^-exponent (exact) as for
// the reference, so the squares stay in range where long double is double.
int eigenvalues_below(const dac::eig::Tridiagonal& t, int exponent, long double x) {
  int count = 0;
  long double q = 1;
  x = std::ldexp(x, -exponent);
  for (Eigen::Index i = 0; i < t.diag.size(); ++i) {
    const long double e = i > 0 ? std::ldexp(static_cast<long double>(t.sub(i - 1)), -exponent) : 0.0L;
    q = std::ldexp(static_cast<long double>(t.diag(i)), -exponent) - x - (i > 0 ? e * e / q : 0.0L);
    if (q == 0) q = -std::numeric_limits<long double>::min();
    count += q < 0;
  }
  return count;
}

// The root-free QL/QR against Sturm counts (the i-th value v has at most i
// eigenvalues below v - tol and at least i + 1 below v + tol), Eigen's QR on
// the same T and the dense solver on T as a full matrix: random T of every
// small size and the planner's 1536, T already diagonal or split into blocks,
// a zero diagonal, Wilkinson's W+ matrices (pairs of eigenvalues equal to
// many digits), matrices graded over 300 decades in either direction (QL and
// QR), all entries equal, scales whose squares over- or underflow, and Gram
// matrices of thin matrices (most eigenvalues zero). Every eigenvalue within tol = 1e-13 max|T| of the exact
// one and of the references, except Eigen's at m = 1536, whose own error there
// is ~1.5e-13 max|T| (ours ~3e-14); ascending; a non-finite T is refused.
void test_tridiagonal_eigenvalues() {
  Rng rng(23);
  double worst = 0, worst_1536 = 0, worst_dense = 0;
  bool ok = true, sorted = true, counts = true;
  int cases = 0;
  auto check = [&](const dac::eig::Tridiagonal& t, int exponent) {
    const Eigen::Index m = t.diag.size();
    VectorXd ev;
    const bool converged = dac::eig::tridiagonal_eigenvalues(t, &ev);
    ok = ok && converged && ev.size() == m;
    if (!converged || ev.size() != m) return;
    sorted = sorted && std::is_sorted(ev.data(), ev.data() + m);
    double norm = t.diag.cwiseAbs().maxCoeff();
    if (m > 1) norm = std::max(norm, t.sub.cwiseAbs().maxCoeff());
    if (norm == 0) norm = 1;
    const long double tol = 1e-13L * norm;
    for (Eigen::Index i = 0; i < m; ++i)
      counts = counts && eigenvalues_below(t, exponent, ev(i) - tol) <= i && eigenvalues_below(t, exponent, ev(i) + tol) > i;
    const VectorXd ref = eigen_tridiagonal_reference(t, exponent, &ok);
    double& w = m > 200 ? worst_1536 : worst;
    for (Eigen::Index i = 0; i < m; ++i) w = std::max(w, std::fabs(ev(i) - ref(i)) / norm);
    if (m <= 200) {
      // The dense solver scales by max|T| itself.
      MatrixXd dense = MatrixXd::Zero(m, m);
      dense.diagonal() = t.diag;
      for (Eigen::Index i = 0; i + 1 < m; ++i) dense(i + 1, i) = dense(i, i + 1) = t.sub(i);
      const VectorXd full = Eigen::SelfAdjointEigenSolver<MatrixXd>(dense, Eigen::EigenvaluesOnly).eigenvalues();
      for (Eigen::Index i = 0; i < m; ++i) worst_dense = std::max(worst_dense, std::fabs(ev(i) - full(i)) / norm);
    }
    ++cases;
  };
  auto random_t = [&](int m) {
    dac::eig::Tridiagonal t;
    t.diag.resize(m);
    t.sub.resize(std::max(m - 1, 0));
    for (auto& x : t.diag) x = rng.next();
    for (auto& x : t.sub) x = rng.next();
    return t;
  };
  for (int m : {1, 2, 3, 17, 200, 1536}) check(random_t(m), 0);
  for (int m : {2, 17, 200}) {
    dac::eig::Tridiagonal t = random_t(m);
    t.sub.setZero();
    check(t, 0);  // already diagonal
    t = random_t(m);
    for (int i = 0; i + 1 < m; i += 5) t.sub(i) = 0;
    check(t, 0);  // blocks of one to five rows
    t = random_t(m);
    t.diag.setZero();
    check(t, 0);
    t.diag.setConstant(0.75);
    t.sub.setConstant(0.75);
    check(t, 0);  // all equal
  }
  for (int half : {10, 50}) {  // W21+ and W101+
    dac::eig::Tridiagonal t;
    t.diag.resize(2 * half + 1);
    t.sub.setOnes(2 * half);
    for (int i = 0; i <= 2 * half; ++i) t.diag(i) = std::abs(half - i);
    check(t, 0);
  }
  for (int m : {17, 200}) {
    for (int direction : {1, -1}) {  // growing down (QR) and up (QL)
      dac::eig::Tridiagonal t = random_t(m);
      auto grade = [&](int i) { return std::pow(10.0, direction * (-150.0 + 300.0 * i / (m - 1))); };
      for (int i = 0; i < m; ++i) t.diag(i) *= grade(i);
      for (int i = 0; i + 1 < m; ++i) t.sub(i) *= std::sqrt(grade(i)) * std::sqrt(grade(i + 1));
      check(t, 0);
    }
  }
  for (double scale : {1e-306, 1e-200, 1e200, 1e306}) {
    for (int m : {3, 17, 200}) {
      dac::eig::Tridiagonal t = random_t(m);
      t.diag *= scale;
      t.sub *= scale;
      check(t, std::ilogb(scale));
    }
  }
  for (int m : {17, 200}) {  // Gram of an m x m/4 matrix
    MatrixXd x(m, m / 4);
    for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = rng.next();
    MatrixXd g = x * x.transpose();
    dac::eig::Tridiagonal t;
    dac::eig::tridiagonalize(g, &t, 1);
    check(t, 0);
  }
  report(ok, "tridiagonalEigenvalues converges on every case", std::to_string(cases) + " cases");
  report(sorted, "tridiagonalEigenvalues returns the eigenvalues ascending");
  report(counts, "tridiagonalEigenvalues: every eigenvalue within 1e-13 max|T| of the exact one (Sturm counts)");
  report(worst < 1e-13, "tridiagonalEigenvalues matches Eigen's QR on the same T", "worst " + std::to_string(worst));
  report(worst_1536 < 4e-13, "tridiagonalEigenvalues matches Eigen's QR at m = 1536", "worst " + std::to_string(worst_1536));
  report(worst_dense < 1e-13, "tridiagonalEigenvalues matches the dense solver",
         "worst " + std::to_string(worst_dense));
  std::printf("tridiagonalEigenvalues: worst |difference| / max|T| %.3g (Eigen's QR, m <= 200), %.3g (m = 1536), %.3g (dense), %d cases\n",
              worst, worst_1536, worst_dense, cases);
  dac::eig::Tridiagonal bad = random_t(5);
  bad.sub(2) = std::numeric_limits<double>::quiet_NaN();
  VectorXd ev;
  report(!dac::eig::tridiagonal_eigenvalues(bad, &ev), "tridiagonalEigenvalues refuses a NaN entry");
}

}  // namespace

int main() {
  test_gemm_variants();
  test_symv_variants();
  test_gram();
  test_eigenvalues();
  test_tridiagonal_eigenvalues();
  test_two_stage();
  test_eigenvalues_two_stage_path();
  std::printf("linalg_test: %d passed, %d failed\n", dac_test::g_passed, dac_test::g_failed);
  return dac_test::g_failed == 0 ? 0 : 1;
}
