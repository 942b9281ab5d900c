// The DAC core's hot loops (Gram, projection, block transpose, batched
// eigensolver, a pair's energies), built once per ISA (dac_kernels_ref.cc, dac_kernels_avx2.cc,
// dac_kernels_wasm_simd.cc from dac_kernels_impl.h) and picked at run time,
// so the portable build stays free of ISA flags. No AVX-512 variant: on the machine
// this was tuned on (Zen 4, 512-bit ops double-pumped) it was slower than
// AVX2 for both kernels (wider lanes add horizontal sums and lane stores and
// no FMA throughput).
#pragma once
#include <cstdint>

#include "../common/status.h"
#include "../common/variants.h"

namespace dac {
namespace detail {

// dac_pair_energy's view of one call (decompose.h): element (j, i, t) of the
// weights at w[j*sj + i*si + t*st], the factors float32 as stored, tap2 the
// squared tap scales, and the three per-output sums written at [j].
struct PairEnergyRows {
  const float* w;
  int64_t sj, si, st;
  int64_t c, r, k;
  const float* depthwise;  // [c*r][k]
  const float* pointwise;  // [n][c*r]
  const double* tap2;      // [k]
  const double* channel_scale;  // [c]
  double* energy;
  double* approx_energy;
  double* residual;
};

struct DacKernels {
  const char* name;
  // Lower triangle of G = X X^T (k x k, column-major double), X given as k
  // rows of n floats `ld` apart; sums in double.
  void (*gram)(const float* X, int64_t ld, int64_t k, int64_t n, double* G);
  // proj[o * pitch + j] = sum_a X[a][o] * v[j * k + a] for j < r, o < n,
  // summed in double and rounded once.
  void (*project)(const float* X, int64_t ld, int64_t k, int64_t n, const double* v, int64_t r,
                  float* proj, int64_t pitch);
  // dst[q * dst_ld + o] = src[o * src_ld + q] for o < rows, q < cols.
  void (*transpose)(const float* src, int64_t src_ld, int64_t rows, int64_t cols, float* dst,
                    int64_t dst_ld);
  // Matrices jacobi_eigen takes at once.
  int lanes;
  // Eigenvalues (descending, equal ones in index order) and eigenvectors
  // (column j of vectors[l], k x k column-major) of count <= lanes symmetric
  // k x k matrices G[l] (column-major, both triangles), k <= kJacobiMaxK.
  // Returns a bitmask of the matrices that converged; the rest must be
  // solved another way.
  unsigned (*jacobi_eigen)(const double* const* G, int count, int64_t k, double* const* values,
                           double* const* vectors);
  // dac_pair_energy's sums for output channels [j0, j1), in double, every
  // variant bit for bit the same as ref (each output channel's own order of
  // operations, no fused multiply-adds): the variance correction's gains and
  // report.json's errors must not depend on the CPU. `scratch` holds 2k doubles.
  void (*pair_energy)(const PairEnergyRows& p, int64_t j0, int64_t j1, double* scratch);
};

// Largest k the batched Jacobi solver takes (a 4 x 4 kernel); larger Gram
// matrices go to the QR solver, one at a time.
constexpr int64_t kJacobiMaxK = 16;
// Cyclic Jacobi converges quadratically; 9 x 9 Gram matrices take 5 to 7
// sweeps. A lane still coupled after this many goes to the QR solver.
constexpr int kJacobiMaxSweeps = 30;

// Declared for every build, so the definitions have external linkage in
// whichever target compiles them (gyp builds the ISA files as separate
// libraries without the dispatcher's defines).
extern const DacKernels kDacKernelsRef;
extern const DacKernels kDacKernelsAvx2;
extern const DacKernels kDacKernelsWasmSimd;

// Every variant this build has and this CPU runs, "ref" first and the best
// last (the dispatcher every kernel family shares, common/variants.h).
const Variants<DacKernels>& dac_kernel_variants();
// The variant named `variant`, or the best for null; an error naming the
// available ones for an unknown name.
Status find_dac_kernels(const char* variant, const DacKernels** out);
// The best of them.
const DacKernels& dac_kernels();

}  // namespace detail
}  // namespace dac
