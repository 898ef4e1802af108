// What one export is, as the plugin describes it to one connection after its open:
// size, what the plugin can do, block size constraints. The driver fills an ExportInfo
// during the open call (core/plugin_call.hpp); GO/INFO/EXPORT_NAME are answered from it
// and the transmission phase validates requests against it. Nothing here is shared
// between connections: each asks the plugin for itself, as nbdkit does.
#pragma once
#include <cstdint>
#include <string>

namespace nbdd::core {

// What the plugin can do for one export (nbdkit's can_* callbacks).
struct Capabilities {
  bool can_write = true;
  bool can_flush = false;
  bool can_trim = false;
  bool can_zero = false;
  bool can_fast_zero = false;
  bool can_fua = false;
  bool can_multi_conn = false;
  bool can_cache = false;
  bool can_extents = false;
  bool is_rotational = false;
};

// Block size constraints (§9). All zero means "defaults apply; advertise nothing".
struct BlockSize {
  std::uint32_t minimum = 0;
  std::uint32_t preferred = 0;
  std::uint32_t maximum = 0;
  bool advertised() const { return minimum != 0; }
};

struct ExportInfo {
  std::string name;         // canonical: an empty request resolved by default_export
  std::string description;  // only filled when the open call asked for it
  std::uint64_t size_bytes = 0;
  Capabilities caps;
  BlockSize block_size;
};

// One entry of the plugin's list_exports answer (NBD_OPT_LIST).
struct ExportEntry {
  std::string name;
  std::string description;
};

}  // namespace nbdd::core
