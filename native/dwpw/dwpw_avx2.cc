// The fused depthwise+pointwise tiles (tiles/tiles.h) built for avx2.
#include "../tiles/simd_avx2.h"
#include "../tiles/tiles.h"

namespace dac {
namespace tiles {
namespace {

void run_tiles(const DwPwPlan& p, int64_t m0, int64_t m1, void* scratch) { dwpw_tiles<IsaAvx2>(p, m0, m1, scratch); }

}  // namespace

const DwPwIsa kDwPwAvx2 = {IsaAvx2::kName, IsaAvx2::W, IsaAvx2::MR, IsaAvx2::NV * IsaAvx2::W, &run_tiles};

}  // namespace tiles
}  // namespace dac
