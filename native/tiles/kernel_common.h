// Portable pieces shared by the fused (dwpw_dispatch.cc) and dense
// (conv_dispatch.cc) drivers: argument checks, weight packing, tiling and
// threading. Built without ISA flags; never include from a *_<isa>.cc file.
#pragma once
#include <cstdint>
#include <memory>
#include <new>
#include <string>

#include "../common/status.h"
#include "../common/variants.h"
#include "plan.h"
#include "../dwpw/dwpw.h"

namespace dac {
namespace tiles {

// 64-byte aligned storage that reports failure instead of throwing, so an
// oversized request becomes a Status (also in the no-exceptions WASM build).
template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release(); }
  bool allocate(int64_t count) {
    release();
    if (count < 0 || count > (int64_t{1} << 40) / static_cast<int64_t>(sizeof(T))) return false;
    size_t bytes = static_cast<size_t>(count > 0 ? count : 1) * sizeof(T);
    data_ = static_cast<T*>(::operator new(bytes, std::align_val_t(64), std::nothrow));
    return data_ != nullptr;
  }
  T* data() const { return data_; }
  T& operator[](int64_t i) const { return data_[i]; }

 private:
  void release() {
    if (data_) ::operator delete(data_, std::align_val_t(64));
    data_ = nullptr;
  }
  T* data_ = nullptr;
};

// Geometry: every size positive, pads non-negative, sizes small enough that
// no index overflows, and out_h/out_w equal to the output-size formula.
Status check_geometry(const ConvGeometry& g, const char* op);

// ptr/length against the expected element count. An optional array may be
// null with length 0.
Status check_array(const char* op, const char* field, const void* ptr, int64_t length, int64_t expected,
                   const std::string& formula, bool optional);

Status check_activation_threads(const char* op, Activation act, int threads);

// True if [a, a + na) and [b, b + nb) share a float.
bool overlaps(const float* a, int64_t na, const float* b, int64_t nb);

Epilogue make_epilogue(Activation act, const float* bias);

// How to build one packed B (plan.h's layout) from a weight array whose
// row o (output channel) starts at src + o * ld: packed row k reads column
// cols[k]. Blocks are uniform, kc0 rows each except the last. Rows are
// visited in `order` (a permutation of 0..K-1) so that reads can be grouped
// by source cache line.
struct PackSpec {
  int kind;          // which kernel family the packing is for (cache key)
  const char* isa;   // variant name (cache key)
  const float* src;  // the caller's weights
  int64_t src_length;
  int64_t shape[4];  // the parameters the packing depends on (cache key)
  int64_t ld;
  int64_t K;
  int64_t kc0;
  int n, w, nr;
  const int64_t* cols;
  const int64_t* order;
};

struct PackedWeights {
  const float* data;
  int64_t npad;
};

// Packs B as described by spec, or finds it already packed: the cache is
// keyed by spec's key fields and the source pointer, and an entry is used
// only if its saved copy of the source still equals the caller's array
// byte for byte, so weights changed in place are repacked. Entries are kept
// up to 256 MB in all, least recently used dropped first. `hold` keeps the
// entry alive for the duration of the call.
Status packed_weights(const PackSpec& spec, int threads, std::shared_ptr<const void>* hold, PackedWeights* out);

// Runs `run` over all output pixels split into tiles of t.mc, on up to
// `threads` workers, each with its own scratch. Returns an error (before any
// work starts) if the scratch cannot be allocated.
Status run_tiles(const TilePlan& t, int threads, void (*run)(const void* plan, int64_t m0, int64_t m1, void* scratch),
                 const void* plan);

// Pixels per tile: a multiple of mr, cache sized, tiles evenly sized and a
// multiple of the thread count where there are enough pixels, and bounded
// scratch per worker.
int choose_tile_pixels(int64_t pixels, int mr, int64_t lda, int taps, int threads);

int64_t round_up(int64_t x, int64_t to);

// run_tiles' callback for a family whose ISA table has run(plan, m0, m1, scratch).
template <class Isa, class Plan>
struct IsaJob {
  const Isa* isa;
  const Plan* plan;
  static void run(const void* job, int64_t m0, int64_t m1, void* scratch) {
    const IsaJob* j = static_cast<const IsaJob*>(job);
    j->isa->run(*j->plan, m0, m1, scratch);
  }
};

// The entry points every tiled kernel family has over its variant tables
// (common/variants.h): check the arguments, then run the named variant or
// the best ("ref" = the reference loops).
template <class Params, class Isa>
struct Dispatch {
  const char* op;
  const Variants<Isa>& (*variants)();
  Status (*check)(const Params&);
  void (*reference)(const Params&);
  Status (*tiled)(const Params&, const Isa&);

  // p.variant: a name, or null for the best.
  Status forward(const Params& p) const {
    int index = 0;
    Status s = variants().find(op, p.variant, &index);
    if (!s.ok) return s;
    if (!(s = check(p)).ok) return s;
    const Isa* isa = variants().tables[index];
    if (!isa) {
      reference(p);
      return Status::Ok();
    }
    return tiled(p, *isa);
  }
  const char* available() const { return variants().joined.c_str(); }
};

}  // namespace tiles
}  // namespace dac
