// The double-precision hot loops of the planner's linear algebra, built once
// per ISA (gemm_ref.cc naive, gemm_avx2.cc, gemm_avx512.cc from
// gemm_kernels_impl.h) and picked at run time, so the portable build stays free
// of ISA flags. The portable driver (gemm.cc) packs, blocks and threads; these
// only multiply packed panels and run the fused symmetric product.
//
// Builds without an x86 variant (NEON, WASM) keep Eigen's vectorised products
// in gemm(), tridiagonalize() and the truncated SVD (decompose_svd.cc): the
// naive reference would be slower there.
#pragma once
#include <cstdint>

#include "../common/status.h"
#include "../common/variants.h"

namespace dac {
namespace detail {

struct GemmKernels {
  const char* name;
  // Micro-tile: mr rows by nr columns of C per inner step; packed panels
  // are padded with zeros to these multiples.
  int mr, nr;
  // C[i][j] += alpha * sum_p A[i][p] B[p][j] over an mc x nc block (C
  // row-major, ldc apart) from packed panels: A as ceil(mc/mr) panels of
  // kc x mr (mr values per p), B as ceil(nc/nr) panels of kc x nr. With
  // `triangle` +1 only the lower triangle (global column <= global row) is
  // computed and written, with -1 only the upper one; `diag` is the block's
  // global first column minus its first row. Each entry's arithmetic is the
  // same wherever the block and tile boundaries fall.
  void (*block)(int64_t mc, int64_t nc, int64_t kc, const double* pa, const double* pb, double alpha,
                double* c, int64_t ldc, int triangle, int64_t diag);
  // y += A x for the symmetric n x n matrix A of which only the lower
  // triangle is read (column-major, A(i, j) = a[j * lda + i], i >= j):
  // column j adds A(j:, j) x[j] to y(j:) and A(j+1:, j) . x(j+1:) to y[j],
  // reading each element once.
  void (*symv_lower)(int64_t n, const double* a, int64_t lda, const double* x, double* y);
};

// Declared for every build, so the definitions have external linkage in
// whichever target compiles them (gyp builds the ISA files as separate
// libraries without the dispatcher's defines).
extern const GemmKernels kGemmKernelsRef;
extern const GemmKernels kGemmKernelsAvx2;
extern const GemmKernels kGemmKernelsAvx512;

// Every variant this build has and this CPU runs, "ref" first, the best last.
const Variants<GemmKernels>& gemm_kernel_variants();

}  // namespace detail
}  // namespace dac
