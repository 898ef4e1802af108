// nbdkit's opaque list types, as nbdd defines them: what a plugin's extents() and
// list_exports() fill through nbdkit_add_extent/nbdkit_add_export, and what filters read
// with nbdkit_get_extent/nbdkit_get_export. Internal to plugins/nbdkit.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "plugins/nbdkit/nbdkit_headers.hpp"

struct nbdkit_extents {
  std::vector<nbdkit_extent> list;
  std::uint64_t start = 0;
  std::uint64_t end = 0;  // one past the range; extents beyond it are dropped
  std::int64_t next = -1;  // where the next extent must start (-1: none added yet)

  void reset(std::uint64_t range_start, std::uint64_t range_end) {
    list.clear();  // keeps the capacity: the adaptor reuses one per thread
    start = range_start;
    end = range_end;
    next = -1;
  }
};

struct nbdkit_exports {
  struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
  };
  // malloc'ed C strings, so nbdkit_get_export hands out pointers that stay put as the list
  // grows (description may be null).
  struct Entry {
    std::unique_ptr<char, FreeDeleter> name;
    std::unique_ptr<char, FreeDeleter> description;
  };
  std::vector<Entry> list;
  bool use_default = false;
};

namespace nbdd::plugin::nbdkit_abi {
// nbdkit's caps: a plugin adding more is told so (exports) or silently capped (extents).
inline constexpr std::size_t extents_max = 1024 * 1024;
inline constexpr std::size_t exports_max = 10000;
inline constexpr std::size_t export_string_max = 4096;
}  // namespace nbdd::plugin::nbdkit_abi
