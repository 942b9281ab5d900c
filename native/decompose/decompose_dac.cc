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

// Per-worker scratch, reused across channels (and layers in a batch).
struct DacScratch {
  std::vector<float> xt;    // a block of OIHW channels, each transposed to k rows of n
  std::vector<float> proj;  // the block's pointwise rows, [o][channel][j]
  std::vector<double> vr, values, vectors, work;
  MatrixXd gram, slice;
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
  float* xt = ws.xt.data();
  const int64_t width = count * k;
  // 16 x 16 tiles through a local buffer: each source row segment and each
  // destination line is touched once, whatever the tensor's (often
  // power-of-two) row stride does to cache sets.
  float tile[16][16];
  for (int64_t o0 = 0; o0 < n; o0 += 16) {
    const int64_t no = std::min<int64_t>(16, n - o0);
    for (int64_t q0 = 0; q0 < width; q0 += 16) {
      const int64_t nq = std::min<int64_t>(16, width - q0);
      for (int64_t oo = 0; oo < no; ++oo) {
        const float* src = p.w.data + ((o0 + oo) * c + b) * k + q0;
        for (int64_t qq = 0; qq < nq; ++qq) tile[qq][oo] = src[qq];
      }
      for (int64_t qq = 0; qq < nq; ++qq) {
        float* dst = xt + (q0 + qq) * ld + o0;
        if (no == 16) {
          for (int z = 0; z < 16; ++z) dst[z] = tile[qq][z];  // fixed size: plain vector moves
        } else {
          for (int64_t z = 0; z < no; ++z) dst[z] = tile[qq][z];
        }
      }
    }
  }
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

// One channel, its slice given as k rows of n floats `ld` apart. With k <= n
// the k x k Gram's eigenvectors are the depthwise filters and each pointwise
// column is M v_j = sigma_j u_j, computed directly into proj ([o][j], rows
// `pitch` apart).
Status channel(const DacParams& p, int64_t i, const float* X, int64_t ld, float* proj,
               int64_t pitch, DacScratch& ws) {
  const int64_t n = p.w.n, k = int64_t(p.w.kh) * p.w.kw, r = p.rank;
  if (k > n) return channel_exact(p, i, X, ld, proj, pitch, ws);
  ws.gram.resize(k, k);
  ws.kernels->gram(X, ld, k, n, ws.gram.data());
  const double trace = ws.gram.diagonal().sum();
  if (!std::isfinite(trace)) return Status::Error("weights contain NaN or infinity");
  float* dw = p.depthwise + i * r * k;
  if (trace == 0) {
    std::fill(dw, dw + r * k, 0.0f);
    for (int64_t o = 0; o < n; ++o) std::fill(proj + o * pitch, proj + o * pitch + r, 0.0f);
    if (p.singular != nullptr) std::fill(p.singular + i * k, p.singular + (i + 1) * k, 0.0f);
    return Status::Ok();
  }
  // The kernel fills the lower triangle; the solver wants both.
  double* g = ws.gram.data();
  for (int64_t col = 0; col < k; ++col)
    for (int64_t row = col + 1; row < k; ++row) g[row * k + col] = g[col * k + row];
  ws.values.resize(size_t(k));
  ws.vectors.resize(size_t(k * k));
  ws.work.resize(size_t(3 * k));
  double* ev = ws.values.data();  // descending
  if (!detail::small_symmetric_eigen(g, k, ev, ws.vectors.data(), ws.work.data()))
    return channel_exact(p, i, X, ld, proj, pitch, ws);
  const double lmax = ev[0];
  for (int64_t j = 0; j < r; ++j) {
    if (ev[j] < detail::kGramSmallRatio * lmax ||
        (j + 1 < k && ev[j] - ev[j + 1] < detail::kGramGapRatio * lmax))
      return channel_exact(p, i, X, ld, proj, pitch, ws);
  }
  ws.vr.resize(size_t(r * k));
  double* vr = ws.vr.data();  // [j][a], sign-fixed
  for (int64_t j = 0; j < r; ++j) {
    const double* col = ws.vectors.data() + j * k;
    const double sign = col[detail::sign_pivot(col, k)] < 0 ? -1.0 : 1.0;
    for (int64_t a = 0; a < k; ++a) {
      vr[j * k + a] = sign * col[a];
      dw[j * k + a] = float(vr[j * k + a]);
    }
  }
  ws.kernels->project(X, ld, k, n, vr, r, proj, pitch);
  if (p.singular != nullptr)
    for (int64_t j = 0; j < k; ++j) p.singular[i * k + j] = float(std::sqrt(std::max(ev[j], 0.0)));
  return Status::Ok();
}

// Channels [begin, end) of one layer. Returns false after recording an error.
bool dac_channels(const DacParams& p, int64_t layer, int64_t begin, int64_t end,
                  DacScratch& ws, FirstError& err, const std::string& prefix) {
  const int64_t n = p.w.n, c = p.w.c, k = int64_t(p.w.kh) * p.w.kw, r = p.rank;
  const int64_t block = block_channels(p), pitch = scratch_pitch(n);
  const int64_t ppitch = scratch_pitch(block * r);
  const bool oihw = p.w.layout == WeightLayout::OIHW;
  int64_t failed_at = begin;
  Status st = detail::guarded(prefix, [&]() -> Status {
    for (int64_t b = begin; b < end; b += block) {
      const int64_t count = std::min(block, end - b);
      failed_at = b;
      if (oihw) gather_block(p, b, count, pitch, ws);
      ws.proj.resize(size_t(n * ppitch));
      for (int64_t t = 0; t < count; ++t) {
        const int64_t i = b + t;
        // HWIO already stores a channel as k rows of n (tap-major, output-minor).
        const float* X = oihw ? ws.xt.data() + t * k * pitch : p.w.data + i * n;
        const int64_t ld = oihw ? pitch : c * n;
        failed_at = i;
        Status s = channel(p, i, X, ld, ws.proj.data() + t * r, ppitch, ws);
        if (!s.ok) return Status::Error(prefix + "input channel " + std::to_string(i) + ": " + s.message);
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
