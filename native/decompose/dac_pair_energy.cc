// dac_pair_energy (decompose.h): the energies and the residual of a DAC pair
// against its conv in one pass, output channels over threads; the loops are
// the DAC kernels' pair_energy (dac_kernels_impl.h), so the best variant for
// this CPU runs them. Depthwise ([c*r][K], small) stays in cache while output
// channels stream the weights.
#include <algorithm>
#include <string>
#include <vector>

#include "../common/parallel.h"
#include "dac_kernels.h"
#include "decompose_internal.h"

namespace dac {

namespace {

constexpr const char* kFn = "dac_pair_energy";

Status check_buffer(const char* field, const char* unit, const void* data, int64_t length, int64_t need) {
  if (data == nullptr)
    return Status::Error(std::string(kFn) + ": " + field + " buffer is null (needs " + std::to_string(need) + " " +
                         unit + ")");
  if (length != need)
    return Status::Error(std::string(kFn) + ": " + field + " length " + std::to_string(length) +
                         " does not match the required " + std::to_string(need));
  return Status::Ok();
}

Status check(const DacPairEnergyParams& p) {
  int64_t total = 0;
  Status s = detail::check_weights(kFn, p.w, &total);
  if (!s.ok) return s;
  if (p.rank < 1) return Status::Error(std::string(kFn) + ": rank " + std::to_string(p.rank) + " must be >= 1");
  const int64_t k = int64_t(p.w.kh) * p.w.kw;
  int64_t mid = 0, dw = 0, pw = 0;
  if (!detail::mul_checked(p.w.c, p.rank, &mid) || !detail::mul_checked(mid, k, &dw) ||
      !detail::mul_checked(mid, p.w.n, &pw))
    return Status::Error(std::string(kFn) + ": rank " + std::to_string(p.rank) +
                         " makes factors with more elements than fit in int64");
  const struct {
    const char* field;
    const char* unit;
    const void* data;
    int64_t length, need;
  } buffers[] = {
      {"depthwise", "floats", p.depthwise, p.depthwise_length, dw},
      {"pointwise", "floats", p.pointwise, p.pointwise_length, pw},
      {"tap_scale", "doubles", p.tap_scale, p.tap_scale_length, k},
      {"channel_scale", "doubles", p.channel_scale, p.channel_scale_length, p.w.c},
      {"energy", "doubles", p.energy, p.energy_length, p.w.n},
      {"approx_energy", "doubles", p.approx_energy, p.approx_energy_length, p.w.n},
      {"residual", "doubles", p.residual, p.residual_length, p.w.n},
  };
  for (const auto& b : buffers) {
    s = check_buffer(b.field, b.unit, b.data, b.length, b.need);
    if (!s.ok) return s;
  }
  return Status::Ok();
}

}  // namespace

Status dac_pair_energy(const DacPairEnergyParams& p) {
  Status s = check(p);
  if (!s.ok) return s;
  return detail::guarded(std::string(kFn) + ": ", [&]() {
    const int64_t n = p.w.n, c = p.w.c, K = int64_t(p.w.kh) * p.w.kw;
    std::vector<double> tap2(static_cast<size_t>(K));
    for (int64_t t = 0; t < K; ++t) tap2[size_t(t)] = p.tap_scale[t] * p.tap_scale[t];
    // Element (j, i, t) at j*sj + i*si + t*st: OIHW [n][c][K], HWIO [K][c][n].
    const bool oihw = p.w.layout == WeightLayout::OIHW;
    const detail::PairEnergyRows rows = {p.w.data, oihw ? c * K : 1, oihw ? K : n, oihw ? 1 : c * n, c, p.rank, K,
                                         p.depthwise, p.pointwise, tap2.data(), p.channel_scale,
                                         p.energy, p.approx_energy, p.residual};
    const detail::DacKernels& kernels = detail::dac_kernels();
    // One scratch per worker, allocated here: nothing may throw inside a worker thread.
    const int64_t workers = std::min<int64_t>(std::max(p.threads, 1), n);
    std::vector<double> scratch(static_cast<size_t>(workers * 2 * K));
    parallel_for(workers, int(workers), [&](int64_t w0, int64_t w1) {
      for (int64_t w = w0; w < w1; ++w)
        kernels.pair_energy(rows, n * w / workers, n * (w + 1) / workers, scratch.data() + w * 2 * K);
    });
    return Status::Ok();
  });
}

}  // namespace dac
