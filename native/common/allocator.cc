#include "allocator.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace dac {

bool map_large_allocations(std::size_t bytes) {
#if defined(__GLIBC__)
  // Setting the threshold also turns off its sliding.
  return bytes <= std::size_t(1) << 30 && mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes)) == 1;
#else
  (void)bytes;
  return false;
#endif
}

}  // namespace dac
