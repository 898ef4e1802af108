// The only clock the daemon reads: std::chrono::steady_clock as core::Instant.
// The core never reads a clock; the driver passes `now` in and arms timers from deadline().
#pragma once
#include <chrono>

#include "core/time.hpp"

namespace nbdd::net {

inline core::Instant now() {
  const auto since_epoch = std::chrono::steady_clock::now().time_since_epoch();
  return core::Instant{static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch).count())};
}

inline std::chrono::steady_clock::time_point to_time_point(core::Instant at) {
  return std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::nanoseconds(static_cast<std::int64_t>(at.ns))));
}

}  // namespace nbdd::net
