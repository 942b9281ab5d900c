#include "parallel.h"

#include <algorithm>
#include <thread>
#include <vector>

namespace dac {

int hardware_threads() {
#if defined(__EMSCRIPTEN__)
  return 1;
#else
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
#endif
}

void parallel_for(int64_t count, int threads,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (count <= 0) return;
#if defined(__EMSCRIPTEN__)
  threads = 1;
#endif
  int64_t workers = std::min<int64_t>(std::max(threads, 1), count);
  if (workers <= 1) {
    fn(0, count);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(workers - 1));
  int64_t chunk = (count + workers - 1) / workers;
  for (int64_t w = 1; w < workers; ++w) {
    int64_t b = w * chunk, e = std::min(count, b + chunk);
    if (b >= e) break;
    pool.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(0, std::min(count, chunk));
  for (auto& t : pool) t.join();
}

}  // namespace dac
