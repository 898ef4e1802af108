// What a client is served, read two ways so tests can compare them: by nbdkit itself
// (`nbdkit -s [--filter=...] PLUGIN ARGS...` through libnbd) and by nbdd's plugin host running
// the same plugin (and filters) from the same .so files. Size, every byte, the export flags,
// the block size constraints and the allocation extents.
#pragma once
#include <gtest/gtest.h>
#include <libnbd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "plugins/loader.hpp"
#include "plugins/nbdkit/connection_events.hpp"
#include "plugins/nbdkit/filtered_plugin.hpp"
#include "plugins/nbdkit/nbdkit_plugin_adaptor.hpp"
#include "tests/plugins/host_harness.hpp"

namespace nbdd::test {

// One command line: filters (outermost first), a plugin and its arguments.
struct Served {
  std::uint64_t size = 0;
  std::vector<std::byte> bytes;
  bool can_write = false, can_flush = false, can_trim = false, can_zero = false, can_fast_zero = false,
       can_fua = false, can_multi_conn = false, can_cache = false, is_rotational = false;
  std::uint32_t block_min = 0, block_preferred = 0, block_max = 0;
  std::vector<core::Extent> extents;  // base:allocation over the whole export, merged
};

struct CommandLine {
  std::vector<std::string> filters;
  std::string plugin;  // an nbdkit plugin name (nbdkit's .so), or a built-in with builtin=true
  std::vector<std::string> args;
  bool builtin = false;  // nbdd's own plugin of that name (nbdkit serves its own .so)
  bool readonly = false;
  // nbdkit offers no WRITE_ZEROES on this export (NBDKIT_ZERO_NONE: a writable filter over a
  // read-only layer, nozero's zeromode=none); nor must nbdd (plugin::zero_none).
  bool nbdkit_zero_none = false;
};

inline std::string nbdkit_plugin_path(const std::string& name) {
  return std::string(NBDD_NBDKIT_PLUGINDIR) + "/nbdkit-" + name + "-plugin.so";
}

// Appends one extent, merging it with the previous one of the same type.
inline void add_merged(std::vector<core::Extent>& out, std::uint64_t offset, std::uint64_t length, std::uint32_t type) {
  if (!out.empty() && out.back().type == type && out.back().offset + out.back().length == offset) {
    out.back().length += length;
    return;
  }
  out.push_back(core::Extent{offset, length, type});
}

// What `SERVER -s --exit-with-parent [-r] [--filter=F...] PLUGIN ARGS...` serves (nbdkit, or
// the nbdd daemon: the same command line).
inline Served served_by_server(const std::string& server, const CommandLine& cmd) {
  Served s;
  nbd_handle* nbd = nbd_create();
  EXPECT_NE(nbd, nullptr);
  std::vector<std::string> argv_strings = {server, "-s", "--exit-with-parent"};
  if (cmd.readonly) argv_strings.push_back("-r");
  for (const auto& f : cmd.filters) argv_strings.push_back("--filter=" + f);
  argv_strings.push_back(cmd.plugin);
  argv_strings.insert(argv_strings.end(), cmd.args.begin(), cmd.args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  nbd_add_meta_context(nbd, LIBNBD_CONTEXT_BASE_ALLOCATION);
  if (nbd_connect_command(nbd, argv.data()) == -1) {
    ADD_FAILURE() << server << ": " << nbd_get_error();
    nbd_close(nbd);
    return s;
  }
  s.size = static_cast<std::uint64_t>(nbd_get_size(nbd));
  s.can_write = nbd_is_read_only(nbd) == 0;
  s.can_flush = nbd_can_flush(nbd) == 1;
  s.can_trim = nbd_can_trim(nbd) == 1;
  s.can_zero = nbd_can_zero(nbd) == 1;
  s.can_fast_zero = nbd_can_fast_zero(nbd) == 1;
  s.can_fua = nbd_can_fua(nbd) == 1;
  s.can_multi_conn = nbd_can_multi_conn(nbd) == 1;
  s.can_cache = nbd_can_cache(nbd) == 1;
  s.is_rotational = nbd_is_rotational(nbd) == 1;
  s.block_min = static_cast<std::uint32_t>(std::max<int64_t>(0, nbd_get_block_size(nbd, LIBNBD_SIZE_MINIMUM)));
  s.block_preferred = static_cast<std::uint32_t>(std::max<int64_t>(0, nbd_get_block_size(nbd, LIBNBD_SIZE_PREFERRED)));
  s.block_max = static_cast<std::uint32_t>(std::max<int64_t>(0, nbd_get_block_size(nbd, LIBNBD_SIZE_MAXIMUM)));
  s.bytes.resize(s.size);
  for (std::uint64_t off = 0; off < s.size;) {
    const std::uint64_t n = std::min<std::uint64_t>(s.size - off, 1 << 20);
    if (nbd_pread(nbd, s.bytes.data() + off, n, off, 0) == -1) {
      ADD_FAILURE() << server << " pread: " << nbd_get_error();
      break;
    }
    off += n;
  }
  if (nbd_can_meta_context(nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1) {
    struct Collect {
      std::vector<core::Extent>* out;
      std::uint64_t offset;
    } collect{&s.extents, 0};
    for (std::uint64_t off = 0; off < s.size;) {
      collect.offset = off;
      const std::uint64_t n = std::min<std::uint64_t>(s.size - off, 1u << 30);
      nbd_extent_callback cb = {
          [](void* user, const char*, uint64_t, uint32_t* entries, size_t count, int*) -> int {
            auto* c = static_cast<Collect*>(user);
            for (size_t i = 0; i + 1 < count; i += 2) {
              add_merged(*c->out, c->offset, entries[i], entries[i + 1]);
              c->offset += entries[i];
            }
            return 0;
          },
          &collect, nullptr};
      if (nbd_block_status(nbd, n, off, cb, 0) == -1) {
        ADD_FAILURE() << server << " block_status: " << nbd_get_error();
        break;
      }
      if (collect.offset <= off) break;
      off = std::min(collect.offset, s.size);
    }
    if (!s.extents.empty() && s.extents.back().offset + s.extents.back().length > s.size)
      s.extents.back().length = s.size - s.extents.back().offset;
  }
  nbd_shutdown(nbd, 0);
  nbd_close(nbd);
  return s;
}

inline Served served_by_nbdkit(const CommandLine& cmd) { return served_by_server("nbdkit", cmd); }

// The plugin of `cmd` wrapped with its filters, ready for a HostHarness (nullptr and a test
// failure when loading fails).
inline std::unique_ptr<plugin::Plugin> chain_of(const CommandLine& cmd) {
  plugin::nbdkit_abi::reset_for_tests();  // a previous test's nbdkit_shutdown() is forgotten
  std::string error;
  std::unique_ptr<plugin::Plugin> p = cmd.builtin ? plugin::load_plugin(cmd.plugin, error)
                                                  : plugin::nbdkit_abi::load_nbdkit_plugin(nbdkit_plugin_path(cmd.plugin), error);
  if (!p) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  p = plugin::nbdkit_abi::wrap_with_filters(std::move(p), cmd.filters, error);
  if (!p) ADD_FAILURE() << error;
  return p;
}

inline Served served_by_nbdd(const CommandLine& cmd) {
  Served s;
  auto chain = chain_of(cmd);
  if (!chain) return s;
  HostHarness harness(std::move(chain));
  if (auto e = harness.start(cmd.args); !e.empty()) {
    ADD_FAILURE() << "start: " << e;
    return s;
  }
  ConnectionPluginState c;
  c.id = 1;
  EXPECT_EQ(harness.preconnect(c, cmd.readonly), 0);
  core::ExportInfo info;
  if (int r = harness.open(c, cmd.readonly, "", &info); r != 0) {
    ADD_FAILURE() << "open: " << r << " " << plugin::PluginHost::last_error();
    return s;
  }
  s.size = info.size_bytes;
  s.can_write = info.caps.can_write;
  s.can_flush = info.caps.can_flush;
  s.can_trim = info.caps.can_trim;
  s.can_zero = info.caps.can_zero;
  s.can_fast_zero = info.caps.can_fast_zero;
  s.can_fua = info.caps.can_fua;
  s.can_multi_conn = info.caps.can_multi_conn;
  s.can_cache = info.caps.can_cache;
  s.is_rotational = info.caps.is_rotational;
  s.block_min = info.block_size.minimum;
  s.block_preferred = info.block_size.preferred;
  s.block_max = info.block_size.maximum;
  s.bytes.resize(s.size);
  for (std::uint64_t off = 0; off < s.size;) {
    const std::uint64_t n = std::min<std::uint64_t>(s.size - off, 1 << 20);
    if (int r = harness.pread(c, std::span(s.bytes.data() + off, n), off); r != 0) {
      ADD_FAILURE() << "pread: " << r << " " << plugin::PluginHost::last_error();
      break;
    }
    off += n;
  }
  for (std::uint64_t off = 0; off < s.size;) {
    std::vector<core::Extent> part;
    const std::uint64_t n = std::min<std::uint64_t>(s.size - off, 1u << 30);
    if (int r = harness.extents(c, n, off, 0, part); r != 0 || part.empty()) {
      ADD_FAILURE() << "extents: " << r;
      break;
    }
    for (const auto& e : part) add_merged(s.extents, e.offset, e.length, e.type);
    off = part.back().offset + part.back().length;
  }
  EXPECT_EQ(harness.close(c), 0);
  return s;
}

inline void expect_same_served(const CommandLine& cmd, const Served& expected, const Served& actual) {
  EXPECT_EQ(actual.size, expected.size);
  EXPECT_TRUE(actual.bytes == expected.bytes) << "bytes differ";
  EXPECT_EQ(actual.can_write, expected.can_write);
  EXPECT_EQ(actual.can_flush, expected.can_flush);
  EXPECT_EQ(actual.can_trim, expected.can_trim);
  if (cmd.nbdkit_zero_none) {
    EXPECT_FALSE(expected.can_zero);
  }
  EXPECT_EQ(actual.can_zero, expected.can_zero);
  EXPECT_EQ(actual.can_fast_zero, expected.can_fast_zero);
  EXPECT_EQ(actual.can_fua, expected.can_fua);
  EXPECT_EQ(actual.can_multi_conn, expected.can_multi_conn);
  EXPECT_EQ(actual.can_cache, expected.can_cache);
  EXPECT_EQ(actual.is_rotational, expected.is_rotational);
  EXPECT_EQ(actual.block_min, expected.block_min);
  EXPECT_EQ(actual.block_preferred, expected.block_preferred);
  EXPECT_EQ(actual.block_max, expected.block_max);
  ASSERT_EQ(actual.extents.size(), expected.extents.size());
  for (std::size_t i = 0; i < expected.extents.size(); ++i) {
    EXPECT_EQ(actual.extents[i].offset, expected.extents[i].offset) << "extent " << i;
    EXPECT_EQ(actual.extents[i].length, expected.extents[i].length) << "extent " << i;
    EXPECT_EQ(actual.extents[i].type, expected.extents[i].type) << "extent " << i;
  }
}

inline void expect_same_as_nbdkit(const CommandLine& cmd) {
  expect_same_served(cmd, served_by_nbdkit(cmd), served_by_nbdd(cmd));
}

}  // namespace nbdd::test
