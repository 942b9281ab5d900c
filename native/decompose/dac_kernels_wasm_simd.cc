// DAC kernels for the WASM build: the portable ones (two doubles per
// simd128 vector) with a simd128 transpose for gathering OIHW channels.
#define DAC_VEC_DOUBLES 2
#include "dac_kernels_impl.h"

namespace dac {
namespace detail {
namespace {

// WASM has no prefetch and no wide shuffles, but 4 x 4 blocks through
// simd128 shuffles still beat moving floats one by one.
void transpose_wasm(const float* src, int64_t src_ld, int64_t rows, int64_t cols, float* dst,
                    int64_t dst_ld) {
  transpose_blocked<4>(src, src_ld, rows, cols, dst, dst_ld, [](int64_t) {}, [&](const float* s, float* d) {
    const v128_t r0 = wasm_v128_load(s), r1 = wasm_v128_load(s + src_ld);
    const v128_t r2 = wasm_v128_load(s + 2 * src_ld), r3 = wasm_v128_load(s + 3 * src_ld);
    const v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
    const v128_t t2 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
    wasm_v128_store(d, wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5));
    wasm_v128_store(d + dst_ld, wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7));
    wasm_v128_store(d + 2 * dst_ld, wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5));
    wasm_v128_store(d + 3 * dst_ld, wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7));
  });
}

}  // namespace

const DacKernels kDacKernelsWasmSimd = {"wasm_simd", &gram, &project, &transpose_wasm, kJ, &jacobi_eigen, &pair_energy<true>};
}  // namespace detail
}  // namespace dac
