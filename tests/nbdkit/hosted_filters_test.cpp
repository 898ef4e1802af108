// Installed nbdkit filters in front of plugins (nbdkit's own, hosted, and nbdd's built-ins),
// through the filter chain and PluginHost as the daemon runs them, compared with what nbdkit
// 1.32 itself serves for the same command line; and the filters whose point is behaviour
// (error, delay, log, cow, retry, exitlast, limit) checked for that behaviour.
#include <gtest/gtest.h>
#include <libnbd.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/nbdkit/served_compare.hpp"

namespace {

using nbdd::test::CommandLine;
using nbdd::test::expect_same_as_nbdkit;
using nbdd::test::HostHarness;
namespace abi = nbdd::plugin::nbdkit_abi;

// 64 KiB of nbdkit's data plugin: an MBR with one partition (LBA 8, 16 sectors), some
// bytes in it, a hole, and data further on.
const std::vector<std::string> data_disk = {
    "data=@0x1be 0 0 0 0 0x83 0 0 0 8 0 0 0 16 0 0 0 @0x1fe 0x55 0xaa "
    "@4096 \"hello partition\" @20000 0x41*3000 @60000 1 2 3 4 5",
    "size=64K"};

CommandLine over_data(std::vector<std::string> filters, std::vector<std::string> extra = {}) {
  CommandLine cmd{std::move(filters), "data", data_disk};
  cmd.args.insert(cmd.args.end(), extra.begin(), extra.end());
  return cmd;
}

CommandLine zero_none(CommandLine cmd) {
  cmd.nbdkit_zero_none = true;
  return cmd;
}

std::string temp_path(const std::string& what) {
  return "/tmp/nbdd-filter-" + what + "-" + std::to_string(::getpid());
}

std::unique_ptr<HostHarness> started(const CommandLine& cmd) {
  auto h = std::make_unique<HostHarness>(nbdd::test::chain_of(cmd));
  const std::string e = h->start(cmd.args);
  EXPECT_EQ(e, "");
  return h;
}

// --- served exactly as nbdkit serves them ---------------------------------------------

TEST(HostedNbdkitFilters, Offset) { expect_same_as_nbdkit(over_data({"offset"}, {"offset=4096", "range=20000"})); }
TEST(HostedNbdkitFilters, Partition) { expect_same_as_nbdkit(over_data({"partition"}, {"partition=1"})); }
TEST(HostedNbdkitFilters, Truncate) { expect_same_as_nbdkit(over_data({"truncate"}, {"truncate=30001"})); }
TEST(HostedNbdkitFilters, TruncateRoundUp) {
  expect_same_as_nbdkit({{"truncate"}, "pattern", {"size=10000", "round-up=4096"}});
}
TEST(HostedNbdkitFilters, Blocksize) {
  expect_same_as_nbdkit({{"blocksize"}, "memory", {"size=1M", "minblock=4096", "maxdata=65536"}});
}
// Unaligned extents merged to the block size (nbdkit_extents_aligned).
TEST(HostedNbdkitFilters, BlocksizeOverData) { expect_same_as_nbdkit(over_data({"blocksize"}, {"minblock=4096"})); }
TEST(HostedNbdkitFilters, NozeroEmulate) { expect_same_as_nbdkit({{"nozero"}, "memory", {"size=1M", "zeromode=emulate"}}); }
TEST(HostedNbdkitFilters, NozeroNotrimNoFastZero) {
  expect_same_as_nbdkit({{"nozero"}, "memory", {"size=1M", "zeromode=notrim", "fastzeromode=none"}});
}
TEST(HostedNbdkitFilters, Noextents) { expect_same_as_nbdkit(over_data({"noextents"})); }
// cow opens the plugin read-only and has no can_zero: nbdkit offers no WRITE_ZEROES.
TEST(HostedNbdkitFilters, Cow) { expect_same_as_nbdkit(zero_none(over_data({"cow"}))); }
TEST(HostedNbdkitFilters, CowMakesAReadonlyPluginWritable) {
  expect_same_as_nbdkit(zero_none({{"cow"}, "pattern", {"size=1M"}}));
}
TEST(HostedNbdkitFilters, NozeroDefaultOffersNoZero) { expect_same_as_nbdkit(zero_none({{"nozero"}, "memory", {"size=1M"}})); }
TEST(HostedNbdkitFilters, Cache) { expect_same_as_nbdkit(over_data({"cache"})); }
TEST(HostedNbdkitFilters, Readahead) { expect_same_as_nbdkit({{"readahead"}, "pattern", {"size=3M"}}); }
TEST(HostedNbdkitFilters, Delay) { expect_same_as_nbdkit(over_data({"delay"}, {"rdelay=10ms"})); }
TEST(HostedNbdkitFilters, Retry) { expect_same_as_nbdkit(over_data({"retry"})); }
TEST(HostedNbdkitFilters, Exitlast) { expect_same_as_nbdkit(over_data({"exitlast"})); }
TEST(HostedNbdkitFilters, Limit) { expect_same_as_nbdkit(over_data({"limit"}, {"limit=2"})); }
TEST(HostedNbdkitFilters, Fua) { expect_same_as_nbdkit({{"fua"}, "memory", {"size=1M", "fuamode=native"}}); }
TEST(HostedNbdkitFilters, Swab) { expect_same_as_nbdkit(over_data({"swab"}, {"swab-bits=32"})); }
TEST(HostedNbdkitFilters, Checkwrite) { expect_same_as_nbdkit(over_data({"checkwrite"})); }
TEST(HostedNbdkitFilters, Cacheextents) { expect_same_as_nbdkit(over_data({"cacheextents"})); }
TEST(HostedNbdkitFilters, BlocksizePolicy) {
  expect_same_as_nbdkit({{"blocksize-policy"}, "memory", {"size=1M", "blocksize-minimum=4096", "blocksize-preferred=65536"}});
}
TEST(HostedNbdkitFilters, Protect) { expect_same_as_nbdkit(over_data({"protect"}, {"protect=0-4095"})); }
TEST(HostedNbdkitFilters, Multiconn) {
  expect_same_as_nbdkit({{"multi-conn"}, "memory", {"size=1M", "multi-conn-mode=plugin"}});
}

TEST(HostedNbdkitFilters, StackedOffsetOverTruncate) {
  expect_same_as_nbdkit(over_data({"offset", "truncate"}, {"offset=512", "truncate=40000"}));
}
TEST(HostedNbdkitFilters, StackedTruncateOverOffset) {
  expect_same_as_nbdkit(over_data({"truncate", "offset"}, {"offset=512", "truncate=40000"}));
}
TEST(HostedNbdkitFilters, StackedCowCacheNoextentsPartition) {
  expect_same_as_nbdkit(zero_none(over_data({"cow", "cache", "noextents", "partition"}, {"partition=1"})));
}

// nbdd's built-in plugins take filters too.
TEST(HostedNbdkitFilters, OverBuiltinPattern) {
  CommandLine cmd{{"offset", "truncate"}, "pattern", {"size=1M", "offset=1000", "truncate=50000"}, true};
  const auto expected = nbdd::test::served_by_nbdkit({cmd.filters, "pattern", cmd.args});
  const auto actual = nbdd::test::served_by_nbdd(cmd);
  EXPECT_EQ(actual.size, expected.size);
  EXPECT_TRUE(actual.bytes == expected.bytes);
}

// --- behaviour ---------------------------------------------------------------------

TEST(HostedNbdkitFilters, ErrorFailsReadsWithTheConfiguredErrno) {
  CommandLine cmd{{"error"}, "memory", {"size=1M", "error-pread=EPERM", "error-pread-rate=100%"}};
  nbd_handle* nbd = nbd_create();
  ASSERT_NE(nbd, nullptr);
  const char* argv[] = {"nbdkit", "-s", "--exit-with-parent", "--filter=error", "memory", "size=1M",
                        "error-pread=EPERM", "error-pread-rate=100%", nullptr};
  ASSERT_NE(nbd_connect_command(nbd, const_cast<char**>(argv)), -1) << nbd_get_error();
  char buf[512];
  EXPECT_EQ(nbd_pread(nbd, buf, sizeof buf, 0, 0), -1);
  const int nbdkit_errno = nbd_get_errno();
  nbd_close(nbd);
  EXPECT_EQ(nbdkit_errno, EPERM);

  auto hp = started(cmd);
  HostHarness& h = *hp;
  nbdd::test::ConnectionPluginState c;
  c.id = 1;
  ASSERT_EQ(h.open(c), 0) << nbdd::plugin::PluginHost::last_error();
  std::vector<std::byte> back(512);
  EXPECT_EQ(h.pread(c, back, 0), EPERM);
  EXPECT_EQ(h.pwrite(c, back, 0), 0);  // only reads fail
  EXPECT_EQ(h.close(c), 0);
}

TEST(HostedNbdkitFilters, DelaySlowsReadsOnly) {
  auto hp = started({{"delay"}, "memory", {"size=1M", "rdelay=150ms"}});
  HostHarness& h = *hp;
  nbdd::test::ConnectionPluginState c;
  c.id = 1;
  ASSERT_EQ(h.open(c), 0);
  std::vector<std::byte> buf(4096);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(h.pread(c, buf, 0), 0);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(150));
  t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(h.pwrite(c, buf, 0), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(150));
  EXPECT_EQ(h.close(c), 0);
}

TEST(HostedNbdkitFilters, LogWritesEveryRequest) {
  const std::string log = temp_path("log");
  {
    auto hp = started({{"log"}, "memory", {"size=1M", "logfile=" + log}});
    HostHarness& h = *hp;
    nbdd::test::ConnectionPluginState c;
    c.id = 1;
    ASSERT_EQ(h.open(c), 0);
    auto data = nbdd::test::filled(4096, 7);
    EXPECT_EQ(h.pwrite(c, data, 8192), 0);
    std::vector<std::byte> back(4096);
    EXPECT_EQ(h.pread(c, back, 8192), 0);
    EXPECT_EQ(back, data);
    EXPECT_EQ(h.close(c), 0);
  }
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("Write id=1 offset=0x2000 count=0x1000"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("Read id=2 offset=0x2000 count=0x1000"), std::string::npos) << text.str();
  std::filesystem::remove(log);
}

TEST(HostedNbdkitFilters, CowKeepsWritesAwayFromThePlugin) {
  const std::string file = temp_path("cow");
  {
    std::ofstream f(file, std::ios::binary);
    f << std::string(65536, 'x');
  }
  {
    auto hp = started({{"cow"}, "file", {"file=" + file}});
    HostHarness& h = *hp;
    nbdd::test::ConnectionPluginState c;
    c.id = 1;
    ASSERT_EQ(h.open(c), 0);
    auto data = nbdd::test::filled(4096, 0x42);
    EXPECT_EQ(h.pwrite(c, data, 4096), 0);
    EXPECT_EQ(h.zero(c, 4096, 0), 0);
    std::vector<std::byte> back(4096);
    EXPECT_EQ(h.pread(c, back, 4096), 0);
    EXPECT_EQ(back, data);
    EXPECT_EQ(h.pread(c, back, 0), 0);
    EXPECT_EQ(back, nbdd::test::filled(4096, 0));
    EXPECT_EQ(h.close(c), 0);
  }
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), std::string(65536, 'x'));  // the file never changed
  std::filesystem::remove(file);
}

// checkwrite compares each write with what is there, reading the layer below's extents
// (nbdkit_extents_full) to skip holes: same bytes succeed, different bytes fail EIO.
TEST(HostedNbdkitFilters, CheckwriteRefusesWritesThatChangeTheData) {
  auto hp = started(over_data({"checkwrite"}));
  HostHarness& h = *hp;
  nbdd::test::ConnectionPluginState c;
  c.id = 1;
  ASSERT_EQ(h.open(c), 0);
  std::vector<std::byte> block(8192);
  ASSERT_EQ(h.pread(c, block, 16384), 0);  // data from 20000, a hole before it
  EXPECT_EQ(h.pwrite(c, block, 16384), 0);
  EXPECT_EQ(h.zero(c, 4096, 8192), 0);  // already zero
  block[4000] = std::byte{0x7f};
  EXPECT_EQ(h.pwrite(c, block, 16384), EIO);
  EXPECT_EQ(h.close(c), 0);
}

// retry over error: the first read fails while the error file exists; retry waits, closes
// the layer below and opens it again (the filter context API), and the retried read works.
TEST(HostedNbdkitFilters, RetryReopensTheLayerBelow) {
  const std::string trigger = temp_path("retry-trigger");
  std::ofstream(trigger) << "fail";
  auto hp = started(
      {{"retry", "error"}, "memory", {"size=1M", "retries=3", "retry-delay=1", "error-pread=EIO", "error-pread-rate=100%",
       "error-pread-file=" + trigger}});
  HostHarness& h = *hp;
  nbdd::test::ConnectionPluginState c;
  c.id = 1;
  ASSERT_EQ(h.open(c), 0);
  std::thread remover([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::filesystem::remove(trigger);
  });
  std::vector<std::byte> buf(4096);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(h.pread(c, buf, 0), 0);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(900));  // it did retry
  remover.join();
  EXPECT_EQ(h.close(c), 0);
}

// exitlast: nbdkit_shutdown() from the filter when the last connection closes reaches the
// Host's shutdown, the same path a plugin's takes.
TEST(HostedNbdkitFilters, ExitlastShutsDownAfterTheLastClose) {
  auto hp = started({{"exitlast"}, "memory", {"size=1M"}});
  HostHarness& h = *hp;
  nbdd::test::ConnectionPluginState a, b;
  a.id = 1;
  b.id = 2;
  ASSERT_EQ(h.open(a), 0);
  ASSERT_EQ(h.open(b), 0);
  EXPECT_EQ(h.close(a), 0);
  EXPECT_EQ(h.shutdowns.load(), 0);
  EXPECT_EQ(h.close(b), 0);
  EXPECT_EQ(h.shutdowns.load(), 1);
}

TEST(HostedNbdkitFilters, LimitRefusesConnectionsOverTheLimit) {
  auto hp = started({{"limit"}, "memory", {"size=1M", "limit=1"}});
  HostHarness& h = *hp;
  nbdd::test::ConnectionPluginState a, b;
  a.id = 1;
  b.id = 2;
  ASSERT_EQ(h.preconnect(a), 0);
  ASSERT_EQ(h.open(a), 0);
  EXPECT_NE(h.preconnect(b), 0);
  EXPECT_NE(h.open(b), 0);
  EXPECT_EQ(h.close(a), 0);
  EXPECT_EQ(h.preconnect(b), 0);
  EXPECT_EQ(h.open(b), 0);
  EXPECT_EQ(h.close(b), 0);
}

// Filters' thread_model lowers the chain's (noparallel's default: serialize_requests).
TEST(HostedNbdkitFilters, ThreadModelIsTheStrictestOfTheChain) {
  {
    auto h = started({{"noparallel"}, "memory", {"size=1M"}});
    EXPECT_EQ(h->host->plugin().thread_model(), nbdd::core::ThreadModel::serialize_requests);
  }
  auto h = started({{"noparallel"}, "memory", {"size=1M", "serialize=connections"}});
  EXPECT_EQ(h->host->plugin().thread_model(), nbdd::core::ThreadModel::serialize_connections);
}

TEST(HostedNbdkitFilters, ConfigErrorsAreReported) {
  HostHarness h(nbdd::test::chain_of({{"offset"}, "memory", {}}));
  const std::string e = h.start({"size=1M", "offset=lots"});
  EXPECT_NE(e.find("could not parse"), std::string::npos) << e;
}

TEST(HostedNbdkitFilters, UnknownFilterIsRefused) {
  std::string error;
  auto p = abi::load_nbdkit_plugin(nbdd::test::nbdkit_plugin_path("memory"), error);
  ASSERT_TRUE(p) << error;
  EXPECT_EQ(abi::wrap_with_filters(std::move(p), {"no-such-filter"}, error), nullptr);
  EXPECT_NE(error.find("no such filter"), std::string::npos) << error;
  p = abi::load_nbdkit_plugin(nbdd::test::nbdkit_plugin_path("memory"), error);
  EXPECT_EQ(abi::wrap_with_filters(std::move(p), {nbdd::test::nbdkit_plugin_path("null")}, error), nullptr);
  EXPECT_NE(error.find("not an nbdkit filter"), std::string::npos) << error;
  EXPECT_TRUE(abi::find_nbdkit_filter("cow").has_value());
  EXPECT_FALSE(abi::find_nbdkit_filter("../filters/nbdkit-cow").has_value());
}

// A filter's list_exports/default_export sit in front of the plugin's.
TEST(HostedNbdkitFilters, ExportnameFilterListsItsExports) {
  auto hp = started({{"exportname"}, "memory", {"size=1M", "exportname=a", "exportname=b", "default-export=b", "exportname-list=explicit"}});
  HostHarness& h = *hp;
  EXPECT_EQ(h.listed_names(), (std::vector<std::string>{"a", "b"}));
}

// --- the daemon ---------------------------------------------------------------------

// `nbdd -s --filter=...` against `nbdkit -s --filter=...`, through libnbd. Skipped while the
// daemon refuses --filter (its command line is wired separately) or is not built.
TEST(HostedNbdkitFilters, DaemonServesTheSameAsNbdkit) {
#ifndef NBDD_BINARY
  GTEST_SKIP() << "the nbdd daemon is not built";
#else
  const std::string probe = std::string(NBDD_BINARY) + " --help --filter=offset memory >/dev/null 2>&1";
  if (std::system(probe.c_str()) != 0) GTEST_SKIP() << "this nbdd does not take --filter yet";
  for (const CommandLine& cmd : {over_data({"offset", "truncate"}, {"offset=512", "truncate=40000"}),
                                 zero_none(over_data({"cow", "partition"}, {"partition=1"})),
                                 CommandLine{{"blocksize", "nozero"}, "memory", {"size=1M", "minblock=4096", "zeromode=emulate"}}}) {
    SCOPED_TRACE(cmd.filters.front());
    const auto expected = nbdd::test::served_by_nbdkit(cmd);
    nbdd::test::expect_same_served(cmd, expected, nbdd::test::served_by_server(NBDD_BINARY, cmd));
  }
#endif
}

}  // namespace
