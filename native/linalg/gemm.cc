#include "gemm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../common/parallel.h"

namespace dac {
namespace detail {
namespace {

// Blocking (in doubles): a kc x nr panel of B (48 KiB at nr = 24) stays in
// L1 while kMc x kKc of packed A (288 KiB) sits in L2; kKc x kNc of packed B
// (3 MiB) is shared by every A block from L3.
constexpr int64_t kKc = 256;
constexpr int64_t kMc = 144;  // a multiple of every variant's mr (4, 6, 8)
constexpr int64_t kNc = 1536;  // a multiple of every variant's nr (4, 8, 24)

// Rows [i0, i0 + mc) and steps [p0, p0 + kc) of A as panels of mr rows,
// each kc x mr, zero-padded.
void pack_a(const Strided& a, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int mr, double* out) {
  for (int64_t ip = 0; ip < mc; ip += mr) {
    const int64_t rows = std::min<int64_t>(mr, mc - ip);
    for (int64_t p = 0; p < kc; ++p) {
      const double* src = a.data + (i0 + ip) * a.rs + (p0 + p) * a.cs;
      for (int64_t r = 0; r < rows; ++r) out[r] = src[r * a.rs];
      for (int64_t r = rows; r < mr; ++r) out[r] = 0;
      out += mr;
    }
  }
}

// Steps [p0, p0 + kc) and columns [j0, j0 + nc) of B as panels of nr
// columns, each kc x nr, zero-padded: pack_a of B's transpose.
void pack_b(const Strided& b, int64_t p0, int64_t kc, int64_t j0, int64_t nc, int nr, double* out) {
  pack_a(Strided{b.data, b.cs, b.rs}, j0, nc, p0, kc, nr, out);
}

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

// One worker's share: rows [r0, r1) by columns [c0, c1) of C.
void gemm_serial(const GemmKernels& kern, int64_t r0, int64_t r1, int64_t c0, int64_t c1, int64_t k, const Strided& a,
                 const Strided& b, double alpha, double* c, int64_t ldc, int triangle) {
  if (r0 >= r1 || c0 >= c1) return;
  std::vector<double> pa(size_t(round_up(std::min(kMc, r1 - r0), kern.mr) * std::min(kKc, k)));
  std::vector<double> pb(size_t(round_up(std::min(kNc, c1 - c0), kern.nr) * std::min(kKc, k)));
  for (int64_t jc = c0; jc < c1; jc += kNc) {
    const int64_t nc = std::min(kNc, c1 - jc);
    for (int64_t pc = 0; pc < k; pc += kKc) {
      const int64_t kc = std::min(kKc, k - pc);
      bool packed_b = false;
      for (int64_t ic = r0; ic < r1; ic += kMc) {
        const int64_t mc = std::min(kMc, r1 - ic);
        if (triangle > 0 && jc > ic + mc - 1) continue;
        if (triangle < 0 && ic > jc + nc - 1) continue;
        if (!packed_b) pack_b(b, pc, kc, jc, nc, kern.nr, pb.data());
        packed_b = true;
        pack_a(a, ic, mc, pc, kc, kern.mr, pa.data());
        kern.block(mc, nc, kc, pa.data(), pb.data(), alpha, c + ic * ldc + jc, ldc, triangle, jc - ic);
      }
    }
  }
}

}  // namespace

void gemm_accumulate(const GemmKernels& kern, int64_t m, int64_t n, int64_t k, Strided a, Strided b, double alpha,
                     double* c, int64_t ldc, int triangle, int threads) {
  if (m == 0 || n == 0 || k == 0) return;
  // Below about a million multiply-adds a worker costs more than it saves.
  const double work = double(m) * double(n) * double(k) * (triangle ? 0.5 : 1.0);
  const int workers = int(std::max<int64_t>(1, std::min<int64_t>({threads, int64_t(work / 1e6) + 1, 64})));
  // Split boundary t of `workers`: triangles are split by area (row i of the
  // lower triangle has i + 1 entries), rectangles evenly along their longer side.
  const bool by_rows = triangle != 0 || m >= n;
  const int64_t extent = by_rows ? m : n, unit = by_rows ? kern.mr : kern.nr;
  auto bound = [&](int t) -> int64_t {
    if (t >= workers) return extent;
    double f = double(t) / workers;
    if (triangle > 0) f = std::sqrt(f);
    if (triangle < 0) f = 1 - std::sqrt(1 - f);
    return std::min(extent, round_up(int64_t(f * double(extent)), unit));
  };
  parallel_for(workers, workers, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      const int64_t lo = bound(int(t)), hi = bound(int(t) + 1);
      if (!by_rows) gemm_serial(kern, 0, m, lo, hi, k, a, b, alpha, c, ldc, triangle);
      else if (triangle > 0) gemm_serial(kern, lo, hi, 0, std::min(hi, n), k, a, b, alpha, c, ldc, triangle);
      else if (triangle < 0) gemm_serial(kern, lo, hi, std::min(lo, n), n, k, a, b, alpha, c, ldc, triangle);
      else gemm_serial(kern, lo, hi, 0, n, k, a, b, alpha, c, ldc, triangle);
    }
  });
}

const Variants<GemmKernels>& gemm_kernel_variants() {
  static const Variants<GemmKernels> v = detect_variants<GemmKernels>(
      {&kGemmKernelsRef, nullptr, DAC_IF_X86(&kGemmKernelsAvx2), DAC_IF_X86(&kGemmKernelsAvx512), nullptr, nullptr});
  return v;
}

const GemmKernels* fast_gemm_kernels() {
  const Variants<GemmKernels>& v = gemm_kernel_variants();
  return v.count > 1 ? v.tables[v.count - 1] : nullptr;
}

}  // namespace detail
}  // namespace dac
