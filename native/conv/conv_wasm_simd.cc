// The dense convolution tiles (im2col + tiles/tiles.h) built for wasm_simd.
#include "../tiles/simd_wasm.h"
#include "../tiles/tiles.h"

namespace dac {
namespace tiles {
namespace {

void run_tiles(const TilePlan& p, int64_t m0, int64_t m1, void* scratch) { conv_tiles<IsaWasmSimd>(p, m0, m1, scratch); }

}  // namespace

const ConvIsa kConvWasmSimd = {IsaWasmSimd::kName, IsaWasmSimd::W, IsaWasmSimd::MR, IsaWasmSimd::NV * IsaWasmSimd::W, &run_tiles};

}  // namespace tiles
}  // namespace dac
