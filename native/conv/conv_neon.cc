// The dense convolution tiles (im2col + tiles/tiles.h) built for neon.
#include "../tiles/simd_neon.h"
#include "../tiles/tiles.h"

namespace dac {
namespace tiles {
namespace {

void run_tiles(const TilePlan& p, int64_t m0, int64_t m1, void* scratch) { conv_tiles<IsaNeon>(p, m0, m1, scratch); }

}  // namespace

const ConvIsa kConvNeon = {IsaNeon::kName, IsaNeon::W, IsaNeon::MR, IsaNeon::NV * IsaNeon::W, &run_tiles};

}  // namespace tiles
}  // namespace dac
