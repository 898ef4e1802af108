// NBDD_ASSERT: programmer errors (driver misuse, broken internal invariant).
// Enabled in every build type: the simulator and the fuzzers depend on them firing.
// Peer errors never reach an assertion; they become replies or a close.
#pragma once

namespace nbdd::core {
[[noreturn]] void assertion_failed(const char* expr, const char* file, int line);
}

#define NBDD_ASSERT(expr) \
  ((expr) ? static_cast<void>(0) : ::nbdd::core::assertion_failed(#expr, __FILE__, __LINE__))
