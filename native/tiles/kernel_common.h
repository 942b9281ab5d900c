// Portable pieces shared by the fused (dwpw_dispatch.cc) and dense
// (conv_dispatch.cc) drivers: argument checks, weight packing, tiling and
// threading. Built without ISA flags; never include from a *_<isa>.cc file.
#pragma once
#include <cstdint>
#include <memory>
#include <new>
#include <string>

#include "../common/cpu_features.h"
#include "../common/status.h"
#include "plan.h"
#include "../dwpw/dwpw.h"

namespace dac {
namespace gemm {

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

// AVX-512 variants are built with -mavx512f/bw/dq/vl: all four must be there.
bool avx512_usable();

// Joins names with commas ("ref,avx2,avx512").
std::string join_names(const char* const* names, int count);

// The variants this build and CPU can run, "ref" first and the best last.
template <class Isa>
struct Variants {
  static constexpr int kMax = 6;
  const char* names[kMax] = {};
  const Isa* isas[kMax] = {};  // null for "ref"
  int count = 0;
  std::string joined;

  void add(const char* name, const Isa* isa) {
    names[count] = name;
    isas[count] = isa;
    ++count;
  }
  // Index of `name`, or -1.
  int find(const char* name) const {
    for (int i = 0; i < count; ++i)
      if (std::string(names[i]) == name) return i;
    return -1;
  }
};

// Each pointer is the variant's table where this build compiled it, else null.
template <class Isa>
Variants<Isa> detect_variants(const Isa* sse41, const Isa* avx2, const Isa* avx512, const Isa* neon,
                              const Isa* wasm_simd) {
  Variants<Isa> v;
  const CpuFeatures& f = cpu_features();
  v.add("ref", nullptr);
  if (sse41 && f.sse41) v.add(sse41->name, sse41);
  if (avx2 && f.avx2_fma) v.add(avx2->name, avx2);
  if (avx512 && avx512_usable()) v.add(avx512->name, avx512);
  if (neon && f.neon) v.add(neon->name, neon);
  // WASM SIMD is a property of the module (an engine without it rejects the
  // whole module), so having compiled it in is enough.
  if (wasm_simd) v.add(wasm_simd->name, wasm_simd);
  v.joined = join_names(v.names, v.count);
  return v;
}

// A variant table entry where this build compiled that ISA, else null.
#if defined(DAC_HAVE_X86_VARIANTS)
#define DAC_IF_X86(table) (table)
#else
#define DAC_IF_X86(table) nullptr
#endif
#if defined(DAC_HAVE_NEON_VARIANTS)
#define DAC_IF_NEON(table) (table)
#else
#define DAC_IF_NEON(table) nullptr
#endif
#if defined(__wasm_simd128__)
#define DAC_IF_WASM_SIMD(table) (table)
#else
#define DAC_IF_WASM_SIMD(table) nullptr
#endif

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

// The entry points every kernel family has over its variant table: check the
// arguments, then run the best variant or a named one ("ref" = the
// reference loops).
template <class Params, class Isa>
struct Dispatch {
  const char* op;
  const Variants<Isa>& (*variants)();
  Status (*check)(const Params&);
  void (*reference)(const Params&);
  Status (*tiled)(const Params&, const Isa&);

  Status forward(const Params& p) const {
    Status s = check(p);
    if (!s.ok) return s;
    return run(p, variants().count - 1);
  }
  Status forward_variant(const Params& p, const char* variant) const {
    if (!variant) return forward(p);
    const int index = variants().find(variant);
    if (index < 0)
      return Status::Error(std::string(op) + ": variant '" + variant +
                           "' is not available in this build on this CPU (available: " + variants().joined + ")");
    Status s = check(p);
    if (!s.ok) return s;
    return run(p, index);
  }
  const char* best() const { return variants().names[variants().count - 1]; }
  const char* available() const { return variants().joined.c_str(); }

 private:
  Status run(const Params& p, int index) const {
    const Isa* isa = variants().isas[index];
    if (!isa) {
      reference(p);
      return Status::Ok();
    }
    return tiled(p, *isa);
  }
};

}  // namespace gemm
}  // namespace dac
