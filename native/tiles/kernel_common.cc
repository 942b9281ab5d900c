#include "kernel_common.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <list>
#include <mutex>
#include <string>

#include "../common/parallel.h"

namespace dac {
namespace tiles {

namespace {

// Every geometry field is bounded so that index arithmetic in int (taps,
// rows) and int64 (offsets) cannot overflow.
constexpr int kMaxDim = 1 << 24;
constexpr int64_t kMaxElements = int64_t{1} << 40;
// A worker's scratch (tap pointers + A tile) stays below this.
constexpr int64_t kScratchBudget = int64_t{16} << 20;

std::string field_error(const char* op, const char* field, const std::string& what) {
  return std::string(op) + ": field " + field + ": " + what;
}

}  // namespace

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

Status check_geometry(const ConvGeometry& g, const char* op) {
  struct Field {
    const char* name;
    int value;
    int min;
  };
  const Field fields[] = {
      {"batch", g.batch, 1},           {"in_h", g.in_h, 1},
      {"in_w", g.in_w, 1},             {"in_c", g.in_c, 1},
      {"kh", g.kh, 1},                 {"kw", g.kw, 1},
      {"stride_h", g.stride_h, 1},     {"stride_w", g.stride_w, 1},
      {"dilation_h", g.dilation_h, 1}, {"dilation_w", g.dilation_w, 1},
      {"pad_top", g.pad_top, 0},       {"pad_left", g.pad_left, 0},
      {"pad_bottom", g.pad_bottom, 0}, {"pad_right", g.pad_right, 0},
      {"out_h", g.out_h, 1},           {"out_w", g.out_w, 1},
      {"out_c", g.out_c, 1},
  };
  for (const Field& f : fields) {
    if (f.value < f.min || f.value > kMaxDim) {
      return Status::Error(field_error(op, f.name,
                                       "must be in " + std::to_string(f.min) + ".." + std::to_string(kMaxDim) +
                                           ", got " + std::to_string(f.value)));
    }
  }
  if (static_cast<int64_t>(g.kh) * g.kw > kMaxDim) {
    return Status::Error(field_error(op, "kh", "kernel " + std::to_string(g.kh) + "x" + std::to_string(g.kw) +
                                                   " has more than " + std::to_string(kMaxDim) + " taps"));
  }
  struct Axis {
    const char* name;
    int in, pa, pb, k, s, d, out;
  };
  const Axis axes[] = {
      {"out_h", g.in_h, g.pad_top, g.pad_bottom, g.kh, g.stride_h, g.dilation_h, g.out_h},
      {"out_w", g.in_w, g.pad_left, g.pad_right, g.kw, g.stride_w, g.dilation_w, g.out_w},
  };
  for (const Axis& a : axes) {
    const int64_t span = static_cast<int64_t>(a.in) + a.pa + a.pb - static_cast<int64_t>(a.d) * (a.k - 1) - 1;
    if (span < 0) {
      return Status::Error(field_error(op, a.name,
                                       "the dilated kernel (" + std::to_string(static_cast<int64_t>(a.d) * (a.k - 1) + 1) +
                                           ") is larger than the padded input (" +
                                           std::to_string(static_cast<int64_t>(a.in) + a.pa + a.pb) + ")"));
    }
    const int64_t expected = span / a.s + 1;
    if (expected != a.out) {
      return Status::Error(field_error(op, a.name,
                                       "is " + std::to_string(a.out) + " but floor((in + pads - dilation*(k-1) - 1) / stride) + 1 = " +
                                           std::to_string(expected)));
    }
  }
  const int64_t in = static_cast<int64_t>(g.batch) * g.in_h * g.in_w;
  const int64_t out = static_cast<int64_t>(g.batch) * g.out_h * g.out_w;
  if (in > kMaxElements / g.in_c || out > kMaxElements / g.out_c) {
    return Status::Error(field_error(op, "batch", "tensors over 2^40 elements are not supported"));
  }
  return Status::Ok();
}

Status check_array(const char* op, const char* field, const void* ptr, int64_t length, int64_t expected,
                   const std::string& formula, bool optional) {
  if (optional && ptr == nullptr) {
    if (length != 0) {
      return Status::Error(field_error(op, field, "is null but its length is " + std::to_string(length)));
    }
    return Status::Ok();
  }
  if (ptr == nullptr) return Status::Error(field_error(op, field, "is missing (null)"));
  if (length != expected) {
    return Status::Error(field_error(op, field, "has " + std::to_string(length) + " floats, expected " +
                                                    std::to_string(expected) + " (" + formula + ")"));
  }
  return Status::Ok();
}

Status check_activation_threads(const char* op, Activation act, int threads) {
  const int a = static_cast<int>(act);
  if (a < 0 || a > 2) {
    return Status::Error(field_error(op, "activation", "must be 0 (none), 1 (relu) or 2 (relu6), got " + std::to_string(a)));
  }
  if (threads < 1 || threads > 1024) {
    return Status::Error(field_error(op, "threads", "must be in 1..1024, got " + std::to_string(threads)));
  }
  return Status::Ok();
}

bool overlaps(const float* a, int64_t na, const float* b, int64_t nb) {
  if (!a || !b || na <= 0 || nb <= 0) return false;
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + static_cast<uintptr_t>(nb) * sizeof(float) && pb < pa + static_cast<uintptr_t>(na) * sizeof(float);
}

Epilogue make_epilogue(Activation act, const float* bias) {
  Epilogue e;
  e.bias = bias;
  e.clamp = act != Activation::None;
  e.lo = 0.f;
  e.hi = act == Activation::Relu6 ? 6.f : __builtin_huge_valf();
  return e;
}

namespace {

// Packed weights kept across calls (with a copy of their source to verify
// against) up to this many bytes, least recently used dropped first.
constexpr int64_t kCacheBytes = int64_t{256} << 20;

struct CacheEntry {
  int kind = 0;
  std::string isa;
  const float* src = nullptr;
  int64_t src_length = 0;
  int64_t shape[4] = {};
  Buffer<float> copy;
  Buffer<float> packed;
  int64_t npad = 0;
  int64_t bytes = 0;
};

struct Cache {
  std::mutex mu;
  std::list<std::shared_ptr<CacheEntry>> lru;  // most recent first
  int64_t bytes = 0;
};

Cache& cache() {
  static Cache c;
  return c;
}

bool same_key(const CacheEntry& e, const PackSpec& s) {
  return e.kind == s.kind && e.isa == s.isa && e.src == s.src && e.src_length == s.src_length &&
         std::equal(e.shape, e.shape + 4, s.shape);
}

void pack(const PackSpec& s, int64_t npad, float* dst, int threads) {
  const int64_t panels = (npad + s.nr - 1) / s.nr;
  // 64 rows at a time: their source columns of a panel's rows and their
  // destination lines both stay in L1.
  constexpr int kChunk = 64;
  parallel_for(panels, threads, [&](int64_t begin, int64_t end) {
    int64_t src_col[kChunk], dst_off[kChunk];
    for (int64_t panel = begin; panel < end; ++panel) {
      const int64_t j0 = panel * s.nr;
      const int64_t width = std::min<int64_t>(s.nr, npad - j0);
      const int64_t oend = std::min<int64_t>(s.n, j0 + width);
      for (int64_t c0 = 0; c0 < s.K; c0 += kChunk) {
        const int count = static_cast<int>(std::min<int64_t>(kChunk, s.K - c0));
        for (int e = 0; e < count; ++e) {
          const int64_t k = s.order[c0 + e];
          const int64_t k0 = k / s.kc0 * s.kc0;
          const int64_t kc = std::min(s.kc0, s.K - k0);
          src_col[e] = s.cols[k];
          dst_off[e] = k0 * npad + j0 * kc + (k - k0) * width - j0;
        }
        for (int64_t o = j0; o < oend; ++o) {
          const float* row = s.src + o * s.ld;
          for (int e = 0; e < count; ++e) dst[dst_off[e] + o] = row[src_col[e]];
        }
        for (int64_t o = oend; o < j0 + width; ++o)
          for (int e = 0; e < count; ++e) dst[dst_off[e] + o] = 0.f;
      }
    }
  });
}

}  // namespace

Status packed_weights(const PackSpec& spec, int threads, std::shared_ptr<const void>* hold, PackedWeights* out) {
  Cache& c = cache();
  std::shared_ptr<CacheEntry> found;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    for (auto it = c.lru.begin(); it != c.lru.end(); ++it) {
      if (same_key(**it, spec)) {
        found = *it;
        c.lru.splice(c.lru.begin(), c.lru, it);
        break;
      }
    }
  }
  const size_t src_bytes = static_cast<size_t>(spec.src_length) * sizeof(float);
  if (found && std::memcmp(found->copy.data(), spec.src, src_bytes) == 0) {
    out->data = found->packed.data();
    out->npad = found->npad;
    *hold = found;
    return Status::Ok();
  }
  auto e = std::make_shared<CacheEntry>();
  e->kind = spec.kind;
  e->isa = spec.isa;
  e->src = spec.src;
  e->src_length = spec.src_length;
  std::copy(spec.shape, spec.shape + 4, e->shape);
  e->npad = round_up(spec.n, spec.w);
  if (!e->packed.allocate(spec.K * e->npad)) {
    return Status::Error("out of memory for " + std::to_string(spec.K * e->npad) + " floats of packed weights");
  }
  pack(spec, e->npad, e->packed.data(), threads);
  e->bytes = (spec.K * e->npad + spec.src_length) * static_cast<int64_t>(sizeof(float));
  // An entry too large for the cache, or whose copy cannot be allocated,
  // is used for this call only.
  if (e->bytes <= kCacheBytes / 2 && e->copy.allocate(spec.src_length)) {
    std::memcpy(e->copy.data(), spec.src, src_bytes);
    std::lock_guard<std::mutex> lock(c.mu);
    for (auto it = c.lru.begin(); it != c.lru.end();) {
      if (same_key(**it, spec)) {
        c.bytes -= (*it)->bytes;
        it = c.lru.erase(it);
      } else {
        ++it;
      }
    }
    c.lru.push_front(e);
    c.bytes += e->bytes;
    while (c.bytes > kCacheBytes) {
      c.bytes -= c.lru.back()->bytes;
      c.lru.pop_back();
    }
  }
  out->data = e->packed.data();
  out->npad = e->npad;
  *hold = e;
  return Status::Ok();
}


int choose_tile_pixels(int64_t pixels, int mr, int64_t lda, int taps, int threads) {
  // Tiles of up to ~20 micro-tiles: the A tile (mc x kc floats, ~240 KB at
  // kc = 512) stays in L2 while each B panel is swept over it. Every tile
  // streams all of B, so tiles are as few as that allows, evenly sized (no
  // sliver of a tile paying a full pass over B), and a multiple of the
  // thread count.
  const int64_t max_mc = 20 * static_cast<int64_t>(mr);
  const int64_t row_bytes = lda * static_cast<int64_t>(sizeof(float)) + taps * static_cast<int64_t>(sizeof(float*));
  const int64_t budget_mc = std::max<int64_t>(mr, kScratchBudget / row_bytes / mr * mr);
  const int64_t cap = std::min(max_mc, budget_mc);
  int64_t tiles = (pixels + cap - 1) / cap;
  tiles = round_up(std::max<int64_t>(tiles, threads), threads);
  tiles = std::min(tiles, (pixels + mr - 1) / mr);
  const int64_t mc = round_up((pixels + tiles - 1) / tiles, mr);
  return static_cast<int>(std::min(mc, budget_mc));
}

Status run_tiles(const TilePlan& t, int threads, void (*run)(const void* plan, int64_t m0, int64_t m1, void* scratch),
                 const void* plan) {
  const int64_t pixels = static_cast<int64_t>(t.g.batch) * t.g.out_h * t.g.out_w;
  const int64_t tiles = (pixels + t.mc - 1) / t.mc;
  const int workers = static_cast<int>(std::min<int64_t>(std::max(threads, 1), tiles));
  const int64_t taps = static_cast<int64_t>(t.g.kh) * t.g.kw;
  const int64_t bytes = round_up(t.mc * taps * static_cast<int64_t>(sizeof(float*)), 64) +
                        round_up(t.mc * t.lda * static_cast<int64_t>(sizeof(float)), 64);
  Buffer<char> scratch;
  if (!scratch.allocate(bytes * workers)) {
    return Status::Error("out of memory allocating " + std::to_string(bytes * workers) + " bytes of tile scratch");
  }
  // One index per worker, so each owns one scratch slice and a contiguous
  // run of tiles (neighbouring output rows).
  const int64_t per = (tiles + workers - 1) / workers;
  parallel_for(workers, workers, [&](int64_t wb, int64_t we) {
    for (int64_t w = wb; w < we; ++w) {
      const int64_t m0 = std::min(pixels, w * per * t.mc);
      const int64_t m1 = std::min(pixels, (w + 1) * per * t.mc);
      if (m0 < m1) run(plan, m0, m1, scratch.data() + w * bytes);
    }
  });
  return Status::Ok();
}

}  // namespace tiles
}  // namespace dac
