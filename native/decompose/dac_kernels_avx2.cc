// DAC kernels for AVX2 + FMA: four doubles per vector, and an 8 x 8
// register transpose for gathering OIHW channels.
#define DAC_VEC_DOUBLES 4
#include "dac_kernels_impl.h"

namespace dac {
namespace detail {
namespace {

// Rows [o0, o0+8) x columns [q0, q0+8) through registers: unpack pairs,
// then quads, then swap 128-bit halves.
inline void transpose8x8(const float* src, int64_t src_ld, float* dst, int64_t dst_ld) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * src_ld);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * dst_ld, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * dst_ld, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

void transpose_avx2(const float* src, int64_t src_ld, int64_t rows, int64_t cols, float* dst,
                    int64_t dst_ld) {
  // A block's row segments are short and a whole row pitch apart, too short
  // for the hardware to learn: fetch the next band's lines ahead.
  auto prefetch_next = [&](int64_t o0) {
    if (o0 + 16 > rows) return;
    for (int i = 8; i < 16; ++i)
      for (int64_t q = 0; q < cols; q += 16)
        _mm_prefetch(reinterpret_cast<const char*>(src + (o0 + i) * src_ld + q), _MM_HINT_T0);
  };
  transpose_blocked<8>(src, src_ld, rows, cols, dst, dst_ld, prefetch_next,
                       [&](const float* s, float* d) { transpose8x8(s, src_ld, d, dst_ld); });
}

}  // namespace

const DacKernels kDacKernelsAvx2 = {"avx2", &gram, &project, &transpose_avx2, kJ, &jacobi_eigen, &pair_energy<true>};
}  // namespace detail
}  // namespace dac
