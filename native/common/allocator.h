// Process-wide allocator policy, for an application that owns its process
// (the zoo command). The library itself never calls it.
#pragma once
#include <cstddef>

namespace dac {

// From now on, blocks of at least `bytes` get mappings of their own, given
// back to the system when freed. glibc starts at 128 KiB but raises its
// threshold to the size of each mapped block it frees (up to 32 MiB), after
// which model-sized weight buffers live in its heaps, whose freed fragments
// it seldom returns: over a zoo run that was ~100 MiB of RSS per worker.
// False where the C library has no such setting (musl, macOS, Windows, WASM).
bool map_large_allocations(std::size_t bytes);

}  // namespace dac
