// What the portable drivers (dwpw_dispatch.cc, conv_dispatch.cc) hand to the
// ISA-specific tile loops (the *_sse41/avx2/avx512/neon/wasm_simd.cc files).
// Plain structs only: this header is included by TUs built with different
// ISA flags, so it must not define any function that the linker could merge
// (the ISA files only read these structs, so not even their implicit
// constructors are emitted there).
#pragma once
#include <cstdint>

#include "../dwpw/dwpw.h"

namespace dac {
namespace tiles {

// One slice of the GEMM's K dimension, small enough that its A tile (pixels x
// kc) and the B panels it multiplies stay cache resident.
struct KBlock {
  int64_t k0;  // first row of packed B (and first column of the full A)
  int kc;      // rows in this block
  // Fused kernel only: the input channels [c0, c1) this block's depthwise
  // part covers; [c0, c0 + full) come in whole vectors of `W` lanes, the rest
  // (only in the last block) are handled one by one.
  int c0, c1, full;
};

// Packed B, for each KBlock: panels of nr output channels (the last one
// narrower, rounded up to whole vectors), each panel kc x width, row-major,
// zero past out_c. Block b starts at k0 * npad, panel j0 at j0 * kc within it.
struct PackedB {
  const float* data = nullptr;
  int64_t npad = 0;  // out_c rounded up to the vector width
};

struct Epilogue {
  const float* bias = nullptr;  // [out_c] or null
  bool clamp = false;           // ReLU / ReLU6
  float lo = 0.f, hi = 0.f;
};

// Shared by both kernels: pixels are the GEMM's M dimension, flattened over
// (batch, out_h, out_w), so a run of pixels is a run of output rows.
struct TilePlan {
  ConvGeometry g;
  const float* input = nullptr;
  const float* zeros = nullptr;  // in_c zeros: where a tap falls in the padding
  float* output = nullptr;
  PackedB b;
  Epilogue epi;
  const KBlock* blocks = nullptr;
  int nblocks = 0;
  int mc = 0;        // pixels per tile
  int64_t lda = 0;   // row stride of the A tile (largest kc)
};

struct DwPwPlan {
  TilePlan t;
  int rank = 1;
  // Depthwise weights for the whole-vector channels, [c/W][kh*kw][rank][W];
  // the remaining channels read the caller's [c*rank][kh*kw] array.
  const float* dw_packed = nullptr;
  const float* dw = nullptr;
};

// An ISA's entry point and the shapes the drivers pack for. run() computes
// output pixels [m0, m1) completely. scratch is 64-byte aligned and holds
// the tile's tap pointers (mc * kh * kw of them, rounded up to 64 bytes)
// followed by the A tile (mc * lda floats). Each *_<isa>.cc defines one.
struct DwPwIsa {
  const char* name;
  int w;   // floats per vector
  int mr;  // pixels per micro-tile
  int nr;  // output channels per micro-tile (a multiple of w)
  void (*run)(const DwPwPlan& p, int64_t m0, int64_t m1, void* scratch);
};

struct ConvIsa {
  const char* name;
  int w, mr, nr;
  void (*run)(const TilePlan& p, int64_t m0, int64_t m1, void* scratch);
};

extern const DwPwIsa kDwPwSse41, kDwPwAvx2, kDwPwAvx512, kDwPwNeon, kDwPwWasmSimd;
extern const ConvIsa kConvSse41, kConvAvx2, kConvAvx512, kConvNeon, kConvWasmSimd;

}  // namespace tiles
}  // namespace dac
