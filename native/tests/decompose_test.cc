// Standalone tests of the decomposition core (decompose.h): DAC, spatial and
// channel decompositions against Eigen's JacobiSVD in double on the same
// float weights (values, vectors and signs), full-rank reconstruction,
// Eckart-Young errors at reduced rank, zero and rank-deficient channels, tiny
// kept singular values (the exact-SVD fallback), both layouts, thread counts,
// the batch call, and every bad argument rejected with a Status naming the
// field. Outputs are pre-filled with NaN so an unwritten element fails. Also
// run under ASan/UBSan.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../decompose/dac_kernels.h"
#include "../decompose/decompose.h"
#include "../decompose/decompose_internal.h"
#include "../linalg/tridiagonal.h"
#include "harness.h"

namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

using dac_test::g_failed;
using dac_test::g_passed;
using dac_test::report;
using dac_test::Rng;

const float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Shape {
  int n, c, kh, kw;
  int64_t size() const { return int64_t(n) * c * kh * kw; }
  int k() const { return kh * kw; }
  std::string text() const {
    return "n=" + std::to_string(n) + " c=" + std::to_string(c) + " k=" + std::to_string(kh) +
           "x" + std::to_string(kw);
  }
};

float at(const std::vector<float>& oihw, const Shape& s, int o, int i, int h, int x) {
  return oihw[size_t(((int64_t(o) * s.c + i) * s.kh + h) * s.kw + x)];
}

std::vector<float> to_hwio(const std::vector<float>& oihw, const Shape& s) {
  std::vector<float> out(oihw.size());
  for (int o = 0; o < s.n; ++o)
    for (int i = 0; i < s.c; ++i)
      for (int h = 0; h < s.kh; ++h)
        for (int x = 0; x < s.kw; ++x)
          out[size_t(((int64_t(h) * s.kw + x) * s.c + i) * s.n + o)] = at(oihw, s, o, i, h, x);
  return out;
}

bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// The contract's sign rule: largest magnitude positive, (near-)ties to the lowest index.
bool sign_ok(const float* v, int len) {
  float maxabs = 0;
  for (int i = 0; i < len; ++i) maxabs = std::max(maxabs, std::fabs(v[i]));
  if (maxabs == 0) return true;
  for (int i = 0; i < len; ++i)
    if (std::fabs(v[i]) >= maxabs * (1 - 1e-6f)) return v[i] > 0;
  return false;
}

// Reference truncated SVD in double with the same conventions.
struct RefSvd {
  VectorXd sigma;
  MatrixXd first, second;  // first-stage unit vectors, second-stage sigma-scaled
};

RefSvd ref_svd(const MatrixXd& A, int width, bool first_is_right) {
  Eigen::JacobiSVD<MatrixXd> svd(A, Eigen::ComputeThinU | Eigen::ComputeThinV);
  RefSvd r;
  r.sigma = svd.singularValues();
  MatrixXd f = first_is_right ? svd.matrixV() : svd.matrixU();
  MatrixXd g = first_is_right ? svd.matrixU() : svd.matrixV();
  r.first = f.leftCols(width);
  r.second = g.leftCols(width) * r.sigma.head(width).asDiagonal();
  const double smax = r.sigma.size() ? r.sigma(0) : 0;
  for (int j = 0; j < width; ++j) {
    if (!(r.sigma(j) > dac::kNullTolerance * smax)) {
      r.first.col(j).setZero();
      r.second.col(j).setZero();
      continue;
    }
    Eigen::Index p = 0;
    double best = -1;
    for (Eigen::Index q = 0; q < r.first.rows(); ++q)
      if (std::fabs(r.first(q, j)) > best * (1 + 1e-9)) {
        best = std::fabs(r.first(q, j));
        p = q;
      }
    if (r.first(p, j) < 0) {
      r.first.col(j) *= -1;
      r.second.col(j) *= -1;
    }
  }
  return r;
}

double max_abs_diff(const float* a, const MatrixXd& ref, bool ref_transposed) {
  // a is row-major over (ref_transposed ? ref^T : ref)
  double d = 0;
  const Eigen::Index R = ref_transposed ? ref.cols() : ref.rows();
  const Eigen::Index C = ref_transposed ? ref.rows() : ref.cols();
  for (Eigen::Index r = 0; r < R; ++r)
    for (Eigen::Index c = 0; c < C; ++c) {
      const double v = ref_transposed ? ref(c, r) : ref(r, c);
      d = std::max(d, std::fabs(double(a[r * C + c]) - v));
      if (!std::isfinite(a[r * C + c])) return INFINITY;
    }
  return d;
}

// --- kernels ------------------------------------------------------------------

// Every ISA variant this CPU runs against plain double loops, on odd n (the
// vector remainders), row pitches wider than n and k up to 49.
void test_kernel_variants() {
  const dac::Variants<dac::detail::DacKernels>& variants = dac::detail::dac_kernel_variants();
  const dac::detail::DacKernels* const* all = variants.tables;
  const int count = variants.count;
  report(count >= 1 && std::string(all[0]->name) == "ref", "kernel variants start with ref");
  report(variants.joined == dac::decompose_dac_variants(), "the variant list is the one the bindings report",
         dac::decompose_dac_variants());
  Rng rng(2024);
  for (int i = 0; i < count; ++i) {
    const dac::detail::DacKernels& kr = *all[i];
    double worst_g = 0, worst_p = 0;
    for (int64_t k : {1, 2, 3, 4, 9, 25, 49, 64, 65, 81})
      for (int64_t n : {1, 2, 3, 7, 8, 9, 15, 16, 17, 33, 64, 100}) {
        const int64_t ld = n + 5;
        const std::vector<float> X = rng.vec(k * ld);
        std::vector<double> G(size_t(k * k), 0.0);
        kr.gram(X.data(), ld, k, n, G.data());
        for (int64_t a = 0; a < k; ++a)
          for (int64_t b = 0; b <= a; ++b) {
            double ref = 0, mag = 0;
            for (int64_t o = 0; o < n; ++o) {
              ref += double(X[size_t(a * ld + o)]) * X[size_t(b * ld + o)];
              mag += std::fabs(double(X[size_t(a * ld + o)]) * X[size_t(b * ld + o)]);
            }
            worst_g = std::max(worst_g, std::fabs(G[size_t(b * k + a)] - ref) / mag);
          }
        for (int64_t r : {int64_t(1), std::min<int64_t>(k, 4), std::min<int64_t>(k, 6), k}) {
          std::vector<double> v(size_t(r * k));
          for (auto& x : v) x = rng.next();
          const int64_t pitch = r + 3;
          std::vector<float> proj(size_t(n * pitch), kNaN);
          kr.project(X.data(), ld, k, n, v.data(), r, proj.data(), pitch);
          for (int64_t o = 0; o < n; ++o)
            for (int64_t j = 0; j < r; ++j) {
              double ref = 0, mag = 0;
              for (int64_t a = 0; a < k; ++a) {
                ref += double(X[size_t(a * ld + o)]) * v[size_t(j * k + a)];
                mag += std::fabs(double(X[size_t(a * ld + o)]) * v[size_t(j * k + a)]);
              }
              const float got = proj[size_t(o * pitch + j)];
              worst_p = std::isfinite(got) ? std::max(worst_p, std::fabs(got - ref) / mag) : INFINITY;
            }
        }
      }
    report(worst_g < 1e-13, std::string("kernel ") + kr.name + " gram", std::to_string(worst_g));
    report(worst_p < 2e-7, std::string("kernel ") + kr.name + " project", std::to_string(worst_p));
  }
  std::printf("DAC kernel variants on this CPU:");
  for (int i = 0; i < count; ++i) std::printf(" %s", all[i]->name);
  std::printf(" (using %s)\n", dac::detail::dac_kernels().name);
}

// Gram matrices of every size DAC meets and awkward ones: zero, diagonal,
// repeated and rank-deficient spectra (kind 0..5).
MatrixXd test_gram(Rng& rng, int k, int kind) {
  MatrixXd M(3 * k + 2, k);
  for (Eigen::Index q = 0; q < M.size(); ++q) M.data()[q] = rng.next();
  if (kind == 1) M.col(k - 1) = M.col(0);                 // rank deficient
  if (kind == 2) M = M.topRows(std::max(1, k / 3)).eval();  // rank k/3
  MatrixXd G = M.transpose() * M;
  if (kind == 3) G.setZero();
  if (kind == 4) G = VectorXd::LinSpaced(k, 1, k).asDiagonal();
  if (kind == 5) G = MatrixXd::Identity(k, k) * 2.5;  // all repeated
  return G;
}

// Worst errors of an eigen-decomposition (values descending, vectors as
// columns) against Eigen's, relative to the largest eigenvalue.
struct EigenErrors {
  double values = 0, residual = 0, orthogonality = 0;
  bool descending = true;
  void add(const MatrixXd& G, const double* val, const double* vec) {
    const int k = int(G.rows());
    const Eigen::SelfAdjointEigenSolver<MatrixXd> ref(G);
    const Eigen::Map<const MatrixXd> V(vec, k, k);
    const double scale = std::max(ref.eigenvalues().cwiseAbs().maxCoeff(), 1e-300);
    for (int j = 0; j < k; ++j)
      values = std::max(values, std::fabs(val[j] - ref.eigenvalues()(k - 1 - j)) / scale);
    for (int j = 0; j + 1 < k; ++j) descending = descending && val[j] >= val[j + 1];
    residual = std::max(residual, (G * V - V * Eigen::Map<const VectorXd>(val, k).asDiagonal()).norm() / scale);
    orthogonality = std::max(orthogonality, (V.transpose() * V - MatrixXd::Identity(k, k)).norm());
  }
  bool ok() const { return descending && values < 1e-13 && residual < 1e-13 && orthogonality < 1e-13; }
  std::string text() const {
    return "values " + std::to_string(values) + " residual " + std::to_string(residual) + " orthogonality " +
           std::to_string(orthogonality);
  }
};

// The QR eigensolver (Gram matrices above the Jacobi size, and lanes Jacobi
// leaves) against Eigen's.
void test_small_eigen() {
  Rng rng(77);
  EigenErrors err;
  bool converged = true;
  for (int k : {1, 2, 3, 4, 9, 15, 25, 49}) {
    for (int kind = 0; kind < 6; ++kind) {
      const MatrixXd G = test_gram(rng, k, kind);
      std::vector<double> A(G.data(), G.data() + G.size());
      std::vector<double> val(static_cast<size_t>(k)), vec(static_cast<size_t>(k * k)), work(static_cast<size_t>(3 * k));
      converged = converged && dac::detail::small_symmetric_eigen(A.data(), k, val.data(), vec.data(), work.data());
      err.add(G, val.data(), vec.data());
    }
  }
  report(converged, "small eigensolver converges");
  report(err.ok(), "small eigensolver matches Eigen", err.text());
}

// The blocked tridiagonal route (every eigenvalue, the top eigenvectors by
// inverse iteration) against Eigen's dense solver: sizes below, at and above
// the panel width, spectra with gaps, clusters, exact zeros and a split
// tridiagonal matrix (a block-diagonal input); one and two threads give the
// same reduction.
void test_tridiagonal() {
  Rng rng(91);
  double values = 0, residual = 0, orthogonality = 0;
  bool converged = true, vectors_ok = true, threads_same = true;
  for (int m : {1, 2, 3, 31, 32, 33, 97, 300}) {
    for (int kind = 0; kind < 6; ++kind) {
      MatrixXd G = test_gram(rng, m, kind == 5 ? 0 : kind);
      if (kind == 5 && m > 2) {
        G.block(0, m / 2, m / 2, m - m / 2).setZero();
        G.block(m / 2, 0, m - m / 2, m / 2).setZero();
      }
      const Eigen::SelfAdjointEigenSolver<MatrixXd> ref(G);
      const double scale = std::max(ref.eigenvalues().cwiseAbs().maxCoeff(), 1e-300);
      MatrixXd a = G, a2 = G;
      dac::eig::Tridiagonal t, t2;
      dac::eig::tridiagonalize(a, &t, 1);
      dac::eig::tridiagonalize(a2, &t2, 2);
      VectorXd ev, ev2;
      const bool ok = dac::eig::tridiagonal_eigenvalues(t, &ev) && dac::eig::tridiagonal_eigenvalues(t2, &ev2);
      converged = converged && ok;
      if (!ok) continue;
      threads_same = threads_same && t.diag == t2.diag && t.sub == t2.sub && a == a2 && ev == ev2;
      values = std::max(values, (ev - ref.eigenvalues()).cwiseAbs().maxCoeff() / scale);
      // Top eigenvectors where the spectrum separates them (the SVD asks only
      // then), from either reduction.
      const dac::eig::Tridiagonal& tv = kind % 2 ? t2 : t;
      const MatrixXd& av = kind % 2 ? a2 : a;
      int k = 0;
      while (k < std::min(m, 12) && ev(m - 1 - k) - (k + 1 < m ? ev(m - 2 - k) : -scale) > 1e-7 * scale) ++k;
      if (k == 0) continue;
      std::vector<double> want(static_cast<size_t>(k));
      for (int j = 0; j < k; ++j) want[size_t(j)] = ev(m - 1 - j);
      MatrixXd z;
      const bool vok = dac::eig::tridiagonal_eigenvectors(tv, want.data(), k, &z);
      vectors_ok = vectors_ok && vok;
      if (!vok) continue;
      dac::eig::apply_q(av, tv, &z);
      const Eigen::Map<const VectorXd> lam(want.data(), k);
      residual = std::max(residual, (G * z - z * lam.asDiagonal()).norm() / scale);
      orthogonality = std::max(orthogonality, (z.transpose() * z - MatrixXd::Identity(k, k)).cwiseAbs().maxCoeff());
    }
  }
  const std::string d = "values " + std::to_string(values) + " residual " + std::to_string(residual) +
                        " orthogonality " + std::to_string(orthogonality);
  report(converged, "tridiagonal eigenvalues converge");
  report(values < 1e-12, "tridiagonal eigenvalues match Eigen", d);
  report(vectors_ok && residual < 1e-11 && orthogonality < 1e-11, "tridiagonal top eigenvectors", d);
  report(threads_same, "tridiagonalize: two threads give the one-thread reduction");
}

// Every variant's batched Jacobi solver against Eigen's, with 1..lanes
// matrices of mixed kinds per call (the unused lanes must not disturb the
// used ones), and its transpose against a plain loop on ragged sizes.
void test_kernel_jacobi_transpose() {
  const dac::detail::DacKernels* const* all = dac::detail::dac_kernel_variants().tables;
  const int count = dac::detail::dac_kernel_variants().count;
  Rng rng(91);
  for (int v = 0; v < count; ++v) {
    const dac::detail::DacKernels& kr = *all[v];
    EigenErrors err;
    bool converged = true;
    for (int k : {1, 2, 3, 4, 5, 7, 9, 12, 16}) {
      for (int used = 1; used <= kr.lanes; ++used) {
        std::vector<MatrixXd> G(static_cast<size_t>(used));
        std::vector<std::vector<double>> val(G.size()), vec(G.size());
        const double* gp[16];
        double* vp[16];
        double* ep[16];
        for (int l = 0; l < used; ++l) {
          G[size_t(l)] = test_gram(rng, k, (l + used + k) % 6);
          val[size_t(l)].assign(size_t(k), kNaN);
          vec[size_t(l)].assign(size_t(k * k), kNaN);
          gp[l] = G[size_t(l)].data();
          vp[l] = val[size_t(l)].data();
          ep[l] = vec[size_t(l)].data();
        }
        const unsigned ok = kr.jacobi_eigen(gp, used, k, vp, ep);
        converged = converged && ok == (1u << used) - 1;
        for (int l = 0; l < used; ++l) err.add(G[size_t(l)], vp[l], ep[l]);
      }
    }
    report(converged && err.ok(), std::string("kernel ") + kr.name + " jacobi_eigen matches Eigen", err.text());

    bool same = true;
    for (int64_t rows : {1, 3, 8, 9, 17, 64, 70})
      for (int64_t cols : {1, 7, 8, 9, 16, 33, 45}) {
        const int64_t src_ld = cols + 3, dst_ld = rows + 5;
        const std::vector<float> src = rng.vec(rows * src_ld);
        std::vector<float> dst(size_t(cols * dst_ld), kNaN);
        kr.transpose(src.data(), src_ld, rows, cols, dst.data(), dst_ld);
        for (int64_t o = 0; o < rows; ++o)
          for (int64_t q = 0; q < cols; ++q) same = same && dst[size_t(q * dst_ld + o)] == src[size_t(o * src_ld + q)];
      }
    report(same, std::string("kernel ") + kr.name + " transpose");
  }
}

// --- DAC ----------------------------------------------------------------------

struct DacOut {
  std::vector<float> dw, pw, sv;
  dac::Status status;
};

DacOut run_dac(const std::vector<float>& w, const Shape& s, dac::WeightLayout layout, int rank,
               int threads, const char* variant = nullptr) {
  DacOut out;
  const int m = std::min(s.n, s.k());
  out.dw.assign(size_t(int64_t(s.c) * rank * s.k()), kNaN);
  out.pw.assign(size_t(int64_t(s.n) * s.c * rank), kNaN);
  out.sv.assign(size_t(int64_t(s.c) * m), kNaN);
  dac::DacParams p;
  p.w = {w.data(), int64_t(w.size()), layout, s.n, s.c, s.kh, s.kw};
  p.rank = rank;
  p.depthwise = out.dw.data();
  p.depthwise_length = int64_t(out.dw.size());
  p.pointwise = out.pw.data();
  p.pointwise_length = int64_t(out.pw.size());
  p.singular = out.sv.data();
  p.singular_length = int64_t(out.sv.size());
  p.threads = threads;
  p.variant = variant;
  out.status = dac::decompose_dac(p);
  return out;
}

MatrixXd channel_slice(const std::vector<float>& oihw, const Shape& s, int i) {
  MatrixXd M(s.n, s.k());
  for (int o = 0; o < s.n; ++o)
    for (int a = 0; a < s.k(); ++a) M(o, a) = at(oihw, s, o, i, a / s.kw, a % s.kw);
  return M;
}

// Checks one DAC result against the reference channel by channel.
void check_dac(const std::string& name, const std::vector<float>& oihw, const Shape& s, int rank,
               const DacOut& out, double tol = 2e-5) {
  if (!out.status.ok) {
    report(false, name, out.status.message);
    return;
  }
  report(all_finite(out.dw) && all_finite(out.pw) && all_finite(out.sv), name + " finite");
  const int k = s.k(), m = std::min(s.n, k);
  double worst_s = 0, worst_d = 0, worst_p = 0, worst_rec = 0;
  bool signs = true;
  for (int i = 0; i < s.c; ++i) {
    const MatrixXd M = channel_slice(oihw, s, i);
    const RefSvd ref = ref_svd(M, rank, true);
    const double scale = std::max(ref.sigma(0), 1e-30);
    for (int j = 0; j < m; ++j)
      worst_s = std::max(worst_s, std::fabs(out.sv[size_t(i * m + j)] - ref.sigma(j)) / scale);
    const float* dw = out.dw.data() + int64_t(i) * rank * k;
    worst_d = std::max(worst_d, max_abs_diff(dw, ref.first, true));
    for (int o = 0; o < s.n; ++o)
      for (int j = 0; j < rank; ++j)
        worst_p = std::max(worst_p, std::fabs(out.pw[size_t((int64_t(o) * s.c + i) * rank + j)] -
                                              ref.second(o, j)) / scale);
    for (int j = 0; j < rank; ++j) signs = signs && sign_ok(dw + j * k, k);
    // Eckart-Young: the rank-r error is the discarded singular values' energy.
    MatrixXd rec = MatrixXd::Zero(s.n, k);
    for (int o = 0; o < s.n; ++o)
      for (int j = 0; j < rank; ++j)
        for (int a = 0; a < k; ++a)
          rec(o, a) += double(out.pw[size_t((int64_t(o) * s.c + i) * rank + j)]) * dw[j * k + a];
    const double err2 = (M - rec).squaredNorm();
    const double disc = ref.sigma.tail(m - rank).squaredNorm();
    worst_rec = std::max(worst_rec, std::fabs(err2 - disc) / (scale * scale));
  }
  const std::string d = " worst sigma " + std::to_string(worst_s) + " depthwise " +
                        std::to_string(worst_d) + " pointwise " + std::to_string(worst_p) +
                        " eckart-young " + std::to_string(worst_rec);
  report(worst_s < tol, name + " singular values", d);
  report(worst_d < tol, name + " depthwise", d);
  report(worst_p < tol, name + " pointwise", d);
  report(worst_rec < 10 * tol, name + " eckart-young", d);
  report(signs, name + " sign rule");
}

void test_dac_shapes() {
  const Shape shapes[] = {{1, 1, 3, 3},  {3, 5, 3, 3},   {64, 7, 3, 3}, {17, 3, 5, 5},
                          {513, 2, 3, 3}, {5, 4, 1, 1},  {8, 3, 1, 3},  {8, 3, 3, 1},
                          {2, 3, 7, 7},  {49, 2, 7, 7},  {60, 2, 7, 7}, {9, 16, 3, 3},
                          {128, 17, 3, 3}};
  uint64_t seed = 1;
  for (const Shape& s : shapes) {
    Rng rng(seed++);
    const std::vector<float> w = rng.vec(s.size());
    const std::vector<float> hwio = to_hwio(w, s);
    const int m = std::min(s.n, s.k());
    for (int rank : {1, std::min(4, m), m}) {
      const std::string base = "dac " + s.text() + " r=" + std::to_string(rank);
      const DacOut a = run_dac(w, s, dac::WeightLayout::OIHW, rank, 1);
      check_dac(base + " OIHW", w, s, rank, a);
      const DacOut b = run_dac(hwio, s, dac::WeightLayout::HWIO, rank, 3);
      report(b.status.ok && a.dw == b.dw && a.pw == b.pw && a.sv == b.sv,
             base + " HWIO threads=3 equals OIHW threads=1");
    }
  }
}

void test_dac_full_rank() {
  const Shape s{37, 6, 3, 3};
  Rng rng(77);
  const std::vector<float> w = rng.vec(s.size());
  const DacOut out = run_dac(w, s, dac::WeightLayout::OIHW, 9, 2);
  double err = 0, norm = 0;
  for (int o = 0; o < s.n; ++o)
    for (int i = 0; i < s.c; ++i)
      for (int a = 0; a < 9; ++a) {
        double v = 0;
        for (int j = 0; j < 9; ++j)
          v += double(out.pw[size_t((o * s.c + i) * 9 + j)]) * out.dw[size_t((i * 9 + j) * 9 + a)];
        const double t = at(w, s, o, i, a / 3, a % 3);
        err += (v - t) * (v - t);
        norm += t * t;
      }
  report(out.status.ok && std::sqrt(err / norm) < 1e-6, "dac full rank reconstructs",
         std::to_string(std::sqrt(err / norm)));
}

// Channel 0 random, 1 all zero, 2 of rank 2, 3 with a tiny but kept singular
// value and an exactly repeated column (a null one), 4 with only the repeated
// column (a lone null direction, the last one at full rank).
void test_dac_degenerate() {
  const Shape s{40, 5, 3, 3};
  Rng rng(5);
  std::vector<float> w = rng.vec(s.size());
  auto set = [&](int o, int i, int a, float v) {
    w[size_t(((int64_t(o) * s.c + i) * 9) + a)] = v;
  };
  for (int o = 0; o < s.n; ++o)
    for (int a = 0; a < 9; ++a) set(o, 1, a, 0.0f);
  std::vector<float> u1 = rng.vec(s.n), u2 = rng.vec(s.n), v1 = rng.vec(9), v2 = rng.vec(9);
  for (int o = 0; o < s.n; ++o)
    for (int a = 0; a < 9; ++a) set(o, 2, a, u1[size_t(o)] * v1[size_t(a)] + u2[size_t(o)] * v2[size_t(a)]);
  for (int o = 0; o < s.n; ++o) {
    const float c0 = at(w, s, o, 3, 0, 0);
    set(o, 3, 1, c0);                              // column 1 == column 0: exact null direction
    set(o, 3, 2, c0 + 1e-5f * rng.next());         // column 2 ~ column 0: sigma ~ 1e-6 relative
    set(o, 4, 5, at(w, s, o, 4, 1, 1));            // column 5 == column 4
  }
  for (int rank : {2, 4, 9}) {
    const DacOut out = run_dac(w, s, dac::WeightLayout::OIHW, rank, 1);
    check_dac("dac degenerate r=" + std::to_string(rank), w, s, rank, out, 5e-5);
    bool zero = true;
    for (int j = 0; j < rank * 9; ++j) zero = zero && out.dw[size_t(9 * rank + j)] == 0.0f;
    for (int o = 0; o < s.n; ++o)
      for (int j = 0; j < rank; ++j) zero = zero && out.pw[size_t((o * s.c + 1) * rank + j)] == 0.0f;
    for (int j = 0; j < 9; ++j) zero = zero && out.sv[size_t(9 + j)] == 0.0f;
    report(zero, "dac all-zero channel gives zeros r=" + std::to_string(rank));
    bool null_rank2 = true;
    for (int j = 2; j < rank; ++j)
      for (int a = 0; a < 9; ++a) null_rank2 = null_rank2 && out.dw[size_t((2 * rank + j) * 9 + a)] == 0.0f;
    report(null_rank2, "dac rank-2 channel: components beyond 2 are zero r=" + std::to_string(rank));
    if (rank == 9) {
      bool last_zero = out.sv[size_t(4 * 9 + 8)] < 1e-6f * out.sv[size_t(4 * 9)];
      for (int a = 0; a < 9; ++a) last_zero = last_zero && out.dw[size_t((4 * 9 + 8) * 9 + a)] == 0.0f;
      report(last_zero, "dac lone null direction at full rank is zero");
    }
    if (rank >= 4) {
      const float* dw3 = out.dw.data() + 3 * rank * 9;
      double nrm = 0;
      for (int a = 0; a < 9; ++a) nrm += double(dw3[2 * 9 + a]) * dw3[2 * 9 + a];
      report(std::fabs(nrm - 1) < 1e-5, "dac tiny kept singular value keeps a unit filter",
             std::to_string(nrm) + " sigma ratio " + std::to_string(out.sv[27 + 2] / out.sv[27]));
    }
  }
}

void test_dac_singular_optional() {
  const Shape s{12, 3, 3, 3};
  Rng rng(9);
  const std::vector<float> w = rng.vec(s.size());
  std::vector<float> dw(size_t(3 * 2 * 9)), pw(size_t(12 * 3 * 2));
  dac::DacParams p;
  p.w = {w.data(), int64_t(w.size()), dac::WeightLayout::OIHW, 12, 3, 3, 3};
  p.rank = 2;
  p.depthwise = dw.data();
  p.depthwise_length = int64_t(dw.size());
  p.pointwise = pw.data();
  p.pointwise_length = int64_t(pw.size());
  const dac::Status st = dac::decompose_dac(p);
  const DacOut ref = run_dac(w, s, dac::WeightLayout::OIHW, 2, 1);
  report(st.ok && dw == ref.dw && pw == ref.pw, "dac without singular output", st.message);
}

void test_dac_batch() {
  const Shape shapes[] = {{64, 3, 3, 3}, {20, 33, 5, 5}, {7, 200, 3, 3}, {512, 9, 3, 3}};
  const dac::WeightLayout layouts[] = {dac::WeightLayout::OIHW, dac::WeightLayout::HWIO,
                                       dac::WeightLayout::OIHW, dac::WeightLayout::HWIO};
  const int ranks[] = {4, 3, 2, 9};
  std::vector<std::vector<float>> ws, dws, pws, svs;
  std::vector<dac::DacParams> ps;
  Rng rng(31);
  for (int l = 0; l < 4; ++l) {
    const Shape& s = shapes[l];
    std::vector<float> w = rng.vec(s.size());
    if (layouts[l] == dac::WeightLayout::HWIO) w = to_hwio(w, s);
    ws.push_back(w);
    const int m = std::min(s.n, s.k());
    dws.emplace_back(size_t(int64_t(s.c) * ranks[l] * s.k()), kNaN);
    pws.emplace_back(size_t(int64_t(s.n) * s.c * ranks[l]), kNaN);
    svs.emplace_back(size_t(int64_t(s.c) * m), kNaN);
  }
  for (int l = 0; l < 4; ++l) {
    dac::DacParams p;
    const Shape& s = shapes[l];
    p.w = {ws[size_t(l)].data(), int64_t(ws[size_t(l)].size()), layouts[l], s.n, s.c, s.kh, s.kw};
    p.rank = ranks[l];
    p.depthwise = dws[size_t(l)].data();
    p.depthwise_length = int64_t(dws[size_t(l)].size());
    p.pointwise = pws[size_t(l)].data();
    p.pointwise_length = int64_t(pws[size_t(l)].size());
    p.singular = svs[size_t(l)].data();
    p.singular_length = int64_t(svs[size_t(l)].size());
    p.threads = 99;  // ignored by the batch call
    ps.push_back(p);
  }
  for (int threads : {1, 2, 5}) {
    for (auto& v : dws) std::fill(v.begin(), v.end(), kNaN);
    for (auto& v : pws) std::fill(v.begin(), v.end(), kNaN);
    for (auto& v : svs) std::fill(v.begin(), v.end(), kNaN);
    const dac::Status st = dac::decompose_dac_batch(ps.data(), 4, threads);
    bool same = st.ok;
    for (int l = 0; l < 4 && same; ++l) {
      const DacOut one = run_dac(ws[size_t(l)], shapes[l], layouts[l], ranks[l], 1);
      same = one.dw == dws[size_t(l)] && one.pw == pws[size_t(l)] && one.sv == svs[size_t(l)];
    }
    report(same, "dac batch equals per-layer calls threads=" + std::to_string(threads), st.message);
  }
  report(dac::decompose_dac_batch(ps.data(), 0, 2).ok, "dac batch of zero layers");
  dac::DacParams bad = ps[2];
  bad.pointwise_length -= 1;
  std::vector<dac::DacParams> with_bad = ps;
  with_bad[2] = bad;
  dac::Status st = dac::decompose_dac_batch(with_bad.data(), 4, 2);
  report(!st.ok && st.message.find("layer 2") != std::string::npos &&
             st.message.find("pointwise") != std::string::npos,
         "dac batch names the bad layer and field", st.message);
  std::vector<float> nan_w = ws[1];
  nan_w[100] = kNaN;
  with_bad = ps;
  with_bad[1].w.data = nan_w.data();
  st = dac::decompose_dac_batch(with_bad.data(), 4, 2);
  report(!st.ok && st.message.find("layer 1") != std::string::npos &&
             st.message.find("NaN") != std::string::npos,
         "dac batch reports NaN weights by layer", st.message);
  report(!dac::decompose_dac_batch(nullptr, 2, 1).ok, "dac batch null layers");
  report(!dac::decompose_dac_batch(ps.data(), -1, 1).ok, "dac batch negative count");
}

bool fails_with(const dac::Status& st, const std::string& needle) {
  return !st.ok && st.message.find(needle) != std::string::npos;
}

// Each variant by name: the dispatcher hands out that table, and a
// decomposition forced onto it matches the reference; an unknown name is an
// error naming the available ones.
void test_dac_variants() {
  const dac::Variants<dac::detail::DacKernels>& v = dac::detail::dac_kernel_variants();
  const Shape s{20, 7, 3, 3};
  Rng rng(12);
  const std::vector<float> w = rng.vec(s.size());
  for (int i = 0; i < v.count; ++i) {
    const dac::detail::DacKernels* found = nullptr;
    const bool ok = dac::detail::find_dac_kernels(v.names[i], &found).ok && found == v.tables[i];
    report(ok && std::string(found->name) == v.names[i], std::string("find_dac_kernels ") + v.names[i]);
    check_dac(std::string("dac forced onto ") + v.names[i], w, s, 4,
              run_dac(w, s, dac::WeightLayout::OIHW, 4, 2, v.names[i]));
  }
  const DacOut bad = run_dac(w, s, dac::WeightLayout::OIHW, 4, 1, "mmx");
  report(!bad.status.ok && bad.status.message.find("variant 'mmx' is not available") != std::string::npos &&
             bad.status.message.find(v.joined) != std::string::npos,
         "dac unknown variant", bad.status.message);
}

void test_dac_bad_args() {
  const Shape s{8, 3, 3, 3};
  Rng rng(3);
  std::vector<float> w = rng.vec(s.size());
  std::vector<float> dw(size_t(3 * 2 * 9)), pw(size_t(8 * 3 * 2)), sv(size_t(3 * 8));
  auto good = [&]() {
    dac::DacParams p;
    p.w = {w.data(), int64_t(w.size()), dac::WeightLayout::OIHW, 8, 3, 3, 3};
    p.rank = 2;
    p.depthwise = dw.data();
    p.depthwise_length = int64_t(dw.size());
    p.pointwise = pw.data();
    p.pointwise_length = int64_t(pw.size());
    p.singular = sv.data();
    p.singular_length = int64_t(sv.size());
    return p;
  };
  report(dac::decompose_dac(good()).ok, "dac good arguments pass");
  struct Bad {
    const char* name;
    const char* needle;
    void (*edit)(dac::DacParams&);
  };
  const Bad cases[] = {
      {"n=0", "dimension n", [](dac::DacParams& p) { p.w.n = 0; }},
      {"c<0", "dimension c", [](dac::DacParams& p) { p.w.c = -3; }},
      {"kh=0", "dimension kh", [](dac::DacParams& p) { p.w.kh = 0; }},
      {"kw=0", "dimension kw", [](dac::DacParams& p) { p.w.kw = 0; }},
      {"layout", "layout", [](dac::DacParams& p) { p.w.layout = static_cast<dac::WeightLayout>(7); }},
      {"null data", "data is null", [](dac::DacParams& p) { p.w.data = nullptr; }},
      {"short weights", "weights length", [](dac::DacParams& p) { p.w.length -= 1; }},
      {"overflow", "int64", [](dac::DacParams& p) { p.w.n = p.w.c = p.w.kh = p.w.kw = 1 << 30; }},
      {"rank 0", "rank 0", [](dac::DacParams& p) { p.rank = 0; }},
      {"rank > max", "rank 9", [](dac::DacParams& p) { p.rank = 9; }},  // min(8, 9) = 8
      {"rank negative", "rank -1", [](dac::DacParams& p) { p.rank = -1; }},
      {"depthwise length", "depthwise length", [](dac::DacParams& p) { p.depthwise_length += 1; }},
      {"depthwise null", "depthwise buffer is null", [](dac::DacParams& p) { p.depthwise = nullptr; }},
      {"pointwise length", "pointwise length", [](dac::DacParams& p) { p.pointwise_length = 0; }},
      {"pointwise null", "pointwise buffer is null", [](dac::DacParams& p) { p.pointwise = nullptr; }},
      {"singular length", "singular length", [](dac::DacParams& p) { p.singular_length = 9; }},
      {"singular null with length", "singular buffer is null", [](dac::DacParams& p) { p.singular = nullptr; }},
  };
  for (const Bad& b : cases) {
    dac::DacParams p = good();
    b.edit(p);
    const dac::Status st = dac::decompose_dac(p);
    report(fails_with(st, b.needle) && st.message.rfind("decompose_dac: ", 0) == 0,
           std::string("dac rejects ") + b.name, st.message);
  }
  for (float bad : {kNaN, std::numeric_limits<float>::infinity()}) {
    std::vector<float> w2 = w;
    w2[size_t((5 * 3 + 2) * 9 + 4)] = bad;  // output 5, input channel 2
    dac::DacParams p = good();
    p.w.data = w2.data();
    const dac::Status st = dac::decompose_dac(p);
    report(fails_with(st, "input channel 2") && fails_with(st, "NaN or infinity"),
           "dac rejects non-finite weights", st.message);
  }
  // k > n takes the exact SVD, not the Gram route: its own trace test reports the NaN (every route checks every weight).
  {
    const Shape s{2, 3, 3, 3};
    const std::vector<float> wide = Rng(31).vec(s.size());
    for (bool hwio : {false, true})
      for (float bad : {kNaN, -std::numeric_limits<float>::infinity()}) {
        std::vector<float> w2 = wide;
        w2[size_t((1 * 3 + 1) * 9 + 7)] = bad;  // output 1, input channel 1
        if (hwio) w2 = to_hwio(w2, s);
        const dac::Status st = run_dac(w2, s, hwio ? dac::WeightLayout::HWIO : dac::WeightLayout::OIHW, 2, 1).status;
        report(fails_with(st, "input channel 1") && fails_with(st, "NaN or infinity"),
               std::string("dac rejects non-finite weights where k > n, ") + (hwio ? "HWIO" : "OIHW"), st.message);
      }
  }
}

// --- spatial and channel -----------------------------------------------------------

MatrixXd spatial_matrix(const std::vector<float>& oihw, const Shape& s) {
  MatrixXd A(int64_t(s.c) * s.kh, int64_t(s.n) * s.kw);
  for (int o = 0; o < s.n; ++o)
    for (int i = 0; i < s.c; ++i)
      for (int h = 0; h < s.kh; ++h)
        for (int x = 0; x < s.kw; ++x) A(i * s.kh + h, o * s.kw + x) = at(oihw, s, o, i, h, x);
  return A;
}

MatrixXd channel_matrix(const std::vector<float>& oihw, const Shape& s) {
  MatrixXd A(s.n, int64_t(s.c) * s.k());
  for (int o = 0; o < s.n; ++o)
    for (int64_t q = 0; q < int64_t(s.c) * s.k(); ++q) A(o, q) = oihw[size_t(o * int64_t(s.c) * s.k() + q)];
  return A;
}

struct PairOut {
  std::vector<float> first, second, sv;
  dac::Status status;
};

PairOut run_spatial(const std::vector<float>& w, const Shape& s, dac::WeightLayout layout, int width,
                    int threads) {
  PairOut out;
  out.first.assign(size_t(int64_t(width) * s.c * s.kh), kNaN);
  out.second.assign(size_t(int64_t(s.n) * width * s.kw), kNaN);
  out.sv.assign(size_t(std::min(int64_t(s.c) * s.kh, int64_t(s.n) * s.kw)), kNaN);
  dac::SpatialParams p;
  p.w = {w.data(), int64_t(w.size()), layout, s.n, s.c, s.kh, s.kw};
  p.width = width;
  p.vertical = out.first.data();
  p.vertical_length = int64_t(out.first.size());
  p.horizontal = out.second.data();
  p.horizontal_length = int64_t(out.second.size());
  p.singular = out.sv.data();
  p.singular_length = int64_t(out.sv.size());
  p.threads = threads;
  out.status = dac::decompose_spatial(p);
  return out;
}

PairOut run_channel(const std::vector<float>& w, const Shape& s, dac::WeightLayout layout, int width,
                    int threads) {
  PairOut out;
  out.first.assign(size_t(int64_t(width) * s.c * s.k()), kNaN);
  out.second.assign(size_t(int64_t(s.n) * width), kNaN);
  out.sv.assign(size_t(std::min(int64_t(s.n), int64_t(s.c) * s.k())), kNaN);
  dac::ChannelParams p;
  p.w = {w.data(), int64_t(w.size()), layout, s.n, s.c, s.kh, s.kw};
  p.width = width;
  p.first = out.first.data();
  p.first_length = int64_t(out.first.size());
  p.second = out.second.data();
  p.second_length = int64_t(out.second.size());
  p.singular = out.sv.data();
  p.singular_length = int64_t(out.sv.size());
  p.threads = threads;
  out.status = dac::decompose_channel(p);
  return out;
}

// The spatial horizontal filters are stored [n][width][kw]; as a matrix over
// (o, x) rows they are the reference's second-stage columns.
MatrixXd spatial_second(const PairOut& out, const Shape& s, int width) {
  MatrixXd m(int64_t(s.n) * s.kw, width);
  for (int o = 0; o < s.n; ++o)
    for (int j = 0; j < width; ++j)
      for (int x = 0; x < s.kw; ++x) m(o * s.kw + x, j) = out.second[size_t((int64_t(o) * width + j) * s.kw + x)];
  return m;
}

MatrixXd as_matrix(const std::vector<float>& v, int64_t rows, int64_t cols) {  // row-major
  MatrixXd m(rows, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m(r, c) = v[size_t(r * cols + c)];
  return m;
}

// first: (width x F) row-major unit vectors; second: S x width scaled vectors.
void check_pair(const std::string& name, const MatrixXd& A, bool first_is_right, int width,
                const PairOut& out, const MatrixXd& second, double tol = 2e-5) {
  if (!out.status.ok) {
    report(false, name, out.status.message);
    return;
  }
  const RefSvd ref = ref_svd(A, width, first_is_right);
  const double scale = std::max(ref.sigma(0), 1e-30);
  const int64_t flen = first_is_right ? A.cols() : A.rows();
  double ds = 0;
  for (Eigen::Index j = 0; j < ref.sigma.size(); ++j) ds = std::max(ds, std::fabs(out.sv[size_t(j)] - ref.sigma(j)) / scale);
  const double df = max_abs_diff(out.first.data(), ref.first, true);
  const double dsec = (second - ref.second).cwiseAbs().maxCoeff() / scale;
  bool signs = true;
  for (int j = 0; j < width; ++j) signs = signs && sign_ok(out.first.data() + j * flen, int(flen));
  const MatrixXd F = as_matrix(out.first, width, flen);
  const MatrixXd rec = first_is_right ? MatrixXd(second * F) : MatrixXd(F.transpose() * second.transpose());
  const double err2 = (A - rec).squaredNorm();
  const double disc = ref.sigma.tail(ref.sigma.size() - width).squaredNorm();
  const double ey = std::fabs(err2 - disc) / (scale * scale);
  const std::string d = "sigma " + std::to_string(ds) + " first " + std::to_string(df) + " second " +
                        std::to_string(dsec) + " eckart-young " + std::to_string(ey);
  report(all_finite(out.first) && all_finite(out.second) && all_finite(out.sv), name + " finite");
  report(ds < tol && df < tol && dsec < tol, name + " matches reference", d);
  report(ey < 10 * tol, name + " eckart-young", d);
  report(signs, name + " sign rule");
}

void test_baselines() {
  const Shape shapes[] = {{1, 1, 3, 3}, {3, 5, 3, 3}, {16, 7, 3, 3}, {5, 3, 5, 5},
                          {6, 4, 1, 3}, {6, 4, 3, 1}, {4, 6, 1, 1}, {33, 2, 7, 7}, {8, 17, 3, 3}};
  uint64_t seed = 100;
  for (const Shape& s : shapes) {
    Rng rng(seed++);
    const std::vector<float> w = rng.vec(s.size());
    const std::vector<float> hwio = to_hwio(w, s);
    const MatrixXd As = spatial_matrix(w, s);
    const int ms = int(std::min(As.rows(), As.cols()));
    for (int width : {1, std::min(3, ms), ms}) {
      const std::string base = "spatial " + s.text() + " w=" + std::to_string(width);
      const PairOut a = run_spatial(w, s, dac::WeightLayout::OIHW, width, 1);
      check_pair(base, As, false, width, a, spatial_second(a, s, width));
      const PairOut b = run_spatial(hwio, s, dac::WeightLayout::HWIO, width, 2);
      report(b.status.ok && a.first == b.first && a.second == b.second && a.sv == b.sv,
             base + " HWIO equals OIHW");
    }
    const MatrixXd Ac = channel_matrix(w, s);
    const int mc = int(std::min(Ac.rows(), Ac.cols()));
    for (int width : {1, std::min(3, mc), mc}) {
      const std::string base = "channel " + s.text() + " w=" + std::to_string(width);
      const PairOut a = run_channel(w, s, dac::WeightLayout::OIHW, width, 1);
      check_pair(base, Ac, true, width, a, as_matrix(a.second, s.n, width));
      const PairOut b = run_channel(hwio, s, dac::WeightLayout::HWIO, width, 2);
      report(b.status.ok && a.first == b.first && a.second == b.second && a.sv == b.sv,
             base + " HWIO equals OIHW");
    }
  }
}

// Big enough for the threaded Gram and projection; checked for self-consistency
// (sum of all sigma^2 = ||W||^2, Eckart-Young) and against one thread.
void test_baselines_threaded() {
  const Shape s{96, 160, 3, 3};
  Rng rng(4242);
  const std::vector<float> w = rng.vec(s.size());
  double norm2 = 0;
  for (float x : w) norm2 += double(x) * x;
  const int width = 40;
  const PairOut a = run_spatial(w, s, dac::WeightLayout::OIHW, width, 1);
  const PairOut b = run_spatial(w, s, dac::WeightLayout::OIHW, width, 2);
  const PairOut c1 = run_channel(w, s, dac::WeightLayout::OIHW, width, 1);
  const PairOut c2 = run_channel(w, s, dac::WeightLayout::OIHW, width, 2);
  auto close = [](const std::vector<float>& x, const std::vector<float>& y, double tol) {
    if (x.size() != y.size()) return false;
    double scale = 0, d = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      scale = std::max(scale, double(std::fabs(x[i])));
      d = std::max(d, double(std::fabs(x[i] - y[i])));
    }
    return d <= tol * scale;
  };
  report(a.status.ok && b.status.ok && close(a.first, b.first, 1e-5) && close(a.second, b.second, 1e-5) &&
             close(a.sv, b.sv, 1e-6),
         "spatial threads=2 matches threads=1");
  report(c1.status.ok && c2.status.ok && close(c1.first, c2.first, 1e-5) && close(c1.second, c2.second, 1e-5) &&
             close(c1.sv, c2.sv, 1e-6),
         "channel threads=2 matches threads=1");
  for (const PairOut* o : {&b, &c2}) {
    double all = 0, disc = 0;
    for (size_t j = 0; j < o->sv.size(); ++j) {
      all += double(o->sv[j]) * o->sv[j];
      if (j >= size_t(width)) disc += double(o->sv[j]) * o->sv[j];
    }
    const bool spatial = o == &b;
    const MatrixXd A = spatial ? spatial_matrix(w, s) : channel_matrix(w, s);
    const int64_t flen = spatial ? A.rows() : A.cols();
    const MatrixXd F = as_matrix(o->first, width, flen);
    const MatrixXd S = spatial ? spatial_second(*o, s, width) : as_matrix(o->second, s.n, width);
    const MatrixXd rec = spatial ? MatrixXd(F.transpose() * S.transpose()) : MatrixXd(S * F);
    const double err2 = (A - rec).squaredNorm();
    report(std::fabs(all - norm2) < 1e-5 * norm2 && std::fabs(err2 - disc) < 1e-5 * norm2,
           std::string(spatial ? "spatial" : "channel") + " threaded energy and eckart-young",
           std::to_string(all / norm2) + " " + std::to_string(err2 / norm2) + " vs " + std::to_string(disc / norm2));
  }
}

// Low rank plus noise, wide and tall, widths inside and past the signal
// rank: the Gram route's factors (inverse iteration on the tridiagonal form)
// agree with an exact SVD in singular values, vectors and Eckart-Young error.
void test_baselines_low_rank() {
  const Shape shapes[] = {{40, 60, 3, 3}, {150, 30, 3, 3}, {200, 24, 1, 1}};
  uint64_t seed = 600;
  for (const Shape& s : shapes) {
    Rng rng(seed++);
    const int rank = 6;
    const MatrixXd U = Eigen::Map<const Eigen::MatrixXf>(rng.vec(int64_t(s.n) * rank).data(), s.n, rank).cast<double>();
    const MatrixXd V =
        Eigen::Map<const Eigen::MatrixXf>(rng.vec(int64_t(rank) * s.c * s.k()).data(), rank, int64_t(s.c) * s.k()).cast<double>();
    const MatrixXd W = U * V;
    std::vector<float> w(size_t(s.size()));
    for (int64_t q = 0; q < s.size(); ++q) w[size_t(q)] = float(W(q / W.cols(), q % W.cols()) + 1e-3 * rng.next());
    const MatrixXd As = spatial_matrix(w, s), Ac = channel_matrix(w, s);
    for (int width : {rank, 4 * rank}) {
      const std::string tag = s.text() + " low rank w=" + std::to_string(width);
      if (width <= std::min(As.rows(), As.cols())) {
        const PairOut a = run_spatial(w, s, dac::WeightLayout::OIHW, width, 2);
        check_pair("spatial " + tag, As, false, width, a, spatial_second(a, s, width));
      }
      if (width <= std::min(Ac.rows(), Ac.cols())) {
        const PairOut b = run_channel(w, s, dac::WeightLayout::OIHW, width, 2);
        check_pair("channel " + tag, Ac, true, width, b, as_matrix(b.second, s.n, width));
      }
    }
  }
}

void test_baselines_degenerate() {
  const Shape s{6, 5, 3, 3};
  std::vector<float> zero(size_t(s.size()), 0.0f);
  const PairOut a = run_spatial(zero, s, dac::WeightLayout::OIHW, 4, 1);
  const PairOut b = run_channel(zero, s, dac::WeightLayout::OIHW, 4, 1);
  auto all_zero = [](const PairOut& o) {
    for (const auto* v : {&o.first, &o.second, &o.sv})
      for (float x : *v)
        if (x != 0.0f) return false;
    return o.status.ok;
  };
  report(all_zero(a), "spatial all-zero weights give zeros");
  report(all_zero(b), "channel all-zero weights give zeros");
  // Rank 2 in both arrangements: W[o][i][h][x] = p1[o] q1[i] r1[h] s1[x] + p2 q2 r2 s2.
  Rng rng(8);
  std::vector<float> p1 = rng.vec(6), p2 = rng.vec(6), q1 = rng.vec(5), q2 = rng.vec(5);
  std::vector<float> r1 = rng.vec(3), r2 = rng.vec(3), s1 = rng.vec(3), s2 = rng.vec(3);
  std::vector<float> w(size_t(s.size()));
  for (int o = 0; o < 6; ++o)
    for (int i = 0; i < 5; ++i)
      for (int h = 0; h < 3; ++h)
        for (int x = 0; x < 3; ++x)
          w[size_t(((o * 5 + i) * 3 + h) * 3 + x)] =
              p1[size_t(o)] * q1[size_t(i)] * r1[size_t(h)] * s1[size_t(x)] +
              p2[size_t(o)] * q2[size_t(i)] * r2[size_t(h)] * s2[size_t(x)];
  const PairOut c = run_spatial(w, s, dac::WeightLayout::OIHW, 5, 1);
  check_pair("spatial rank-2 weights w=5", spatial_matrix(w, s), false, 5, c, spatial_second(c, s, 5), 5e-5);
  bool tail_zero = true;
  for (size_t q = 2 * 15; q < c.first.size(); ++q) tail_zero = tail_zero && c.first[q] == 0.0f;
  report(tail_zero, "spatial rank-2 weights: vertical filters beyond 2 are zero");
  const PairOut d = run_channel(w, s, dac::WeightLayout::OIHW, 5, 1);
  check_pair("channel rank-2 weights w=5", channel_matrix(w, s), true, 5, d, as_matrix(d.second, 6, 5), 5e-5);
}

void test_baselines_bad_args() {
  const Shape s{8, 3, 3, 3};
  Rng rng(13);
  std::vector<float> w = rng.vec(s.size());
  {
    std::vector<float> v(size_t(2 * 3 * 3)), h(size_t(8 * 2 * 3)), sv(9);
    auto good = [&]() {
      dac::SpatialParams p;
      p.w = {w.data(), int64_t(w.size()), dac::WeightLayout::HWIO, 8, 3, 3, 3};
      p.width = 2;
      p.vertical = v.data();
      p.vertical_length = int64_t(v.size());
      p.horizontal = h.data();
      p.horizontal_length = int64_t(h.size());
      p.singular = sv.data();
      p.singular_length = int64_t(sv.size());
      return p;
    };
    report(dac::decompose_spatial(good()).ok, "spatial good arguments pass");
    struct Bad {
      const char* name;
      const char* needle;
      void (*edit)(dac::SpatialParams&);
    };
    const Bad cases[] = {
        {"width 0", "width 0", [](dac::SpatialParams& p) { p.width = 0; }},
        {"width > max", "width 10", [](dac::SpatialParams& p) { p.width = 10; }},  // min(9, 24)
        {"n=0", "dimension n", [](dac::SpatialParams& p) { p.w.n = 0; }},
        {"layout", "layout", [](dac::SpatialParams& p) { p.w.layout = static_cast<dac::WeightLayout>(-1); }},
        {"weights length", "weights length", [](dac::SpatialParams& p) { p.w.length = 5; }},
        {"vertical length", "vertical length", [](dac::SpatialParams& p) { p.vertical_length -= 1; }},
        {"vertical null", "vertical buffer is null", [](dac::SpatialParams& p) { p.vertical = nullptr; }},
        {"horizontal length", "horizontal length", [](dac::SpatialParams& p) { p.horizontal_length += 3; }},
        {"singular length", "singular length", [](dac::SpatialParams& p) { p.singular_length = 24; }},
        {"overflow", "int64", [](dac::SpatialParams& p) { p.w.n = p.w.c = p.w.kh = p.w.kw = 1 << 30; }},
    };
    for (const Bad& b : cases) {
      dac::SpatialParams p = good();
      b.edit(p);
      const dac::Status st = dac::decompose_spatial(p);
      report(fails_with(st, b.needle) && st.message.rfind("decompose_spatial: ", 0) == 0,
             std::string("spatial rejects ") + b.name, st.message);
    }
    std::vector<float> w2 = w;
    w2[17] = kNaN;
    dac::SpatialParams p = good();
    p.w.data = w2.data();
    report(fails_with(dac::decompose_spatial(p), "NaN"), "spatial rejects NaN weights");
  }
  {
    std::vector<float> f(size_t(2 * 27)), g(size_t(8 * 2)), sv(8);
    auto good = [&]() {
      dac::ChannelParams p;
      p.w = {w.data(), int64_t(w.size()), dac::WeightLayout::OIHW, 8, 3, 3, 3};
      p.width = 2;
      p.first = f.data();
      p.first_length = int64_t(f.size());
      p.second = g.data();
      p.second_length = int64_t(g.size());
      p.singular = sv.data();
      p.singular_length = int64_t(sv.size());
      return p;
    };
    report(dac::decompose_channel(good()).ok, "channel good arguments pass");
    struct Bad {
      const char* name;
      const char* needle;
      void (*edit)(dac::ChannelParams&);
    };
    const Bad cases[] = {
        {"width 0", "width 0", [](dac::ChannelParams& p) { p.width = 0; }},
        {"width > max", "width 9", [](dac::ChannelParams& p) { p.width = 9; }},  // min(8, 27)
        {"kw=0", "dimension kw", [](dac::ChannelParams& p) { p.w.kw = 0; }},
        {"null data", "data is null", [](dac::ChannelParams& p) { p.w.data = nullptr; }},
        {"first length", "first length", [](dac::ChannelParams& p) { p.first_length = 1; }},
        {"second null", "second buffer is null", [](dac::ChannelParams& p) { p.second = nullptr; }},
        {"second length", "second length", [](dac::ChannelParams& p) { p.second_length += 1; }},
        {"singular length", "singular length", [](dac::ChannelParams& p) { p.singular_length = 27; }},
    };
    for (const Bad& b : cases) {
      dac::ChannelParams p = good();
      b.edit(p);
      const dac::Status st = dac::decompose_channel(p);
      report(fails_with(st, b.needle) && st.message.rfind("decompose_channel: ", 0) == 0,
             std::string("channel rejects ") + b.name, st.message);
    }
    std::vector<float> w2 = w;
    w2[200] = std::numeric_limits<float>::infinity();
    dac::ChannelParams p = good();
    p.w.data = w2.data();
    report(fails_with(dac::decompose_channel(p), "NaN or infinity"), "channel rejects infinite weights");
  }
}

// --- dac_pair_energy ---------------------------------------------------------------

// The three sums by the definition: W' built whole, then each term on its own.
void pair_energy_naive(const std::vector<float>& oihw, const Shape& s, int r, const std::vector<float>& dw,
                       const std::vector<float>& pw, const std::vector<double>& tap, const std::vector<double>& ch,
                       std::vector<double>* energy, std::vector<double>* approx, std::vector<double>* residual) {
  const int K = s.k();
  energy->assign(size_t(s.n), 0);
  approx->assign(size_t(s.n), 0);
  residual->assign(size_t(s.n), 0);
  for (int j = 0; j < s.n; ++j)
    for (int i = 0; i < s.c; ++i)
      for (int t = 0; t < K; ++t) {
        double wp = 0;
        for (int m = 0; m < r; ++m)
          wp += double(pw[size_t((int64_t(j) * s.c + i) * r + m)]) * dw[size_t((int64_t(i) * r + m) * K + t)];
        const double w = oihw[size_t((int64_t(j) * s.c + i) * K + t)];
        const double scale = ch[size_t(i)] * tap[size_t(t)];
        (*energy)[size_t(j)] += (scale * w) * (scale * w);
        (*approx)[size_t(j)] += (scale * wp) * (scale * wp);
        (*residual)[size_t(j)] += (w - wp) * (w - wp);
      }
}

struct PairEnergyCase {
  Shape s;
  int rank;
  std::vector<float> w, w_hwio, dw, pw;
  std::vector<double> tap, ch, energy, approx, residual;

  PairEnergyCase(const Shape& shape, int r, uint64_t seed) : s(shape), rank(r) {
    Rng rng(seed);
    w = rng.vec(s.size());
    w_hwio = to_hwio(w, s);
    dw = rng.vec(int64_t(s.c) * r * s.k());
    pw = rng.vec(int64_t(s.n) * s.c * r);
    for (float v : rng.vec(s.k())) tap.push_back(1.5 + v);
    for (float v : rng.vec(s.c)) ch.push_back(0.5 * v);
    energy.assign(size_t(s.n), std::nan(""));
    approx = residual = energy;
  }

  dac::DacPairEnergyParams params(bool hwio) {
    dac::DacPairEnergyParams p;
    const std::vector<float>& data = hwio ? w_hwio : w;
    p.w = {data.data(), int64_t(data.size()), hwio ? dac::WeightLayout::HWIO : dac::WeightLayout::OIHW, s.n, s.c, s.kh, s.kw};
    p.rank = rank;
    p.depthwise = dw.data();
    p.depthwise_length = int64_t(dw.size());
    p.pointwise = pw.data();
    p.pointwise_length = int64_t(pw.size());
    p.tap_scale = tap.data();
    p.tap_scale_length = int64_t(tap.size());
    p.channel_scale = ch.data();
    p.channel_scale_length = int64_t(ch.size());
    p.energy = energy.data();
    p.energy_length = int64_t(energy.size());
    p.approx_energy = approx.data();
    p.approx_energy_length = int64_t(approx.size());
    p.residual = residual.data();
    p.residual_length = int64_t(residual.size());
    return p;
  }
};

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t q = 0; q < a.size(); ++q) {
    const double d = std::fabs(a[q] - b[q]) / std::max(std::fabs(b[q]), 1e-300);
    worst = std::max(worst, std::isfinite(d) ? d : std::numeric_limits<double>::infinity());
  }
  return worst;
}

void test_dac_pair_energy() {
  const Shape shapes[] = {{7, 5, 3, 3}, {1, 1, 1, 1}, {13, 3, 1, 7}, {4, 11, 5, 2}, {33, 9, 3, 1}};
  uint64_t seed = 40;
  for (const Shape& s : shapes) {
    for (int r : {1, std::min(s.n, s.k())}) {
      PairEnergyCase tc(s, r, seed++);
      std::vector<double> e, a, d;
      pair_energy_naive(tc.w, s, r, tc.dw, tc.pw, tc.tap, tc.ch, &e, &a, &d);
      for (bool hwio : {false, true})
        for (int threads : {1, 3}) {
          dac::DacPairEnergyParams p = tc.params(hwio);
          p.threads = threads;
          const dac::Status st = dac::dac_pair_energy(p);
          const double worst = std::max({max_rel_diff(tc.energy, e), max_rel_diff(tc.approx, a), max_rel_diff(tc.residual, d)});
          report(st.ok && worst <= 1e-12,
                 "dac_pair_energy " + s.text() + " r=" + std::to_string(r) + (hwio ? " HWIO" : " OIHW") +
                     " threads=" + std::to_string(threads),
                 st.message + " worst relative difference " + std::to_string(worst));
        }
    }
  }
  // An exact pair (small integers, so every product is exact in float): no residual, equal energies.
  {
    PairEnergyCase tc({6, 4, 2, 2}, 1, 77);
    for (auto& v : tc.pw) v = std::round(4 * v);
    for (auto& v : tc.dw) v = std::round(4 * v);
    for (int j = 0; j < 6; ++j)
      for (int i = 0; i < 4; ++i)
        for (int t = 0; t < 4; ++t) tc.w[size_t((j * 4 + i) * 4 + t)] = float(tc.pw[size_t(j * 4 + i)] * tc.dw[size_t(i * 4 + t)]);
    const dac::Status st = dac::dac_pair_energy(tc.params(false));
    report(st.ok && std::all_of(tc.residual.begin(), tc.residual.end(), [](double v) { return v == 0; }) &&
               tc.energy == tc.approx,
           "dac_pair_energy exact pair", st.message);
  }
}

// Every variant's pair_energy gives ref's sums bit for bit (the gains and
// report.json must not depend on the CPU): output counts that leave lanes
// over, k fixed (3x3), on the stack (5x5) and past it (9x9), both layouts.
void test_pair_energy_variants() {
  const dac::Variants<dac::detail::DacKernels>& variants = dac::detail::dac_kernel_variants();
  const Shape shapes[] = {{7, 5, 3, 3}, {16, 3, 3, 3}, {9, 4, 5, 5}, {5, 2, 9, 9}, {3, 6, 1, 1}};
  uint64_t seed = 900;
  for (const Shape& s : shapes)
    for (bool hwio : {false, true}) {
      const int r = std::min(s.n, std::min(s.k(), 3));
      PairEnergyCase tc(s, r, seed++);
      const dac::DacPairEnergyParams p = tc.params(hwio);
      const int64_t n = s.n, c = s.c, K = s.k();
      std::vector<double> tap2(static_cast<size_t>(K));
      for (int64_t t = 0; t < K; ++t) tap2[size_t(t)] = tc.tap[size_t(t)] * tc.tap[size_t(t)];
      std::vector<double> want[3], scratch(size_t(2 * K));
      for (int v = 0; v < variants.count; ++v) {
        std::vector<double> got[3];
        for (auto& g : got) g.assign(size_t(n), std::nan(""));
        const dac::detail::PairEnergyRows rows = {p.w.data, hwio ? 1 : c * K, hwio ? n : K, hwio ? c * n : 1, c, r, K,
                                                  p.depthwise, p.pointwise, tap2.data(), p.channel_scale,
                                                  got[0].data(), got[1].data(), got[2].data()};
        variants.tables[v]->pair_energy(rows, 0, n, scratch.data());
        if (v == 0) {
          for (int q = 0; q < 3; ++q) want[q] = got[q];
          continue;
        }
        bool same = true;
        for (int q = 0; q < 3; ++q) same = same && std::memcmp(got[q].data(), want[q].data(), size_t(n) * sizeof(double)) == 0;
        report(same, std::string("pair_energy ") + variants.tables[v]->name + " equals ref bit for bit " + s.text() +
                         (hwio ? " HWIO" : " OIHW"));
      }
    }
}

void test_dac_pair_energy_bad_args() {
  PairEnergyCase tc({8, 3, 3, 3}, 2, 5);
  report(dac::dac_pair_energy(tc.params(false)).ok, "dac_pair_energy good arguments pass");
  struct Bad {
    const char* name;
    const char* needle;
    void (*edit)(dac::DacPairEnergyParams&);
  };
  const Bad cases[] = {
      {"n=0", "dimension n", [](dac::DacPairEnergyParams& p) { p.w.n = 0; }},
      {"layout", "layout", [](dac::DacPairEnergyParams& p) { p.w.layout = static_cast<dac::WeightLayout>(5); }},
      {"short weights", "weights length", [](dac::DacPairEnergyParams& p) { p.w.length -= 1; }},
      {"null weights", "data is null", [](dac::DacPairEnergyParams& p) { p.w.data = nullptr; }},
      {"rank 0", "rank 0", [](dac::DacPairEnergyParams& p) { p.rank = 0; }},
      {"depthwise length", "depthwise length", [](dac::DacPairEnergyParams& p) { p.depthwise_length += 1; }},
      {"depthwise null", "depthwise buffer is null", [](dac::DacPairEnergyParams& p) { p.depthwise = nullptr; }},
      {"pointwise length", "pointwise length", [](dac::DacPairEnergyParams& p) { p.pointwise_length -= 1; }},
      {"tap_scale length", "tap_scale length", [](dac::DacPairEnergyParams& p) { p.tap_scale_length = 3; }},
      {"channel_scale null", "channel_scale buffer is null", [](dac::DacPairEnergyParams& p) { p.channel_scale = nullptr; }},
      {"energy length", "energy length", [](dac::DacPairEnergyParams& p) { p.energy_length = 7; }},
      {"approx_energy null", "approx_energy buffer is null", [](dac::DacPairEnergyParams& p) { p.approx_energy = nullptr; }},
      {"residual length", "residual length", [](dac::DacPairEnergyParams& p) { p.residual_length = 9; }},
  };
  for (const Bad& b : cases) {
    dac::DacPairEnergyParams p = tc.params(false);
    b.edit(p);
    const dac::Status st = dac::dac_pair_energy(p);
    report(fails_with(st, b.needle) && st.message.rfind("dac_pair_energy: ", 0) == 0,
           std::string("dac_pair_energy rejects ") + b.name, st.message);
  }
}

}  // namespace

int main() {
  test_kernel_variants();
  test_kernel_jacobi_transpose();
  test_small_eigen();
  test_tridiagonal();
  test_dac_shapes();
  test_dac_full_rank();
  test_dac_degenerate();
  test_dac_singular_optional();
  test_dac_batch();
  test_dac_variants();
  test_dac_bad_args();
  test_baselines();
  test_baselines_threaded();
  test_baselines_low_rank();
  test_baselines_degenerate();
  test_baselines_bad_args();
  test_dac_pair_energy();
  test_pair_energy_variants();
  test_dac_pair_energy_bad_args();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
