// The fused depthwise+pointwise tiles (tiles/tiles.h) built for sse41.
#include "../tiles/simd_sse41.h"
#include "../tiles/tiles.h"

namespace dac {
namespace tiles {
namespace {

void run_tiles(const DwPwPlan& p, int64_t m0, int64_t m1, void* scratch) { dwpw_tiles<IsaSse41>(p, m0, m1, scratch); }

}  // namespace

const DwPwIsa kDwPwSse41 = {IsaSse41::kName, IsaSse41::W, IsaSse41::MR, IsaSse41::NV * IsaSse41::W, &run_tiles};

}  // namespace tiles
}  // namespace dac
