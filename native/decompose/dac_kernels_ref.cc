// Portable DAC kernels: two doubles per vector (SSE2, NEON, wasm simd128).
#define DAC_VEC_DOUBLES 2
#include "dac_kernels_impl.h"

namespace dac {
namespace detail {
const DacKernels kDacKernelsRef = {"ref", &gram, &project, &transpose_tiles, kJ, &jacobi_eigen, &pair_energy<false>};
}  // namespace detail
}  // namespace dac
