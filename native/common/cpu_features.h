// Runtime CPU feature detection. Compiled without any ISA flags so that
// calling it is safe on every CPU; kernels are picked from its answer once.
#pragma once

namespace dac {

struct CpuFeatures {
  bool sse41 = false;
  bool avx2_fma = false;   // AVX2 and FMA3 together (Haswell+)
  bool avx512f = false;    // AVX-512 Foundation, with OS support for ZMM state
  bool avx512 = false;     // F, BW, DQ and VL: what the *_avx512.cc files are compiled for
  bool neon = false;       // always true on aarch64
  bool wasm_simd = false;  // compiled with -msimd128
};

const CpuFeatures& cpu_features();

}  // namespace dac
