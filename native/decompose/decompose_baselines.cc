// Baselines: spatial (Jaderberg et al.: kh x 1 then 1 x kw) and channel
// (Zhang et al.: kh x kw with fewer filters then 1x1) decompositions. Each is
// one truncated SVD of the whole weight tensor, rearranged.
#include <algorithm>
#include <string>

#include "decompose_internal.h"

namespace dac {

using detail::TruncatedSvd;
using Eigen::MatrixXd;

namespace {

Status check_width(const char* fn, int width, int64_t max, const char* max_text) {
  if (width < 1 || width > max)
    return Status::Error(std::string(fn) + ": width " + std::to_string(width) +
                         " is out of range [1, " + std::to_string(max) + "] (" + max_text + ")");
  return Status::Ok();
}

}  // namespace

Status decompose_spatial(const SpatialParams& p) {
  const char* fn = "decompose_spatial";
  int64_t total = 0;
  Status s = detail::check_weights(fn, p.w, &total);
  if (!s.ok) return s;
  const int64_t n = p.w.n, c = p.w.c, kh = p.w.kh, kw = p.w.kw;
  const int64_t rows = c * kh, cols = n * kw, m = std::min(rows, cols);
  s = check_width(fn, p.width, m, "min(c*kh, n*kw)");
  if (!s.ok) return s;
  const int64_t w = p.width;  // w <= min(c*kh, n*kw) keeps both products below total
  s = detail::check_output(fn, "vertical", p.vertical, p.vertical_length, w * c * kh, false);
  if (!s.ok) return s;
  s = detail::check_output(fn, "horizontal", p.horizontal, p.horizontal_length, n * w * kw, false);
  if (!s.ok) return s;
  s = detail::check_output(fn, "singular", p.singular, p.singular_length, m, true);
  if (!s.ok) return s;

  return detail::guarded(std::string(fn) + ": ", [&]() -> Status {
    // A[(i,h)][(o,x)] = W[o][i][h][x]: its left vectors are kh x 1 filters
    // over c channels, its right vectors 1 x kw filters per output.
    MatrixXd A(rows, cols);
    for (int64_t o = 0; o < n; ++o)
      for (int64_t i = 0; i < c; ++i)
        for (int64_t h = 0; h < kh; ++h)
          for (int64_t x = 0; x < kw; ++x)
            A(i * kh + h, o * kw + x) = p.w.data[detail::weight_index(p.w, o, i, h, x)];
    TruncatedSvd svd;
    Status st = svd.compute(A, p.width, false, p.threads);
    if (!st.ok) return Status::Error(std::string(fn) + ": " + st.message);
    for (int64_t j = 0; j < w; ++j)
      for (int64_t r = 0; r < rows; ++r) p.vertical[j * rows + r] = float(svd.first(r, j));
    for (int64_t o = 0; o < n; ++o)
      for (int64_t j = 0; j < w; ++j)
        for (int64_t x = 0; x < kw; ++x)
          p.horizontal[(o * w + j) * kw + x] = float(svd.second(o * kw + x, j));
    if (p.singular != nullptr)
      for (int64_t j = 0; j < m; ++j) p.singular[j] = float(svd.sigma(j));
    return Status::Ok();
  });
}

Status decompose_channel(const ChannelParams& p) {
  const char* fn = "decompose_channel";
  int64_t total = 0;
  Status s = detail::check_weights(fn, p.w, &total);
  if (!s.ok) return s;
  const int64_t n = p.w.n, c = p.w.c, kh = p.w.kh, kw = p.w.kw;
  const int64_t cols = c * kh * kw, m = std::min(n, cols);
  s = check_width(fn, p.width, m, "min(n, c*kh*kw)");
  if (!s.ok) return s;
  const int64_t w = p.width;
  s = detail::check_output(fn, "first", p.first, p.first_length, w * cols, false);
  if (!s.ok) return s;
  s = detail::check_output(fn, "second", p.second, p.second_length, n * w, false);
  if (!s.ok) return s;
  s = detail::check_output(fn, "singular", p.singular, p.singular_length, m, true);
  if (!s.ok) return s;

  return detail::guarded(std::string(fn) + ": ", [&]() -> Status {
    // A[o][(i,h,x)] = W[o][i][h][x]: right vectors are full kh x kw filters.
    MatrixXd A(n, cols);
    if (p.w.layout == WeightLayout::OIHW) {
      A = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
              p.w.data, n, cols)
              .cast<double>();
    } else {
      for (int64_t i = 0; i < c; ++i)
        for (int64_t h = 0; h < kh; ++h)
          for (int64_t x = 0; x < kw; ++x)
            for (int64_t o = 0; o < n; ++o)
              A(o, (i * kh + h) * kw + x) = p.w.data[detail::weight_index(p.w, o, i, h, x)];
    }
    TruncatedSvd svd;
    Status st = svd.compute(A, p.width, true, p.threads);
    if (!st.ok) return Status::Error(std::string(fn) + ": " + st.message);
    for (int64_t j = 0; j < w; ++j)
      for (int64_t q = 0; q < cols; ++q) p.first[j * cols + q] = float(svd.first(q, j));
    for (int64_t o = 0; o < n; ++o)
      for (int64_t j = 0; j < w; ++j) p.second[o * w + j] = float(svd.second(o, j));
    if (p.singular != nullptr)
      for (int64_t j = 0; j < m; ++j) p.singular[j] = float(svd.sigma(j));
    return Status::Ok();
  });
}

}  // namespace dac
