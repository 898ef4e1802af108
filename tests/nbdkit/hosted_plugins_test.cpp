// Installed nbdkit plugins hosted through the adaptor and PluginHost (as the daemon runs
// them), compared with what nbdkit 1.32 itself serves for the same arguments (libnbd
// talking to `nbdkit -s`): same size, same bytes, same capabilities.
#include <gtest/gtest.h>
#include <libnbd.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "plugins/nbdkit/nbdkit_plugin_adaptor.hpp"
#include "tests/plugins/host_harness.hpp"

namespace {

namespace abi = nbdd::plugin::nbdkit_abi;

std::string plugin_path(const std::string& name) {
  return std::string(NBDD_NBDKIT_PLUGINDIR) + "/nbdkit-" + name + "-plugin.so";
}

struct Served {
  std::uint64_t size = 0;
  std::vector<std::byte> bytes;
  bool can_write = false, can_flush = false, can_trim = false, can_zero = false, can_fast_zero = false,
       can_fua = false, can_multi_conn = false, can_cache = false, is_rotational = false;
};

// What nbdkit serves: `nbdkit -s NAME ARGS...` through libnbd.
Served served_by_nbdkit(const std::string& name, const std::vector<std::string>& args) {
  Served s;
  nbd_handle* nbd = nbd_create();
  EXPECT_NE(nbd, nullptr);
  std::vector<std::string> argv_strings = {"nbdkit", "-s", "--exit-with-parent", name};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (nbd_connect_command(nbd, argv.data()) == -1) {
    ADD_FAILURE() << "nbdkit " << name << ": " << nbd_get_error();
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
  s.bytes.resize(s.size);
  for (std::uint64_t off = 0; off < s.size;) {
    const std::uint64_t n = std::min<std::uint64_t>(s.size - off, 1 << 20);
    if (nbd_pread(nbd, s.bytes.data() + off, n, off, 0) == -1) {
      ADD_FAILURE() << "nbdkit pread: " << nbd_get_error();
      break;
    }
    off += n;
  }
  nbd_shutdown(nbd, 0);
  nbd_close(nbd);
  return s;
}

// What nbdd's host serves from the same .so through the adaptor.
Served served_by_adaptor(const std::string& name, const std::vector<std::string>& args) {
  Served s;
  std::string error;
  auto plugin = abi::load_nbdkit_plugin(plugin_path(name), error);
  if (!plugin) {
    ADD_FAILURE() << error;
    return s;
  }
  nbdd::test::HostHarness harness(std::move(plugin));
  if (auto e = harness.start(args); !e.empty()) {
    ADD_FAILURE() << "start: " << e;
    return s;
  }
  nbdd::test::ConnectionPluginState c;
  c.id = 1;
  EXPECT_EQ(harness.preconnect(c), 0);
  nbdd::core::ExportInfo info;
  if (int r = harness.open(c, false, "", &info); r != 0) {
    ADD_FAILURE() << "open: " << r << " " << nbdd::plugin::PluginHost::last_error();
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
  s.bytes.resize(s.size);
  for (std::uint64_t off = 0; off < s.size;) {
    const std::uint64_t n = std::min<std::uint64_t>(s.size - off, 1 << 20);
    if (int r = harness.pread(c, std::span(s.bytes.data() + off, n), off); r != 0) {
      ADD_FAILURE() << "pread: " << r;
      break;
    }
    off += n;
  }
  EXPECT_EQ(harness.close(c), 0);
  return s;
}

void expect_same_as_nbdkit(const std::string& name, const std::vector<std::string>& args) {
  SCOPED_TRACE(name);
  const Served expected = served_by_nbdkit(name, args);
  const Served actual = served_by_adaptor(name, args);
  EXPECT_EQ(actual.size, expected.size);
  EXPECT_TRUE(actual.bytes == expected.bytes) << "bytes differ";
  EXPECT_EQ(actual.can_write, expected.can_write);
  EXPECT_EQ(actual.can_flush, expected.can_flush);
  EXPECT_EQ(actual.can_trim, expected.can_trim);
  EXPECT_EQ(actual.can_zero, expected.can_zero);
  EXPECT_EQ(actual.can_fast_zero, expected.can_fast_zero);
  EXPECT_EQ(actual.can_fua, expected.can_fua);
  EXPECT_EQ(actual.can_multi_conn, expected.can_multi_conn);
  EXPECT_EQ(actual.can_cache, expected.can_cache);
  EXPECT_EQ(actual.is_rotational, expected.is_rotational);
}

TEST(HostedNbdkitPlugins, Data) { expect_same_as_nbdkit("data", {"data=1 2 3 @512 0x41*100 @8192 \"hello\"", "size=64K"}); }
TEST(HostedNbdkitPlugins, Full) { expect_same_as_nbdkit("full", {"size=64K"}); }
TEST(HostedNbdkitPlugins, Memory) { expect_same_as_nbdkit("memory", {"1M"}); }
TEST(HostedNbdkitPlugins, Null) { expect_same_as_nbdkit("null", {"size=100K"}); }
TEST(HostedNbdkitPlugins, Pattern) { expect_same_as_nbdkit("pattern", {"size=1M"}); }
TEST(HostedNbdkitPlugins, Random) { expect_same_as_nbdkit("random", {"size=1M", "seed=42"}); }
TEST(HostedNbdkitPlugins, SparseRandom) { expect_same_as_nbdkit("sparse-random", {"size=4M", "seed=7"}); }
TEST(HostedNbdkitPlugins, Zero) { expect_same_as_nbdkit("zero", {}); }

TEST(HostedNbdkitPlugins, File) {
  const std::string path = "/tmp/nbdd-nbdkit-file-" + std::to_string(::getpid());
  {
    std::ofstream f(path, std::ios::binary);
    for (int i = 0; i < 70000; ++i) f.put(static_cast<char>(i * 7));
  }
  expect_same_as_nbdkit("file", {"file=" + path});
  std::filesystem::remove(path);
}

TEST(HostedNbdkitPlugins, Eval) {
  expect_same_as_nbdkit("eval", {"get_size=echo 10000", "pread=yes AB | head -c $3"});
}

TEST(HostedNbdkitPlugins, Sh) {
  const std::string path = "/tmp/nbdd-nbdkit-sh-" + std::to_string(::getpid()) + ".sh";
  {
    std::ofstream f(path);
    f << "#!/bin/sh\ncase \"$1\" in\n  get_size) echo 12345 ;;\n  pread) yes XY | head -c $3 ;;\n"
         "  can_write) exit 0 ;;\n  pwrite) cat >/dev/null ;;\n  *) exit 2 ;;\nesac\n";
  }
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  expect_same_as_nbdkit("sh", {path});
  std::filesystem::remove(path);
}

TEST(HostedNbdkitPlugins, FoundByName) {
  ASSERT_TRUE(abi::find_nbdkit_plugin("memory").has_value());
  EXPECT_EQ(*abi::find_nbdkit_plugin("memory"), plugin_path("memory"));
  EXPECT_FALSE(abi::find_nbdkit_plugin("no-such-plugin").has_value());
  EXPECT_FALSE(abi::find_nbdkit_plugin("../plugins/nbdkit-memory").has_value());
}

TEST(HostedNbdkitPlugins, MemoryWritesReadBack) {
  std::string error;
  auto plugin = abi::load_nbdkit_plugin(plugin_path("memory"), error);
  ASSERT_TRUE(plugin) << error;
  nbdd::test::HostHarness harness(std::move(plugin));
  ASSERT_EQ(harness.start({"size=1M"}), "");
  nbdd::test::ConnectionPluginState c;
  c.id = 1;
  ASSERT_EQ(harness.open(c), 0);
  auto data = nbdd::test::filled(4096, 0xab);
  EXPECT_EQ(harness.pwrite(c, data, 8192, nbdd::core::call_flag::fua), 0);
  std::vector<std::byte> back(4096);
  EXPECT_EQ(harness.pread(c, back, 8192), 0);
  EXPECT_EQ(back, data);
  EXPECT_EQ(harness.zero(c, 4096, 8192, nbdd::core::call_flag::may_trim), 0);
  EXPECT_EQ(harness.pread(c, back, 8192), 0);
  EXPECT_EQ(back, nbdd::test::filled(4096, 0));
  std::vector<nbdd::core::Extent> extents;
  EXPECT_EQ(harness.pwrite(c, data, 0), 0);
  EXPECT_EQ(harness.extents(c, 1 << 20, 0, 0, extents), 0);
  ASSERT_GE(extents.size(), 2u);
  EXPECT_EQ(extents[0].offset, 0u);
  EXPECT_EQ(extents[0].type, 0u);  // data
  EXPECT_EQ(extents.back().type & 1u, 1u);  // a hole after it
  EXPECT_EQ(harness.flush(c), 0);
  EXPECT_EQ(harness.close(c), 0);
}

TEST(HostedNbdkitPlugins, FullFailsWritesWithEnospc) {
  std::string error;
  auto plugin = abi::load_nbdkit_plugin(plugin_path("full"), error);
  ASSERT_TRUE(plugin) << error;
  nbdd::test::HostHarness harness(std::move(plugin));
  ASSERT_EQ(harness.start({"size=64K"}), "");
  nbdd::test::ConnectionPluginState c;
  c.id = 1;
  ASSERT_EQ(harness.open(c), 0);
  EXPECT_EQ(harness.pwrite(c, nbdd::test::filled(512, 1), 0), ENOSPC);
  EXPECT_EQ(harness.close(c), 0);
}

TEST(HostedNbdkitPlugins, BadConfigIsReported) {
  std::string error;
  auto plugin = abi::load_nbdkit_plugin(plugin_path("memory"), error);
  ASSERT_TRUE(plugin) << error;
  nbdd::test::HostHarness harness(std::move(plugin));
  const std::string e = harness.start({"size=lots"});
  EXPECT_NE(e.find("could not parse size"), std::string::npos) << e;
}

TEST(HostedNbdkitPlugins, NotAPluginIsRefused) {
  std::string error;
  EXPECT_EQ(abi::load_nbdkit_plugin("/no/such/nbdkit-x-plugin.so", error), nullptr);
  EXPECT_NE(error.find("cannot load"), std::string::npos);
  error.clear();
  const std::string filter = std::string(NBDD_NBDKIT_FILTERDIR) + "/nbdkit-offset-filter.so";
  EXPECT_EQ(abi::load_nbdkit_plugin(filter, error), nullptr);  // loads (symbols resolve), not a plugin
  EXPECT_NE(error.find("not an nbdkit plugin"), std::string::npos) << error;
}

}  // namespace

namespace {
// nbdkit's in-memory plugins, from its plugin directory, may run on nbdd's I/O threads (as
// its built-in memory plugin does); anything that may block runs on workers.
TEST(HostedNbdkitPlugins, OnlyNbdkitsInMemoryPluginsAreNonblocking) {
  for (const char* name : {"memory", "data", "null", "pattern", "zero", "full", "random", "sparse-random"}) {
    std::string error;
    auto plugin = abi::load_nbdkit_plugin(plugin_path(name), error);
    ASSERT_TRUE(plugin) << error;
    EXPECT_TRUE(plugin->nonblocking()) << name;
  }
  for (const std::string& path : {plugin_path("file"), plugin_path("sh"), plugin_path("eval"),
                                 std::string(NBDD_NBDKIT_PROBE_PLUGIN)}) {
    std::string error;
    auto plugin = abi::load_nbdkit_plugin(path, error);
    ASSERT_TRUE(plugin) << error;
    EXPECT_FALSE(plugin->nonblocking()) << path;
  }
}
}  // namespace
