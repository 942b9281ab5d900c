// What the standalone native tests share: pass/fail counting and a small
// deterministic generator (xorshift), so every run sees the same inputs.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace dac_test {

inline int g_passed = 0, g_failed = 0;

inline void report(bool ok, const std::string& name, const std::string& detail = "") {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    std::printf("FAIL %s %s\n", name.c_str(), detail.c_str());
  }
}

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  float next() {  // uniform in [-1, 1)
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return static_cast<float>((s >> 40) * (1.0 / (1ull << 24))) * 2.f - 1.f;
  }
  std::vector<float> vec(int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = next();
    return v;
  }
};

}  // namespace dac_test
