// Packed GEMM and fused symmetric product for AVX-512: an 8 x 24 tile
// (24 accumulators of 8 doubles, 3 loads of B, 8 broadcasts of A, of 32
// registers).
#define DAC_GEMM_VEC_DOUBLES 8
#define DAC_GEMM_MR 8
#define DAC_GEMM_NV 3
#include "gemm_kernels_impl.h"

namespace dac {
namespace detail {
const GemmKernels kGemmKernelsAvx512 = {"avx512", kMr, kNr, &block, &symv_lower};
}  // namespace detail
}  // namespace dac
