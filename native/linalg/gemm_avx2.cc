// Packed GEMM and fused symmetric product for AVX2 + FMA: a 6 x 8 tile
// (12 accumulators of 4 doubles, 2 loads of B, 6 broadcasts of A).
#define DAC_GEMM_VEC_DOUBLES 4
#define DAC_GEMM_MR 6
#define DAC_GEMM_NV 2
#include "gemm_kernels_impl.h"

namespace dac {
namespace detail {
const GemmKernels kGemmKernelsAvx2 = {"avx2", kMr, kNr, &block, &symv_lower};
}  // namespace detail
}  // namespace dac
