#include "core/assert.hpp"

#include <cstdio>
#include <cstdlib>

namespace nbdd::core {

// stderr and abort() are the only OS contact in core/: a broken invariant must stop the
// process where it happened (the simulator reports it as a crash with its seed).
void assertion_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "nbdd: assertion failed: %s (%s:%d)\n", expr, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace nbdd::core
