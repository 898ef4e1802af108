// What the server offers: exports by name, each with its size and what the plugin can do.
// The driver builds it once at start-up (from the plugin's list_exports and can_* answers)
// and every Connection reads it; GO/INFO/LIST are answered from here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

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
  std::string name;
  std::string description;
  std::uint64_t size_bytes = 0;
  Capabilities caps;
  BlockSize block_size;
};

struct ExportCatalog {
  std::vector<ExportInfo> exports;
  // Which export an empty name ("") selects; must name one in `exports`.
  std::string default_export;
  // -r: every export is read-only whatever the plugin says.
  bool read_only = false;
  // NBD_OPT_LIST may reveal the names (nbdkit always does).
  bool list_allowed = true;

  const ExportInfo* find(std::string_view name) const {
    if (name.empty()) name = default_export;
    for (const auto& e : exports)
      if (e.name == name) return &e;
    return nullptr;
  }
};

}  // namespace nbdd::core
