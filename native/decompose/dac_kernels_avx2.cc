// DAC kernels for AVX2 + FMA: four doubles per vector.
#define DAC_VEC_DOUBLES 4
#include "dac_kernels_impl.h"

namespace dac {
namespace detail {
const DacKernels kDacKernelsAvx2 = {"avx2", &gram, &project};
}  // namespace detail
}  // namespace dac
