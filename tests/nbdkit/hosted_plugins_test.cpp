// Installed nbdkit plugins hosted through the adaptor and PluginHost (as the daemon runs
// them), compared with what nbdkit 1.32 itself serves for the same arguments (libnbd
// talking to `nbdkit -s`): same size, same bytes, same capabilities.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "plugins/nbdkit/nbdkit_plugin_adaptor.hpp"
#include "tests/nbdkit/served_compare.hpp"
#include "tests/plugins/host_harness.hpp"

namespace {

namespace abi = nbdd::plugin::nbdkit_abi;

std::string plugin_path(const std::string& name) { return nbdd::test::nbdkit_plugin_path(name); }

// The same command line under nbdkit and hosted by nbdd: size, bytes, flags, block sizes
// and extents (tests/nbdkit/served_compare.hpp).
void expect_same_as_nbdkit(const std::string& name, const std::vector<std::string>& args) {
  SCOPED_TRACE(name);
  nbdd::test::expect_same_as_nbdkit(nbdd::test::CommandLine{{}, name, args});
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
