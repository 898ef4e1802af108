// The plugin calls the core asks its driver to run. The core never calls a plugin:
// it emits action::CallPlugin and later receives input::PluginDone for the same slot.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/export_info.hpp"

namespace nbdd::core {

// Index of a request slot (not the cookie). Lifecycle calls use lifecycle_slot.
enum class SlotId : std::uint32_t {};
inline constexpr SlotId lifecycle_slot{0xffffffffu};

// Lifecycle calls (on lifecycle_slot, one at a time per connection):
//   preconnect    right after accept, before the greeting; an errno refuses the client
//   list_exports  for each NBD_OPT_LIST
//   open          for each INFO/GO/EXPORT_NAME: the plugin's default_export (when the
//                 client asked for ""), open, then get_size, block_size, every can_*
//                 and (when asked) export_description, all for this connection
//   close         once for each open that succeeded
// Data calls (on a request slot): pread ... extents.
enum class CallKind : std::uint8_t {
  preconnect,
  list_exports,
  open,
  close,
  pread,
  pwrite,
  flush,
  trim,
  zero,
  cache,
  extents,
};
inline bool is_lifecycle(CallKind kind) { return kind <= CallKind::close; }
const char* to_string(CallKind kind);

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
  // preconnect, list_exports, open: whether the server serves read-only (-r).
  bool readonly = false;
  // open: the export name the client asked for ("" = the plugin's default export, which
  // the driver resolves with default_export before open). Core-owned until PluginDone.
  std::string_view export_name;
  // open: where the driver describes the export once open and every query succeeded
  // (core-owned, valid until PluginDone): the canonical name, the size, the capabilities
  // after nbdkit's rules (can_write false when readonly; trim/zero/fua only if writable;
  // fast_zero only with zero), the block size, and the description if want_description.
  // If open succeeds but a later query fails, the driver closes the handle itself and
  // reports the errno: PluginDone{err != 0} always means "no handle is open".
  ExportInfo* info = nullptr;
  bool want_description = false;
  // list_exports: where the driver appends the exports (core-owned, emptied before the
  // call), at most exports_max of them; a default-export entry already resolved to its name.
  std::vector<ExportEntry>* exports = nullptr;
  std::uint32_t exports_max = 0;
};

}  // namespace nbdd::core
