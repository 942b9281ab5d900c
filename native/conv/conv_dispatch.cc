// conv2d_forward: checks every argument, packs the weights for the chosen
// ISA and runs its im2col + GEMM tiles (or the reference loops).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "../tiles/kernel_common.h"
#include "../tiles/plan.h"
#include "conv.h"
#include "conv_ref.h"

namespace dac {
namespace {

using tiles::Buffer;
using tiles::ConvIsa;
using tiles::KBlock;

constexpr const char* kOp = "conv2d";
// K rows per block; see dwpw_dispatch.cc.
constexpr int kBlockK = 512;

const Variants<ConvIsa>& variants() {
  static const Variants<ConvIsa> v = detect_variants<ConvIsa>(
      {nullptr, DAC_IF_X86(&tiles::kConvSse41), DAC_IF_X86(&tiles::kConvAvx2), DAC_IF_X86(&tiles::kConvAvx512),
       DAC_IF_NEON(&tiles::kConvNeon), DAC_IF_WASM_SIMD(&tiles::kConvWasmSimd)});
  return v;
}

Status check(const Conv2DParams& p) {
  Status s = tiles::check_geometry(p.g, kOp);
  if (!s.ok) return s;
  const ConvGeometry& g = p.g;
  const int64_t taps = static_cast<int64_t>(g.kh) * g.kw;
  const int64_t k = static_cast<int64_t>(g.in_c) * taps;
  if (k * g.out_c > (int64_t{1} << 40)) {
    return Status::Error(std::string(kOp) + ": field weights: out_c*in_c*kh*kw is over 2^40");
  }
  const int64_t in_len = static_cast<int64_t>(g.batch) * g.in_h * g.in_w * g.in_c;
  const int64_t out_len = static_cast<int64_t>(g.batch) * g.out_h * g.out_w * g.out_c;
  if (!(s = tiles::check_array(kOp, "input", p.input, p.input_length, in_len, "batch*in_h*in_w*in_c", false)).ok) return s;
  if (!(s = tiles::check_array(kOp, "weights", p.weights, p.weights_length, k * g.out_c, "out_c*in_c*kh*kw", false)).ok)
    return s;
  if (!(s = tiles::check_array(kOp, "bias", p.bias, p.bias_length, g.out_c, "out_c", true)).ok) return s;
  if (!(s = tiles::check_array(kOp, "output", p.output, p.output_length, out_len, "batch*out_h*out_w*out_c", false)).ok)
    return s;
  if (tiles::overlaps(p.output, out_len, p.input, in_len) || tiles::overlaps(p.output, out_len, p.weights, k * g.out_c) ||
      tiles::overlaps(p.output, out_len, p.bias, p.bias ? g.out_c : 0)) {
    return Status::Error(std::string(kOp) + ": field output: must not share memory with the input, weights or bias");
  }
  return tiles::check_activation_threads(kOp, p.activation, p.threads);
}

Status out_of_memory(const char* what) { return Status::Error(std::string(kOp) + ": out of memory for " + what); }

Status run_tiled(const Conv2DParams& p, const ConvIsa& isa) {
  const ConvGeometry& g = p.g;
  const int W = isa.w, c = g.in_c, n = g.out_c, T = g.kh * g.kw;
  const int64_t K = static_cast<int64_t>(c) * T;

  // K runs over (tap, channel) with channels fastest, matching im2col_block;
  // blocks are plain slices of it.
  const int nblocks = static_cast<int>((K + kBlockK - 1) / kBlockK);
  Buffer<KBlock> blocks;
  if (!blocks.allocate(nblocks)) return out_of_memory("blocks");
  for (int b = 0; b < nblocks; ++b) {
    KBlock& k = blocks[b];
    k.k0 = static_cast<int64_t>(b) * kBlockK;
    k.kc = static_cast<int>(std::min<int64_t>(kBlockK, K - k.k0));
    k.c0 = k.c1 = k.full = 0;
  }

  // Packed row k = tap*c + i reads OIHW column i*T + tap. Rows are packed
  // 16 channels x every tap at a time, so the source lines read (16*T
  // floats of each output channel's row) are reused across taps.
  Buffer<int64_t> cols, order;
  if (!cols.allocate(K) || !order.allocate(K)) return out_of_memory("the column map");
  constexpr int kChannelRun = 16;
  int64_t next = 0;
  for (int i0 = 0; i0 < c; i0 += kChannelRun)
    for (int t = 0; t < T; ++t)
      for (int i = i0; i < std::min(c, i0 + kChannelRun); ++i) {
        const int64_t k = static_cast<int64_t>(t) * c + i;
        cols[k] = static_cast<int64_t>(i) * T + t;
        order[next++] = k;
      }
  tiles::PackSpec spec;
  spec.kind = 1;
  spec.isa = isa.name;
  spec.src = p.weights;
  spec.src_length = p.weights_length;
  spec.shape[0] = n;
  spec.shape[1] = c;
  spec.shape[2] = g.kh;
  spec.shape[3] = g.kw;
  spec.ld = K;
  spec.K = K;
  spec.kc0 = kBlockK;
  spec.n = n;
  spec.w = W;
  spec.nr = isa.nr;
  spec.cols = cols.data();
  spec.order = order.data();
  std::shared_ptr<const void> hold;
  tiles::PackedWeights packed;
  Status s = tiles::packed_weights(spec, p.threads, &hold, &packed);
  if (!s.ok) return Status::Error(std::string(kOp) + ": " + s.message);

  Buffer<float> zeros;
  if (!zeros.allocate(c)) return out_of_memory("the padding row");
  std::fill(zeros.data(), zeros.data() + c, 0.f);

  tiles::TilePlan t;
  t.g = g;
  t.input = p.input;
  t.zeros = zeros.data();
  t.output = p.output;
  t.b.data = packed.data;
  t.b.npad = packed.npad;
  t.epi = tiles::make_epilogue(p.activation, p.bias);
  t.blocks = blocks.data();
  t.nblocks = nblocks;
  t.lda = std::min<int64_t>(kBlockK, K);
  t.mc = tiles::choose_tile_pixels(static_cast<int64_t>(g.batch) * g.out_h * g.out_w, isa.mr, t.lda, T, p.threads);
  const tiles::IsaJob<ConvIsa, tiles::TilePlan> job{&isa, &t};
  s = tiles::run_tiles(t, p.threads, &job.run, &job);
  if (!s.ok) return Status::Error(std::string(kOp) + ": " + s.message);
  return s;
}

const tiles::Dispatch<Conv2DParams, ConvIsa> kDispatch{kOp, &variants, &check, &conv2d_reference, &run_tiled};

}  // namespace

Status conv2d_forward(const Conv2DParams& p) { return kDispatch.forward(p); }

const char* conv2d_variants() { return kDispatch.available(); }

}  // namespace dac
