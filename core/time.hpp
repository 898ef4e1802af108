// Monotonic time as the driver passes it in. The core never reads a clock:
// every handle() gets `now`, and timers leave as Connection::deadline().
#pragma once
#include <compare>
#include <cstdint>

namespace nbdd::core {

struct Duration {
  std::uint64_t ns = 0;
  static constexpr Duration from_ms(std::uint64_t ms) { return {ms * 1'000'000}; }
  static constexpr Duration from_s(std::uint64_t s) { return {s * 1'000'000'000}; }
  auto operator<=>(const Duration&) const = default;
};

struct Instant {
  std::uint64_t ns = 0;  // origin chosen by the driver
  auto operator<=>(const Instant&) const = default;
  friend constexpr Instant operator+(Instant at, Duration d) { return {at.ns + d.ns}; }
  friend constexpr Duration operator-(Instant a, Instant b) { return {a.ns - b.ns}; }
};

}  // namespace nbdd::core
