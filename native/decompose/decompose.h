// Data-free low-rank decompositions of one convolution's weights.
//
// Canonical shapes (all row-major float32):
//   original W  : OIHW [n][c][kh][kw]  or  HWIO [kh][kw][c][n]
//   DAC         : depthwise [c*r][kh*kw] (channel i's filters at rows i*r .. i*r+r-1),
//                 pointwise [n][c*r], singular [c][min(n, kh*kw)] (all of them, descending)
//   spatial     : vertical   [width][c][kh]   (a kh x 1 conv, c -> width)
//                 horizontal [n][width][kw]   (a 1 x kw conv, width -> n)
//                 singular   [min(c*kh, n*kw)]
//   channel     : first  [width][c][kh][kw]   (a kh x kw conv, c -> width)
//                 second [n][width]           (a 1x1 conv, width -> n)
//                 singular [min(n, c*kh*kw)]
//
// Sign convention (so every backend gives the same weights, not just the same
// product): the first-stage filter of each component (DAC: the right singular
// vector; spatial: the vertical filter; channel: the first-stage filter) has
// its largest-magnitude entry positive, ties going to the lowest index.
// Components whose singular value is <= kNullTolerance * sigma_max of their
// matrix (or a matrix that is all zero) get all-zero filters in both stages:
// their directions are arbitrary, and zeros are exact and deterministic.
#pragma once
#include <cstdint>

#include "../common/status.h"

namespace dac {

enum class WeightLayout : int { OIHW = 0, HWIO = 1 };

constexpr double kNullTolerance = 1e-7;

struct ConvWeights {
  const float* data = nullptr;
  int64_t length = 0;  // number of floats at data; checked against the shape
  WeightLayout layout = WeightLayout::OIHW;
  int n = 0, c = 0, kh = 0, kw = 0;
};

struct DacParams {
  ConvWeights w;
  int rank = 0;  // 1 <= rank <= min(n, kh*kw)
  float* depthwise = nullptr;
  int64_t depthwise_length = 0;
  float* pointwise = nullptr;
  int64_t pointwise_length = 0;
  float* singular = nullptr;  // may be null when not wanted
  int64_t singular_length = 0;
  int threads = 1;  // channels are split across threads
  // Kernel variant by name ("ref", "avx2", "wasm_simd"), or null for the
  // best this CPU runs.
  const char* variant = nullptr;
};

struct SpatialParams {
  ConvWeights w;
  int width = 0;  // 1 <= width <= min(c*kh, n*kw)
  float* vertical = nullptr;
  int64_t vertical_length = 0;
  float* horizontal = nullptr;
  int64_t horizontal_length = 0;
  float* singular = nullptr;
  int64_t singular_length = 0;
  int threads = 1;
};

struct ChannelParams {
  ConvWeights w;
  int width = 0;  // 1 <= width <= min(n, c*kh*kw)
  float* first = nullptr;
  int64_t first_length = 0;
  float* second = nullptr;
  int64_t second_length = 0;
  float* singular = nullptr;
  int64_t singular_length = 0;
  int threads = 1;
};

// How far a DAC pair is from the conv it replaces, per output channel j, with
// W'[j,i,:] = sum_k pointwise[j][i*r+k] depthwise[i*r+k][:] (the single conv
// the pair equals), in double:
//   energy[j]        = sum_{i,t} (channel_scale[i] tap_scale[t] W[j,i,t])^2
//   approx_energy[j] = the same of W'
//   residual[j]      = sum_{i,t} (W[j,i,t] - W'[j,i,t])^2, unscaled
// The planner's variance correction needs the first two under a diagonal
// input covariance (scales 1 for the plain norm), the report the last; one
// pass over the weights gives all three, output channels over threads.
struct DacPairEnergyParams {
  ConvWeights w;
  int rank = 0;  // >= 1
  const float* depthwise = nullptr;  // [c*rank][kh*kw], float32 as stored: widened as read
  int64_t depthwise_length = 0;
  const float* pointwise = nullptr;  // [n][c*rank]
  int64_t pointwise_length = 0;
  const double* tap_scale = nullptr;  // [kh*kw]
  int64_t tap_scale_length = 0;
  const double* channel_scale = nullptr;  // [c]
  int64_t channel_scale_length = 0;
  double* energy = nullptr;  // [n] each
  int64_t energy_length = 0;
  double* approx_energy = nullptr;
  int64_t approx_energy_length = 0;
  double* residual = nullptr;
  int64_t residual_length = 0;
  int threads = 1;
};

// Each checks every length against the shape before touching memory.
Status decompose_dac(const DacParams& p);
Status decompose_spatial(const SpatialParams& p);
Status decompose_channel(const ChannelParams& p);
Status dac_pair_energy(const DacPairEnergyParams& p);

// The DAC kernel variants this build and CPU can run, comma-separated, "ref"
// first and the default (the best) last.
const char* decompose_dac_variants();

// Many DAC layers in one call (a whole model): layers are spread over
// `threads` workers; each layer's own `threads` field is ignored. Stops at
// and reports the first failing layer (by index).
Status decompose_dac_batch(const DacParams* layers, int count, int threads);

}  // namespace dac
