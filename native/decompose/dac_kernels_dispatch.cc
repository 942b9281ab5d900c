#include "dac_kernels.h"
#include "decompose.h"

namespace dac {
namespace detail {

const Variants<DacKernels>& dac_kernel_variants() {
  static const Variants<DacKernels> v = detect_variants<DacKernels>(
      {&kDacKernelsRef, nullptr, DAC_IF_X86(&kDacKernelsAvx2), nullptr, nullptr, DAC_IF_WASM_SIMD(&kDacKernelsWasmSimd)});
  return v;
}

Status find_dac_kernels(const char* variant, const DacKernels** out) {
  const Variants<DacKernels>& v = dac_kernel_variants();
  int index = 0;
  Status s = v.find("DAC kernels", variant, &index);
  *out = v.tables[index];
  return s;
}

const DacKernels& dac_kernels() { return *dac_kernel_variants().tables[dac_kernel_variants().count - 1]; }

}  // namespace detail

const char* decompose_dac_variants() { return detail::dac_kernel_variants().joined.c_str(); }

}  // namespace dac
