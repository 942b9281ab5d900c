// WASM entry points: flat C functions over the same core as the addon.
// Emscripten without BigInt cannot pass int64, so lengths cross as int32
// (wasm32 memory holds < 2^31 floats anyway) and are widened here. Shapes
// that do not fit one call block live in an int32 array in module memory.
#include <emscripten/emscripten.h>

#include <cstdint>
#include <string>

#include "../native/common/cpu_features.h"
#include "../native/common/version.h"
#include "../native/conv/conv.h"
#include "../native/decompose/decompose.h"
#include "../native/dwpw/dwpw.h"
#include "../native/linalg/linalg.h"

namespace {

std::string g_last_error;

int Report(const dac::Status& s) {
  if (s.ok) return 0;
  g_last_error = s.message;
  return 1;
}

// Layer block: [layout, n, c, kh, kw]
dac::ConvWeights Weights(const int32_t* block, const float* data, int32_t length) {
  dac::ConvWeights w;
  w.data = data;
  w.length = length;
  w.layout = static_cast<dac::WeightLayout>(block[0]);
  w.n = block[1];
  w.c = block[2];
  w.kh = block[3];
  w.kw = block[4];
  return w;
}

// Geometry block: the 17 fields of dac::ConvGeometry in declaration order.
dac::ConvGeometry Geometry(const int32_t* b) {
  dac::ConvGeometry g;
  g.batch = b[0]; g.in_h = b[1]; g.in_w = b[2]; g.in_c = b[3];
  g.kh = b[4]; g.kw = b[5];
  g.stride_h = b[6]; g.stride_w = b[7];
  g.dilation_h = b[8]; g.dilation_w = b[9];
  g.pad_top = b[10]; g.pad_left = b[11]; g.pad_bottom = b[12]; g.pad_right = b[13];
  g.out_h = b[14]; g.out_w = b[15]; g.out_c = b[16];
  return g;
}

const char* Variant(const char* v) { return (v && *v) ? v : nullptr; }

}  // namespace

extern "C" {

EMSCRIPTEN_KEEPALIVE const char* dac_last_error() { return g_last_error.c_str(); }
EMSCRIPTEN_KEEPALIVE const char* dac_version() { return DAC_CORE_VERSION; }
EMSCRIPTEN_KEEPALIVE int dac_simd128() { return dac::cpu_features().wasm_simd ? 1 : 0; }
EMSCRIPTEN_KEEPALIVE const char* dac_dwpw_variant() { return dac::dwpw_best_variant(); }
EMSCRIPTEN_KEEPALIVE const char* dac_dwpw_variants() { return dac::dwpw_available_variants(); }
EMSCRIPTEN_KEEPALIVE const char* dac_conv2d_variant() { return dac::conv2d_best_variant(); }
EMSCRIPTEN_KEEPALIVE const char* dac_conv2d_variants() { return dac::conv2d_available_variants(); }

EMSCRIPTEN_KEEPALIVE int dac_decompose_dac(const int32_t* block, const float* w, int32_t w_len, int32_t rank,
                                           float* dw, int32_t dw_len, float* pw, int32_t pw_len,
                                           float* sv, int32_t sv_len) {
  dac::DacParams p;
  p.w = Weights(block, w, w_len);
  p.rank = rank;
  p.depthwise = dw; p.depthwise_length = dw_len;
  p.pointwise = pw; p.pointwise_length = pw_len;
  p.singular = sv; p.singular_length = sv_len;
  return Report(dac::decompose_dac(p));
}

EMSCRIPTEN_KEEPALIVE int dac_decompose_spatial(const int32_t* block, const float* w, int32_t w_len, int32_t width,
                                               float* v, int32_t v_len, float* h, int32_t h_len,
                                               float* sv, int32_t sv_len) {
  dac::SpatialParams p;
  p.w = Weights(block, w, w_len);
  p.width = width;
  p.vertical = v; p.vertical_length = v_len;
  p.horizontal = h; p.horizontal_length = h_len;
  p.singular = sv; p.singular_length = sv_len;
  return Report(dac::decompose_spatial(p));
}

EMSCRIPTEN_KEEPALIVE int dac_decompose_channel(const int32_t* block, const float* w, int32_t w_len, int32_t width,
                                               float* f, int32_t f_len, float* s, int32_t s_len,
                                               float* sv, int32_t sv_len) {
  dac::ChannelParams p;
  p.w = Weights(block, w, w_len);
  p.width = width;
  p.first = f; p.first_length = f_len;
  p.second = s; p.second_length = s_len;
  p.singular = sv; p.singular_length = sv_len;
  return Report(dac::decompose_channel(p));
}

EMSCRIPTEN_KEEPALIVE int dac_dwpw(const int32_t* geometry, int32_t rank, const float* in, int32_t in_len,
                                  const float* dw, int32_t dw_len, const float* pw, int32_t pw_len,
                                  const float* bias, int32_t bias_len, float* out, int32_t out_len,
                                  int32_t activation, const char* variant) {
  dac::DwPwParams p;
  p.g = Geometry(geometry);
  p.rank = rank;
  p.input = in; p.input_length = in_len;
  p.depthwise = dw; p.depthwise_length = dw_len;
  p.pointwise = pw; p.pointwise_length = pw_len;
  p.bias = bias; p.bias_length = bias_len;
  p.output = out; p.output_length = out_len;
  p.activation = static_cast<dac::Activation>(activation);
  const char* v = Variant(variant);
  return Report(v ? dac::dwpw_forward_variant(p, v) : dac::dwpw_forward(p));
}

EMSCRIPTEN_KEEPALIVE int dac_conv2d(const int32_t* geometry, const float* in, int32_t in_len,
                                    const float* w, int32_t w_len, const float* bias, int32_t bias_len,
                                    float* out, int32_t out_len, int32_t activation, const char* variant) {
  dac::Conv2DParams p;
  p.g = Geometry(geometry);
  p.input = in; p.input_length = in_len;
  p.weights = w; p.weights_length = w_len;
  p.bias = bias; p.bias_length = bias_len;
  p.output = out; p.output_length = out_len;
  p.activation = static_cast<dac::Activation>(activation);
  const char* v = Variant(variant);
  return Report(v ? dac::conv2d_forward_variant(p, v) : dac::conv2d_forward(p));
}

// dims: [m, n, k, transA, transB]
EMSCRIPTEN_KEEPALIVE int dac_gemm(const int32_t* dims, const double* a, int32_t a_len, const double* b,
                                  int32_t b_len, double* c, int32_t c_len) {
  dac::GemmParams p;
  p.m = dims[0]; p.n = dims[1]; p.k = dims[2];
  p.trans_a = dims[3] != 0; p.trans_b = dims[4] != 0;
  p.a = a; p.a_length = a_len;
  p.b = b; p.b_length = b_len;
  p.c = c; p.c_length = c_len;
  return Report(dac::gemm(p));
}

EMSCRIPTEN_KEEPALIVE int dac_cholesky(int32_t m, double* a, int32_t a_len, double ridge) {
  dac::CholeskyParams p;
  p.m = m;
  p.a = a; p.a_length = a_len;
  p.ridge = ridge;
  return Report(dac::cholesky(p));
}

// dims: [m, k, rows, transpose]
EMSCRIPTEN_KEEPALIVE int dac_triangular_solve(const int32_t* dims, const double* l, int32_t l_len, double* b,
                                              int32_t b_len) {
  dac::TriangularSolveParams p;
  p.m = dims[0]; p.k = dims[1]; p.rows = dims[2];
  p.transpose = dims[3] != 0;
  p.l = l; p.l_length = l_len;
  p.b = b; p.b_length = b_len;
  return Report(dac::triangular_solve(p));
}

EMSCRIPTEN_KEEPALIVE int dac_symmetric_eigenvalues(int32_t m, const double* a, int32_t a_len, double* values,
                                                   int32_t values_len) {
  dac::SymmetricEigenvaluesParams p;
  p.m = m;
  p.a = a; p.a_length = a_len;
  p.values = values; p.values_length = values_len;
  return Report(dac::symmetric_eigenvalues(p));
}

}  // extern "C"
