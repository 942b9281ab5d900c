// The packed, cache-blocked, threaded double-precision product behind gemm()
// and the tridiagonal reduction's trailing update (tridiagonal.cc), on any of
// the kernel variants (gemm_kernels.h).
#pragma once
#include <cstdint>

#include "gemm_kernels.h"

namespace dac {
namespace detail {

// A matrix operand: element (i, j) at data[i * rs + j * cs], so transposes
// and column-major storage need no copy.
struct Strided {
  const double* data;
  int64_t rs, cs;
};

// C += alpha * A B with A m x k, B k x n, C m x n row-major (ldc apart).
// triangle +1: only C's lower triangle (j <= i) is computed and written,
// -1: only the upper (j >= i), 0: all of it. Rows (or columns, when wider)
// are split over `threads` workers, each packing its own panels; the result
// is the same, bit for bit, for any number of them.
void gemm_accumulate(const GemmKernels& kernels, int64_t m, int64_t n, int64_t k, Strided a, Strided b,
                     double alpha, double* c, int64_t ldc, int triangle, int threads);

// The variant gemm() and tridiagonalize() use, or null where this build has
// no ISA variant (they then use Eigen's products).
const GemmKernels* fast_gemm_kernels();

}  // namespace detail
}  // namespace dac
