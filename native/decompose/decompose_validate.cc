#include <string>

#include "decompose_internal.h"

namespace dac {
namespace detail {

bool mul_checked(int64_t a, int64_t b, int64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}

static std::string shape_text(const ConvWeights& w) {
  return "(n=" + std::to_string(w.n) + ", c=" + std::to_string(w.c) +
         ", kh=" + std::to_string(w.kh) + ", kw=" + std::to_string(w.kw) + ")";
}

Status check_weights(const char* fn, const ConvWeights& w, int64_t* total) {
  const std::string pre = std::string(fn) + ": ";
  const struct {
    const char* name;
    int value;
  } dims[] = {{"n", w.n}, {"c", w.c}, {"kh", w.kh}, {"kw", w.kw}};
  for (const auto& d : dims) {
    if (d.value < 1)
      return Status::Error(pre + "weights dimension " + d.name +
                           " must be >= 1, got " + std::to_string(d.value));
  }
  if (w.layout != WeightLayout::OIHW && w.layout != WeightLayout::HWIO)
    return Status::Error(pre + "weights layout must be OIHW (0) or HWIO (1), got " +
                         std::to_string(static_cast<int>(w.layout)));
  int64_t t = 1;
  for (const auto& d : dims) {
    if (!mul_checked(t, d.value, &t))
      return Status::Error(pre + "weights shape " + shape_text(w) +
                           " has more elements than fit in int64");
  }
  if (w.data == nullptr)
    return Status::Error(pre + "weights data is null");
  if (w.length != t)
    return Status::Error(pre + "weights length " + std::to_string(w.length) +
                         " does not match n*c*kh*kw = " + std::to_string(t) +
                         " for shape " + shape_text(w));
  *total = t;
  return Status::Ok();
}

Status check_output(const char* fn, const char* field, const float* data,
                    int64_t length, int64_t need, bool optional) {
  const std::string pre = std::string(fn) + ": ";
  if (optional && data == nullptr && length == 0) return Status::Ok();
  if (data == nullptr)
    return Status::Error(pre + field + " buffer is null (needs " +
                         std::to_string(need) + " floats)");
  if (length != need)
    return Status::Error(pre + field + " length " + std::to_string(length) +
                         " does not match the required " + std::to_string(need));
  return Status::Ok();
}

}  // namespace detail
}  // namespace dac
