// DAC: a truncated SVD of every input channel's n x k slice M (k = kh*kw),
// through its k x k Gram matrix M^T M summed in double: the top eigenvectors
// are the depthwise filters and M v_j = sigma_j u_j the pointwise columns, so
// the n-long side is only ever streamed (twice). An exact SVD takes over
// where squaring would cost accuracy (see kGram* in decompose_internal.h) and
// when k > n. Channels go in blocks (OIHW transposed once per block), blocks
// over threads.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "../common/parallel.h"
#include "dac_kernels.h"
#include "decompose_internal.h"

namespace dac {

using detail::TruncatedSvd;
using Eigen::MatrixXd;

namespace {

// The first error raised by any worker, ordered by (layer, channel).
class FirstError {
 public:
  void record(int64_t layer, int64_t channel, const std::string& msg) {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_ && (layer > layer_ || (layer == layer_ && channel >= channel_))) return;
    failed_ = true;
    layer_ = layer;
    channel_ = channel;
    msg_ = msg;
  }
  bool failed() const { return failed_; }
  const std::string& message() const { return msg_; }

 private:
  std::mutex mu_;
  bool failed_ = false;
  int64_t layer_ = 0, channel_ = 0;
  std::string msg_;
};

Status check_dac(const char* fn, const DacParams& p) {
  int64_t total = 0;
  Status s = detail::check_weights(fn, p.w, &total);
  if (!s.ok) return s;
  const detail::DacKernels* kernels = nullptr;
  s = detail::find_dac_kernels(p.variant, &kernels);
  if (!s.ok) return Status::Error(std::string(fn) + ": " + s.message);
  const int64_t k = int64_t(p.w.kh) * p.w.kw;
  const int64_t m = std::min<int64_t>(p.w.n, k);
  if (p.rank < 1 || p.rank > m)
    return Status::Error(std::string(fn) + ": rank " + std::to_string(p.rank) +
                         " is out of range [1, " + std::to_string(m) +
                         "] (min(n, kh*kw) for n=" + std::to_string(p.w.n) +
                         ", kh*kw=" + std::to_string(k) + ")");
  // rank <= min(n, k), so every product below is bounded by n*c*kh*kw.
  const int64_t c = p.w.c, r = p.rank;
  s = detail::check_output(fn, "depthwise", p.depthwise, p.depthwise_length, c * r * k, false);
  if (!s.ok) return s;
  s = detail::check_output(fn, "pointwise", p.pointwise, p.pointwise_length, int64_t(p.w.n) * c * r, false);
  if (!s.ok) return s;
  return detail::check_output(fn, "singular", p.singular, p.singular_length, c * m, true);
}

// What the Gram pass found for one channel of a block.
enum class Route { Gram, Zero, Exact };

// Per-worker scratch, reused across channels (and layers in a batch).
struct DacScratch {
  std::vector<float> xt;    // a block of OIHW channels, each transposed to k rows of n
  std::vector<float> proj;  // the block's pointwise rows, [o][channel][j]
  std::vector<double> grams;  // the block's k x k Gram matrices
  std::vector<double> vr, values, vectors, copy, work;
  std::vector<Route> routes;
  MatrixXd slice;
  TruncatedSvd svd;
  const detail::DacKernels* kernels = &detail::dac_kernels();
};

// Channels handled together: their OIHW taps are contiguous within each
// output row, and so are their pointwise outputs, so one pass over the rows
// serves the whole block instead of one strided pass per channel.
int64_t block_channels(const DacParams& p) {
  const int64_t per = int64_t(p.w.n) * p.w.kh * p.w.kw * 4;
  return std::max<int64_t>(1, std::min<int64_t>(32, (256 << 10) / per));
}

// Row pitch for n floats in scratch: whole cache lines, an odd number of them,
// so that walking down a column (a transpose) does not keep hitting the same
// few L1 sets as a power-of-two pitch would.
int64_t scratch_pitch(int64_t n) {
  int64_t lines = (n + 15) / 16;
  if (lines % 2 == 0) ++lines;
  return lines * 16;
}

// Transposes channels [b, b+count) of an OIHW tensor to k rows of n each
// (rows `ld` = scratch_pitch(n) apart).
void gather_block(const DacParams& p, int64_t b, int64_t count, int64_t ld, DacScratch& ws) {
  const int64_t n = p.w.n, c = p.w.c, k = int64_t(p.w.kh) * p.w.kw;
  ws.xt.resize(size_t(count * k * ld));
  ws.kernels->transpose(p.w.data + b * k, c * k, n, count * k, ws.xt.data(), ld);
}

void write_singular(const DacParams& p, int64_t i, const double* sigma, int64_t m) {
  if (p.singular == nullptr) return;
  for (int64_t j = 0; j < m; ++j) p.singular[i * m + j] = float(sigma[j]);
}

// Exact path: the generic truncated SVD on a dense double copy of the slice.
Status channel_exact(const DacParams& p, int64_t i, const float* X, int64_t ld,
                     float* proj, int64_t pitch, DacScratch& ws) {
  const int64_t n = p.w.n, k = int64_t(p.w.kh) * p.w.kw, r = p.rank;
  ws.slice.resize(n, k);
  for (int64_t a = 0; a < k; ++a)
    ws.slice.col(a) = Eigen::Map<const Eigen::VectorXf>(X + a * ld, n).cast<double>();
  Status s = ws.svd.compute(ws.slice, p.rank, true, 1);
  if (!s.ok) return s;
  float* dw = p.depthwise + i * r * k;
  for (int64_t j = 0; j < r; ++j) {
    for (int64_t a = 0; a < k; ++a) dw[j * k + a] = float(ws.svd.first(a, j));
    for (int64_t o = 0; o < n; ++o) proj[o * pitch + j] = float(ws.svd.second(o, j));
  }
  write_singular(p, i, ws.svd.sigma.data(), ws.svd.sigma.size());
  return Status::Ok();
}

// A channel's slice: k rows of n floats `ld` apart.
struct Slice {
  const float* X;
  int64_t ld;
};

Slice slice_of(const DacParams& p, int64_t i, int64_t t, int64_t pitch, bool oihw, const DacScratch& ws) {
  const int64_t n = p.w.n, k = int64_t(p.w.kh) * p.w.kw;
  // HWIO already stores a channel as k rows of n (tap-major, output-minor).
  if (oihw) return {ws.xt.data() + t * k * pitch, pitch};
  return {p.w.data + i * n, int64_t(p.w.c) * n};
}

// The k x k Gram matrix of slice t (both triangles) into ws.grams; with
// k <= n its eigenvectors are the depthwise filters. Zero channels and k > n
// need no eigenproblem.
Status gram_of(const DacParams& p, Slice x, int64_t t, DacScratch& ws, Route* route) {
  const int64_t n = p.w.n, k = int64_t(p.w.kh) * p.w.kw;
  if (k > n) {
    *route = Route::Exact;
    return Status::Ok();
  }
  double* g = ws.grams.data() + t * k * k;
  ws.kernels->gram(x.X, x.ld, k, n, g);
  double trace = 0;
  for (int64_t a = 0; a < k; ++a) trace += g[a * k + a];
  if (!std::isfinite(trace)) return Status::Error("weights contain NaN or infinity");
  // The kernel fills the lower triangle; the solvers want both.
  for (int64_t col = 0; col < k; ++col)
    for (int64_t row = col + 1; row < k; ++row) g[row * k + col] = g[col * k + row];
  *route = trace == 0 ? Route::Zero : Route::Gram;
  return Status::Ok();
}

// Eigen-decomposes the Gram matrices of the block's Route::Gram channels,
// `lanes` at a time; a matrix neither solver settles goes the exact way.
void solve_grams(int64_t k, int64_t count, DacScratch& ws) {
  ws.values.resize(size_t(count * k));
  ws.vectors.resize(size_t(count * k * k));
  const int lanes = ws.kernels->lanes;
  const double* G[8];
  double* values[8];
  double* vectors[8];
  int64_t which[8];
  int used = 0;
  auto flush = [&]() {
    const unsigned ok = k <= detail::kJacobiMaxK ? ws.kernels->jacobi_eigen(G, used, k, values, vectors) : 0u;
    for (int l = 0; l < used; ++l) {
      if (ok & (1u << l)) continue;
      ws.copy.assign(G[l], G[l] + k * k);
      ws.work.resize(size_t(3 * k));
      if (!detail::small_symmetric_eigen(ws.copy.data(), k, values[l], vectors[l], ws.work.data()))
        ws.routes[size_t(which[l])] = Route::Exact;
    }
    used = 0;
  };
  for (int64_t t = 0; t < count; ++t) {
    if (ws.routes[size_t(t)] != Route::Gram) continue;
    G[used] = ws.grams.data() + t * k * k;
    values[used] = ws.values.data() + t * k;
    vectors[used] = ws.vectors.data() + t * k * k;
    which[used] = t;
    if (++used == lanes) flush();
  }
  if (used > 0) flush();
}

// Channel i (slice t of its block) from its eigen-decomposition: the top r
// eigenvectors are the depthwise filters, and each pointwise column is
// M v_j = sigma_j u_j, projected directly into proj ([o][j], rows `pitch`
// apart). Falls to the exact SVD where the Gram route would lose precision.
Status finish_channel(const DacParams& p, int64_t i, int64_t t, Slice x, float* proj, int64_t pitch,
                      DacScratch& ws) {
  const int64_t n = p.w.n, k = int64_t(p.w.kh) * p.w.kw, r = p.rank;
  float* dw = p.depthwise + i * r * k;
  Route route = ws.routes[size_t(t)];
  if (route == Route::Zero) {
    std::fill(dw, dw + r * k, 0.0f);
    for (int64_t o = 0; o < n; ++o) std::fill(proj + o * pitch, proj + o * pitch + r, 0.0f);
    if (p.singular != nullptr) std::fill(p.singular + i * k, p.singular + (i + 1) * k, 0.0f);
    return Status::Ok();
  }
  const double* ev = ws.values.data() + t * k;  // descending
  if (route == Route::Gram) {
    const double lmax = ev[0];
    for (int64_t j = 0; j < r; ++j)
      if (ev[j] < detail::kGramSmallRatio * lmax ||
          (j + 1 < k && ev[j] - ev[j + 1] < detail::kGramGapRatio * lmax))
        route = Route::Exact;
  }
  if (route == Route::Exact) return channel_exact(p, i, x.X, x.ld, proj, pitch, ws);
  ws.vr.resize(size_t(r * k));
  double* vr = ws.vr.data();  // [j][a], sign-fixed
  for (int64_t j = 0; j < r; ++j) {
    const double* col = ws.vectors.data() + t * k * k + j * k;
    const double sign = col[detail::sign_pivot(col, k)] < 0 ? -1.0 : 1.0;
    for (int64_t a = 0; a < k; ++a) {
      vr[j * k + a] = sign * col[a];
      dw[j * k + a] = float(vr[j * k + a]);
    }
  }
  ws.kernels->project(x.X, x.ld, k, n, vr, r, proj, pitch);
  if (p.singular != nullptr)
    for (int64_t j = 0; j < k; ++j) p.singular[i * k + j] = float(std::sqrt(std::max(ev[j], 0.0)));
  return Status::Ok();
}

// Channels [begin, end) of one layer, a block at a time: Gram matrices, then
// their eigenproblems together, then the projections. Returns false after
// recording an error.
bool dac_channels(const DacParams& p, int64_t layer, int64_t begin, int64_t end,
                  DacScratch& ws, FirstError& err, const std::string& prefix) {
  const int64_t n = p.w.n, c = p.w.c, k = int64_t(p.w.kh) * p.w.kw, r = p.rank;
  const int64_t block = block_channels(p), pitch = scratch_pitch(n);
  const int64_t ppitch = scratch_pitch(block * r);
  const bool oihw = p.w.layout == WeightLayout::OIHW;
  detail::find_dac_kernels(p.variant, &ws.kernels);  // checked by check_dac
  int64_t failed_at = begin;
  Status st = detail::guarded(prefix, [&]() -> Status {
    for (int64_t b = begin; b < end; b += block) {
      const int64_t count = std::min(block, end - b);
      failed_at = b;
      if (oihw) gather_block(p, b, count, pitch, ws);
      ws.proj.resize(size_t(n * ppitch));
      ws.grams.resize(size_t(count * k * k));
      ws.routes.resize(size_t(count));
      auto fail = [&](int64_t i, const Status& s) {
        failed_at = i;
        return Status::Error(prefix + "input channel " + std::to_string(i) + ": " + s.message);
      };
      for (int64_t t = 0; t < count; ++t) {
        Status s = gram_of(p, slice_of(p, b + t, t, pitch, oihw, ws), t, ws, &ws.routes[size_t(t)]);
        if (!s.ok) return fail(b + t, s);
      }
      solve_grams(k, count, ws);
      for (int64_t t = 0; t < count; ++t) {
        Status s = finish_channel(p, b + t, t, slice_of(p, b + t, t, pitch, oihw, ws),
                                  ws.proj.data() + t * r, ppitch, ws);
        if (!s.ok) return fail(b + t, s);
      }
      for (int64_t o = 0; o < n; ++o) {
        float* dst = p.pointwise + o * c * r + b * r;
        std::memcpy(dst, ws.proj.data() + o * ppitch, size_t(count * r) * sizeof(float));
      }
    }
    return Status::Ok();
  });
  if (st.ok) return true;
  err.record(layer, failed_at, st.message);
  return false;
}

// Relative cost of one channel: Gram, projection, eigensolve.
double channel_cost(const DacParams& p) {
  const double n = p.w.n, k = double(p.w.kh) * p.w.kw, r = p.rank;
  const double m = std::min(n, k);
  return n * k * (0.5 * (m + 1) + r + 1) + 20.0 * m * m * m;
}

}  // namespace

Status decompose_dac(const DacParams& p) {
  const char* fn = "decompose_dac";
  Status s = check_dac(fn, p);
  if (!s.ok) return s;
  const std::string prefix = std::string(fn) + ": ";
  FirstError err;
  s = detail::guarded(prefix, [&]() -> Status {
    parallel_for(p.w.c, p.threads, [&](int64_t b, int64_t e) {
      DacScratch ws;
      dac_channels(p, 0, b, e, ws, err, prefix);
    });
    return Status::Ok();
  });
  if (err.failed()) return Status::Error(err.message());
  return s;
}

Status decompose_dac_batch(const DacParams* layers, int count, int threads) {
  const char* fn = "decompose_dac_batch";
  if (count < 0) return Status::Error(std::string(fn) + ": layer count " + std::to_string(count) + " is negative");
  if (count > 0 && layers == nullptr) return Status::Error(std::string(fn) + ": layers is null");
  for (int l = 0; l < count; ++l) {
    Status s = check_dac(fn, layers[l]);
    if (!s.ok)
      return Status::Error(std::string(fn) + ": layer " + std::to_string(l) + ": " +
                           s.message.substr(std::strlen(fn) + 2));
  }
  if (count == 0) return Status::Ok();

  // Cut the flattened (layer, channel) sequence into `workers` runs of equal
  // estimated cost, so one huge layer is shared instead of pinning a thread.
  std::vector<double> cost(size_t(count) + 1, 0.0);
  for (int l = 0; l < count; ++l)
    cost[size_t(l) + 1] = cost[size_t(l)] + channel_cost(layers[l]) * layers[l].w.c;
  const double total = cost[size_t(count)];
  int64_t channels = 0;
  for (int l = 0; l < count; ++l) channels += layers[l].w.c;
  const int workers = int(std::max<int64_t>(1, std::min<int64_t>(std::max(threads, 1), channels)));
  struct Pos {
    int layer;
    int64_t channel;
  };
  std::vector<Pos> cut(size_t(workers) + 1);
  cut[0] = {0, 0};
  cut[size_t(workers)] = {count, 0};
  for (int t = 1; t < workers; ++t) {
    const double target = total * t / workers;
    int l = int(std::upper_bound(cost.begin(), cost.end(), target) - cost.begin()) - 1;
    l = std::min(l, count - 1);
    const double per = channel_cost(layers[l]);
    int64_t ch = per > 0 ? int64_t((target - cost[size_t(l)]) / per) : 0;
    ch = std::min<int64_t>(std::max<int64_t>(ch, 0), layers[l].w.c);
    cut[size_t(t)] = {l, ch};
  }

  FirstError err;
  Status s = detail::guarded(std::string(fn) + ": ", [&]() -> Status {
    parallel_for(workers, workers, [&](int64_t b, int64_t e) {
      DacScratch ws;
      for (int64_t t = b; t < e; ++t) {
        Pos from = cut[size_t(t)], to = cut[size_t(t) + 1];
        for (int l = from.layer; l <= to.layer && l < count; ++l) {
          const int64_t cb = l == from.layer ? from.channel : 0;
          const int64_t ce = l == to.layer ? to.channel : layers[l].w.c;
          if (cb >= ce) continue;
          const std::string prefix = std::string(fn) + ": layer " + std::to_string(l) + ": ";
          if (!dac_channels(layers[l], l, cb, ce, ws, err, prefix)) return;
        }
      }
    });
    return Status::Ok();
  });
  if (err.failed()) return Status::Error(err.message());
  return s;
}

}  // namespace dac
