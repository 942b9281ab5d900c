// The dense convolution tiles (im2col + tiles/tiles.h) built for avx512.
#include "../tiles/simd_avx512.h"
#include "../tiles/tiles.h"

namespace dac {
namespace tiles {
namespace {

void run_tiles(const TilePlan& p, int64_t m0, int64_t m1, void* scratch) { conv_tiles<IsaAvx512>(p, m0, m1, scratch); }

}  // namespace

const ConvIsa kConvAvx512 = {IsaAvx512::kName, IsaAvx512::W, IsaAvx512::MR, IsaAvx512::NV * IsaAvx512::W, &run_tiles};

}  // namespace tiles
}  // namespace dac
