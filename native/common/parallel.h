// A minimal fork-join helper: the work here is a few coarse, independent
// chunks (layers, channels, output rows), so a persistent pool buys nothing.
#pragma once
#include <cstdint>
#include <functional>

namespace dac {

// Runs fn(begin, end) over [0, count) split into at most `threads` contiguous
// ranges; threads <= 1 (and every WASM build) runs inline on the caller.
void parallel_for(int64_t count, int threads,
                  const std::function<void(int64_t, int64_t)>& fn);

// Number of hardware threads (>= 1).
int hardware_threads();

}  // namespace dac
