// The binding contract, C++ side: every op the addon and the WASM module
// export, each a params struct (declared beside its core function) and the
// table of its fields by JS name. addon.cc reads a JS object into the struct
// through this table; the WASM module hands the table to JS, which writes
// the struct into module memory at these offsets. src/backend/binding.ts (OPS) declares
// the same ops for TypeScript and is checked against this table when a
// backend loads, so the two cannot drift apart unnoticed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <string>

#include "common/cpu_features.h"
#include "common/status.h"
#include "conv/conv.h"
#include "decompose/decompose.h"
#include "dwpw/dwpw.h"
#include "linalg/linalg.h"

namespace dac {
namespace ops {

// The codes cross to JS as numbers (src/backend/binding.ts KIND_CODES).
enum class Kind : int32_t {
  Int = 0,           // int32 (enums included)
  Number = 1,        // double
  Bool = 2,          // bool, one byte
  Floats = 3,        // float pointer and int64 length
  FloatsOrNull = 4,  // the same, or null with length 0
  Doubles = 5,       // double pointer and int64 length
  Name = 6,          // a NUL-terminated string, or null (a kernel variant)
};

struct Field {
  const char* name;       // JS property; "a.b" is property b of object a
  Kind kind;
  int32_t offset;         // of the value (of the pointer for arrays)
  int32_t length_offset;  // of the int64 length for arrays, else -1
};

struct Op {
  const char* name;  // the JS function name
  int32_t size;      // of the params struct
  const Field* fields;
  int32_t field_count;
  void (*construct)(void* where);  // a default params struct at `where`
  Status (*run)(const void* params);
};

constexpr size_t kMaxParamsSize = 256;

template <class P, Status (*F)(const P&), size_t N>
constexpr Op make_op(const char* name, const Field (&fields)[N]) {
  static_assert(sizeof(P) <= kMaxParamsSize && alignof(P) <= alignof(std::max_align_t), "params struct too large");
  return Op{name, int32_t(sizeof(P)), fields, int32_t(N), [](void* where) { new (where) P(); },
            [](const void* p) { return F(*static_cast<const P*>(p)); }};
}

#define DAC_VALUE(P, js, kind, member) \
  ::dac::ops::Field { js, ::dac::ops::Kind::kind, int32_t(offsetof(P, member)), -1 }
#define DAC_ARRAY(P, js, kind, member, length) \
  ::dac::ops::Field { js, ::dac::ops::Kind::kind, int32_t(offsetof(P, member)), int32_t(offsetof(P, length)) }
#define DAC_WEIGHTS(P)                                                                              \
  DAC_ARRAY(P, "weights", Floats, w.data, w.length), DAC_VALUE(P, "layout", Int, w.layout),        \
      DAC_VALUE(P, "n", Int, w.n), DAC_VALUE(P, "c", Int, w.c), DAC_VALUE(P, "kh", Int, w.kh),      \
      DAC_VALUE(P, "kw", Int, w.kw)
#define DAC_GEOMETRY(P)                                                                             \
  DAC_VALUE(P, "geometry.batch", Int, g.batch), DAC_VALUE(P, "geometry.inH", Int, g.in_h),         \
      DAC_VALUE(P, "geometry.inW", Int, g.in_w), DAC_VALUE(P, "geometry.inC", Int, g.in_c),        \
      DAC_VALUE(P, "geometry.kh", Int, g.kh), DAC_VALUE(P, "geometry.kw", Int, g.kw),              \
      DAC_VALUE(P, "geometry.strideH", Int, g.stride_h), DAC_VALUE(P, "geometry.strideW", Int, g.stride_w), \
      DAC_VALUE(P, "geometry.dilationH", Int, g.dilation_h),                                       \
      DAC_VALUE(P, "geometry.dilationW", Int, g.dilation_w),                                       \
      DAC_VALUE(P, "geometry.padTop", Int, g.pad_top), DAC_VALUE(P, "geometry.padLeft", Int, g.pad_left), \
      DAC_VALUE(P, "geometry.padBottom", Int, g.pad_bottom),                                       \
      DAC_VALUE(P, "geometry.padRight", Int, g.pad_right), DAC_VALUE(P, "geometry.outH", Int, g.out_h), \
      DAC_VALUE(P, "geometry.outW", Int, g.out_w), DAC_VALUE(P, "geometry.outC", Int, g.out_c)

inline constexpr Field kDacFields[] = {
    DAC_WEIGHTS(DacParams),
    DAC_VALUE(DacParams, "rank", Int, rank),
    DAC_ARRAY(DacParams, "depthwise", Floats, depthwise, depthwise_length),
    DAC_ARRAY(DacParams, "pointwise", Floats, pointwise, pointwise_length),
    DAC_ARRAY(DacParams, "singular", FloatsOrNull, singular, singular_length),
    DAC_VALUE(DacParams, "threads", Int, threads),
    DAC_VALUE(DacParams, "variant", Name, variant),
};
inline constexpr Field kSpatialFields[] = {
    DAC_WEIGHTS(SpatialParams),
    DAC_VALUE(SpatialParams, "width", Int, width),
    DAC_ARRAY(SpatialParams, "vertical", Floats, vertical, vertical_length),
    DAC_ARRAY(SpatialParams, "horizontal", Floats, horizontal, horizontal_length),
    DAC_ARRAY(SpatialParams, "singular", FloatsOrNull, singular, singular_length),
    DAC_VALUE(SpatialParams, "threads", Int, threads),
};
inline constexpr Field kChannelFields[] = {
    DAC_WEIGHTS(ChannelParams),
    DAC_VALUE(ChannelParams, "width", Int, width),
    DAC_ARRAY(ChannelParams, "first", Floats, first, first_length),
    DAC_ARRAY(ChannelParams, "second", Floats, second, second_length),
    DAC_ARRAY(ChannelParams, "singular", FloatsOrNull, singular, singular_length),
    DAC_VALUE(ChannelParams, "threads", Int, threads),
};
inline constexpr Field kDacPairEnergyFields[] = {
    DAC_WEIGHTS(DacPairEnergyParams),
    DAC_VALUE(DacPairEnergyParams, "rank", Int, rank),
    DAC_ARRAY(DacPairEnergyParams, "depthwise", Floats, depthwise, depthwise_length),
    DAC_ARRAY(DacPairEnergyParams, "pointwise", Floats, pointwise, pointwise_length),
    DAC_ARRAY(DacPairEnergyParams, "tapScale", Doubles, tap_scale, tap_scale_length),
    DAC_ARRAY(DacPairEnergyParams, "channelScale", Doubles, channel_scale, channel_scale_length),
    DAC_ARRAY(DacPairEnergyParams, "energy", Doubles, energy, energy_length),
    DAC_ARRAY(DacPairEnergyParams, "approxEnergy", Doubles, approx_energy, approx_energy_length),
    DAC_ARRAY(DacPairEnergyParams, "residual", Doubles, residual, residual_length),
    DAC_VALUE(DacPairEnergyParams, "threads", Int, threads),
};
inline constexpr Field kDwPwFields[] = {
    DAC_GEOMETRY(DwPwParams),
    DAC_VALUE(DwPwParams, "rank", Int, rank),
    DAC_ARRAY(DwPwParams, "input", Floats, input, input_length),
    DAC_ARRAY(DwPwParams, "depthwise", Floats, depthwise, depthwise_length),
    DAC_ARRAY(DwPwParams, "pointwise", Floats, pointwise, pointwise_length),
    DAC_ARRAY(DwPwParams, "bias", FloatsOrNull, bias, bias_length),
    DAC_ARRAY(DwPwParams, "output", Floats, output, output_length),
    DAC_VALUE(DwPwParams, "activation", Int, activation),
    DAC_VALUE(DwPwParams, "threads", Int, threads),
    DAC_VALUE(DwPwParams, "variant", Name, variant),
};
inline constexpr Field kConv2DFields[] = {
    DAC_GEOMETRY(Conv2DParams),
    DAC_ARRAY(Conv2DParams, "input", Floats, input, input_length),
    DAC_ARRAY(Conv2DParams, "weights", Floats, weights, weights_length),
    DAC_ARRAY(Conv2DParams, "bias", FloatsOrNull, bias, bias_length),
    DAC_ARRAY(Conv2DParams, "output", Floats, output, output_length),
    DAC_VALUE(Conv2DParams, "activation", Int, activation),
    DAC_VALUE(Conv2DParams, "threads", Int, threads),
    DAC_VALUE(Conv2DParams, "variant", Name, variant),
};
inline constexpr Field kGemmFields[] = {
    DAC_VALUE(GemmParams, "m", Int, m),
    DAC_VALUE(GemmParams, "n", Int, n),
    DAC_VALUE(GemmParams, "k", Int, k),
    DAC_ARRAY(GemmParams, "a", Doubles, a, a_length),
    DAC_VALUE(GemmParams, "transA", Bool, trans_a),
    DAC_ARRAY(GemmParams, "b", Doubles, b, b_length),
    DAC_VALUE(GemmParams, "transB", Bool, trans_b),
    DAC_ARRAY(GemmParams, "c", Doubles, c, c_length),
    DAC_VALUE(GemmParams, "threads", Int, threads),
};
inline constexpr Field kCholeskyFields[] = {
    DAC_VALUE(CholeskyParams, "m", Int, m),
    DAC_ARRAY(CholeskyParams, "a", Doubles, a, a_length),
    DAC_VALUE(CholeskyParams, "ridge", Number, ridge),
};
inline constexpr Field kTriangularSolveFields[] = {
    DAC_VALUE(TriangularSolveParams, "m", Int, m),
    DAC_ARRAY(TriangularSolveParams, "l", Doubles, l, l_length),
    DAC_VALUE(TriangularSolveParams, "k", Int, k),
    DAC_VALUE(TriangularSolveParams, "rows", Int, rows),
    DAC_ARRAY(TriangularSolveParams, "b", Doubles, b, b_length),
    DAC_VALUE(TriangularSolveParams, "transpose", Bool, transpose),
};
inline constexpr Field kSymmetricEigenvaluesFields[] = {
    DAC_VALUE(SymmetricEigenvaluesParams, "m", Int, m),
    DAC_VALUE(SymmetricEigenvaluesParams, "count", Int, count),
    DAC_ARRAY(SymmetricEigenvaluesParams, "a", Doubles, a, a_length),
    DAC_ARRAY(SymmetricEigenvaluesParams, "values", Doubles, values, values_length),
    DAC_VALUE(SymmetricEigenvaluesParams, "threads", Int, threads),
    DAC_VALUE(SymmetricEigenvaluesParams, "overwrite", Bool, overwrite),
};

#undef DAC_VALUE
#undef DAC_ARRAY
#undef DAC_WEIGHTS
#undef DAC_GEOMETRY

inline const Op kDecomposeDac = make_op<DacParams, decompose_dac>("decomposeDac", kDacFields);
inline const Op kDecomposeSpatial = make_op<SpatialParams, decompose_spatial>("decomposeSpatial", kSpatialFields);
inline const Op kDecomposeChannel = make_op<ChannelParams, decompose_channel>("decomposeChannel", kChannelFields);
inline const Op kDacPairEnergy =
    make_op<DacPairEnergyParams, dac_pair_energy>("dacPairEnergy", kDacPairEnergyFields);
inline const Op kDwPw = make_op<DwPwParams, dwpw_forward>("dwpw", kDwPwFields);
inline const Op kConv2D = make_op<Conv2DParams, conv2d_forward>("conv2d", kConv2DFields);
inline const Op kGemm = make_op<GemmParams, gemm>("gemm", kGemmFields);
inline const Op kCholesky = make_op<CholeskyParams, cholesky>("cholesky", kCholeskyFields);
inline const Op kTriangularSolve =
    make_op<TriangularSolveParams, triangular_solve>("triangularSolve", kTriangularSolveFields);
inline const Op kSymmetricEigenvalues =
    make_op<SymmetricEigenvaluesParams, symmetric_eigenvalues>("symmetricEigenvalues", kSymmetricEigenvaluesFields);

// Every op, in the order the WASM module numbers them (dac_run).
inline const Op* const kOps[] = {&kDecomposeDac, &kDecomposeSpatial,    &kDecomposeChannel,
                                 &kDwPw,         &kConv2D,              &kGemm,
                                 &kCholesky,     &kTriangularSolve,     &kSymmetricEigenvalues,
                                 &kDacPairEnergy};
inline constexpr int kOpCount = int(sizeof(kOps) / sizeof(kOps[0]));

// One op's table as text, "name size;field kind offset length_offset;...",
// which JS parses and checks against its own description.
inline std::string describe(const Op& op) {
  std::string out = std::string(op.name) + " " + std::to_string(op.size);
  for (int i = 0; i < op.field_count; ++i) {
    const Field& f = op.fields[i];
    out += ";" + std::string(f.name) + " " + std::to_string(int(f.kind)) + " " + std::to_string(f.offset) + " " +
           std::to_string(f.length_offset);
  }
  return out;
}

// The kernel families with variants, each "family=ref,...,best" (the
// default last), joined by ';'.
inline std::string kernel_variants() {
  return std::string("dwpw=") + dwpw_variants() + ";conv2d=" + conv2d_variants() + ";dac=" + decompose_dac_variants();
}

// The instruction sets this build runs with on this CPU, e.g.
// "x86_64 avx512f avx2 fma sse4.1", "aarch64 neon", "wasm32 simd128".
inline std::string isa_description() {
  const CpuFeatures& f = cpu_features();
#if defined(__x86_64__)
  std::string isa = "x86_64";
#elif defined(__aarch64__)
  std::string isa = "aarch64";
#elif defined(__wasm32__)
  std::string isa = "wasm32";
#else
  std::string isa = "other";
#endif
  if (f.avx512f) isa += " avx512f";
  if (f.avx2_fma) isa += " avx2 fma";
  if (f.sse41) isa += " sse4.1";
  if (f.neon) isa += " neon";
  if (f.wasm_simd) isa += " simd128";
  return isa;
}

}  // namespace ops
}  // namespace dac
