// The plugin calls the core asks its driver to run. The core never calls a plugin:
// it emits action::CallPlugin and later receives input::PluginDone for the same slot.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace nbdd::core {

// Index of a request slot (not the cookie). Lifecycle calls use lifecycle_slot.
enum class SlotId : std::uint32_t {};
inline constexpr SlotId lifecycle_slot{0xffffffffu};

enum class CallKind : std::uint8_t { open, close, pread, pwrite, flush, trim, zero, cache, extents };

// Flags passed to data calls (nbdkit's NBDKIT_FLAG_*).
namespace call_flag {
inline constexpr std::uint32_t fua = 1 << 0;        // write must be durable before success
inline constexpr std::uint32_t may_trim = 1 << 1;   // zero: may punch holes (no NO_HOLE)
inline constexpr std::uint32_t fast_zero = 1 << 2;  // zero: fail ENOTSUP unless fast
inline constexpr std::uint32_t req_one = 1 << 3;    // extents: one extent is enough
}  // namespace call_flag

// One extent reported by a plugin's extents call (type: nbd::state_hole | state_zero).
struct Extent {
  std::uint64_t offset;
  std::uint64_t length;
  std::uint32_t type;
};

struct PluginCall {
  CallKind kind = CallKind::pread;
  std::uint64_t offset = 0;
  std::uint64_t count = 0;
  std::uint32_t flags = 0;
  // pread: destination of exactly `count` bytes. pwrite: the `count` bytes to write.
  // Core-owned; valid until the matching PluginDone arrives, even after a forced close.
  std::span<std::byte> buffer;
  // extents: where the driver appends extents (core-owned, emptied before the call).
  // The driver stops appending at extents_max entries.
  std::vector<Extent>* extents = nullptr;
  std::uint32_t extents_max = 0;
  // open: which export, and whether the connection is read-only.
  std::string_view export_name;
  bool readonly = false;
};

}  // namespace nbdd::core
