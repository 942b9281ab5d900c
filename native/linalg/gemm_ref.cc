// The naive reference for the packed GEMM and the fused symmetric product:
// plain loops over the same packed layout, what the ISA variants are tested
// against.
#include "gemm_kernels.h"

namespace dac {
namespace detail {
namespace {

constexpr int kMr = 4, kNr = 4;

void block_ref(int64_t mc, int64_t nc, int64_t kc, const double* pa, const double* pb, double alpha, double* c,
               int64_t ldc, int triangle, int64_t diag) {
  for (int64_t i0 = 0; i0 < mc; i0 += kMr) {
    for (int64_t j0 = 0; j0 < nc; j0 += kNr) {
      if (triangle > 0 && j0 + diag > i0 + kMr - 1) continue;
      if (triangle < 0 && i0 > j0 + diag + kNr - 1) continue;
      const double* a = pa + i0 * kc;
      const double* b = pb + j0 * kc;
      for (int64_t i = 0; i < kMr && i0 + i < mc; ++i) {
        for (int64_t j = 0; j < kNr && j0 + j < nc; ++j) {
          if ((triangle > 0 && j0 + j + diag > i0 + i) || (triangle < 0 && j0 + j + diag < i0 + i)) continue;
          double s = 0;
          for (int64_t p = 0; p < kc; ++p) s += a[p * kMr + i] * b[p * kNr + j];
          c[(i0 + i) * ldc + j0 + j] += alpha * s;
        }
      }
    }
  }
}

void symv_lower_ref(int64_t n, const double* a, int64_t lda, const double* x, double* y) {
  for (int64_t j = 0; j < n; ++j) {
    const double* col = a + j * lda;
    double dot = 0;
    for (int64_t i = j + 1; i < n; ++i) {
      y[i] += col[i] * x[j];
      dot += col[i] * x[i];
    }
    y[j] += col[j] * x[j] + dot;
  }
}

}  // namespace

const GemmKernels kGemmKernelsRef = {"ref", kMr, kNr, &block_ref, &symv_lower_ref};

}  // namespace detail
}  // namespace dac
