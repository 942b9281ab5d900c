#include "../common/cpu_features.h"
#include "dac_kernels.h"

namespace dac {
namespace detail {

int dac_kernel_variants(const DacKernels** out, int max) {
  int count = 0;
  auto add = [&](const DacKernels* k) {
    if (count < max) out[count] = k;
    ++count;
  };
  add(&kDacKernelsRef);
#if defined(DAC_HAVE_X86_VARIANTS)
  const CpuFeatures& f = cpu_features();
  if (f.avx2_fma) add(&kDacKernelsAvx2);
#endif
#if defined(__wasm_simd128__)
  add(&kDacKernelsWasmSimd);  // SIMD is a property of the whole module
#endif
  return count < max ? count : max;
}

const DacKernels& dac_kernels() {
  static const DacKernels* best = [] {
    const DacKernels* all[8];
    const int n = dac_kernel_variants(all, 8);
    return all[n - 1];
  }();
  return *best;
}

}  // namespace detail
}  // namespace dac
