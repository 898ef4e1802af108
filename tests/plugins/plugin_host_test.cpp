// PluginHost: start-up argument handling, the nbdkit-like defaults of run()'s data calls,
// and the shutdown()/disconnect()/unload rules. Lifecycle calls: host_lifecycle_test.cpp.
#include "plugins/plugin_host.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "tests/plugins/host_harness.hpp"
#include "tests/plugins/recording_plugin.hpp"

namespace nbdd::test {
namespace {

using plugin::flag::fast_zero;
using plugin::flag::fua;
using plugin::flag::may_trim;
using plugin::flag::req_one;

struct HostTest : ::testing::Test {
  HostTest() {
    auto p = std::make_unique<RecordingPlugin>();
    rec = p.get();
    h = std::make_unique<HostHarness>(std::move(p));
  }
  void start_and_open(ConnectionPluginState& c) {
    ASSERT_EQ(h->start({}), "");
    ASSERT_EQ(h->open(c), 0);
  }
  RecordingPlugin* rec;
  std::unique_ptr<HostHarness> h;
};

TEST_F(HostTest, BareArgumentGoesToTheMagicKey) {
  EXPECT_EQ(h->start({"1G", "a=b", "c.d-e_f=x=y"}), "");
  const auto log = rec->log();
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0], "config size=1G");
  EXPECT_EQ(log[1], "config a=b");
  EXPECT_EQ(log[2], "config c.d-e_f=x=y");
}

TEST_F(HostTest, PathWithEqualsSignIsABareArgument) {
  EXPECT_EQ(h->start({"/tmp/a=b.img"}), "");
  EXPECT_EQ(rec->log().at(0), "config size=/tmp/a=b.img");
}

// nbdkit's rule without a magic key (its language plugins: `nbdkit perl x.pl`): the first
// bare argument is script=, a later one is a clear error.
TEST_F(HostTest, BareArgumentWithoutMagicKeyIsScriptFirstThenAClearError) {
  rec->magic_key = "";
  const std::string error = h->start({"x.pl", "a=1", "1G"});
  EXPECT_EQ(rec->log().at(0), "config script=x.pl");
  EXPECT_NE(error.find("recording"), std::string::npos) << error;
  EXPECT_NE(error.find("'1G'"), std::string::npos) << error;
  EXPECT_NE(error.find("KEY=VALUE"), std::string::npos) << error;
}

TEST_F(HostTest, ConfigErrorCarriesThePluginMessage) {
  const std::string error = h->start({"fail=1"});
  EXPECT_NE(error.find("config refused on purpose"), std::string::npos) << error;
  EXPECT_NE(error.find("fail=1"), std::string::npos) << error;
}

TEST_F(HostTest, ZeroWithoutPluginSupportWritesZeroesInBoundedChunks) {
  ConnectionPluginState c;
  start_and_open(c);
  const std::uint64_t count = 3 * (1u << 20) + 7;
  ASSERT_EQ(h->zero(c, count, 5, may_trim), 0);
  std::uint64_t next = 5;
  for (const auto& w : rec->writes()) {
    EXPECT_EQ(w.offset, next);
    EXPECT_LE(w.length, 1u << 20);
    EXPECT_TRUE(w.all_zero);
    next += w.length;
  }
  EXPECT_EQ(next, 5 + count);
}

TEST_F(HostTest, FastZeroWithoutPluginSupportFailsWithEnotsupAndWritesNothing) {
  ConnectionPluginState c;
  start_and_open(c);
  EXPECT_EQ(h->zero(c, 4096, 0, fast_zero), ENOTSUP);
  EXPECT_TRUE(rec->writes().empty());
}

TEST_F(HostTest, NativeZeroGetsTheFlags) {
  rec->native_zero = true;
  rec->fua_mode = plugin::fua_native;
  ConnectionPluginState c;
  start_and_open(c);
  EXPECT_EQ(h->zero(c, 4096, 0, may_trim | fua | fast_zero), 0);
  EXPECT_EQ(rec->log().back(), "zero " + std::to_string(may_trim | fua | fast_zero));
  EXPECT_TRUE(rec->writes().empty());
}

TEST_F(HostTest, EmulatedFuaFlushesAfterTheWrite) {
  ConnectionPluginState c;
  start_and_open(c);
  const auto data = filled(512, 1);
  ASSERT_EQ(h->pwrite(c, data, 0, fua), 0);
  const auto log = rec->log();
  ASSERT_GE(log.size(), 2u);
  EXPECT_EQ(log[log.size() - 2], "pwrite");
  EXPECT_EQ(log.back(), "flush");
  EXPECT_EQ(rec->writes().back().flags & fua, 0u);  // the plugin never sees a flag it cannot honour
}

TEST_F(HostTest, NativeFuaIsPassedThroughWithoutFlush) {
  rec->fua_mode = plugin::fua_native;
  ConnectionPluginState c;
  start_and_open(c);
  const auto data = filled(512, 1);
  ASSERT_EQ(h->pwrite(c, data, 0, fua), 0);
  EXPECT_EQ(rec->flushes.load(), 0);
  EXPECT_EQ(rec->writes().back().flags & fua, fua);
}

TEST_F(HostTest, EmulatedZeroWithFuaFlushesOnce) {
  ConnectionPluginState c;
  start_and_open(c);
  ASSERT_EQ(h->zero(c, 8192, 0, fua), 0);
  EXPECT_EQ(rec->flushes.load(), 1);
  EXPECT_EQ(rec->log().back(), "flush");
}

TEST_F(HostTest, TrimWithEmulatedFuaFlushes) {
  ConnectionPluginState c;
  start_and_open(c);
  ASSERT_EQ(h->trim(c, 4096, 0, fua), 0);
  const auto log = rec->log();
  EXPECT_EQ(log[log.size() - 2], "trim 0");
  EXPECT_EQ(log.back(), "flush");
}

TEST_F(HostTest, ExtentsWithoutPluginSupportReportAllocatedData) {
  ConnectionPluginState c;
  start_and_open(c);
  std::vector<core::Extent> out;
  ASSERT_EQ(h->extents(c, 1000, 24, 0, out, 16), 0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].offset, 24u);
  EXPECT_EQ(out[0].length, 1000u);
  EXPECT_EQ(out[0].type, 0u);
}

TEST_F(HostTest, ExtentsAreClippedMergedAndContiguous) {
  rec->extents_supported = true;
  rec->extents_fn = [](plugin::ExtentSink& sink, std::uint64_t, std::uint64_t) {
    sink.add(0, 100, 3);    // before and into the range: clipped to start at 50
    sink.add(100, 100, 3);  // same type, adjacent: merged
    sink.add(200, 50, 0);
    sink.add(250, 1000, 1);  // beyond the end: clipped
  };
  ConnectionPluginState c;
  start_and_open(c);
  std::vector<core::Extent> out;
  ASSERT_EQ(h->extents(c, 250, 50, 0, out), 0);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].offset, 50u);
  EXPECT_EQ(out[0].length, 150u);
  EXPECT_EQ(out[0].type, 3u);
  EXPECT_EQ(out[1].offset, 200u);
  EXPECT_EQ(out[1].length, 50u);
  EXPECT_EQ(out[2].offset, 250u);
  EXPECT_EQ(out[2].length, 50u);
  EXPECT_EQ(out[2].type, 1u);
}

TEST_F(HostTest, ExtentsStopAtReqOneAndAtTheMaximum) {
  rec->extents_supported = true;
  int added = 0;
  rec->extents_fn = [&](plugin::ExtentSink& sink, std::uint64_t count, std::uint64_t offset) {
    for (std::uint64_t o = offset; o < offset + count; o += 10) {
      ++added;
      if (!sink.add(o, 10, (o / 10) % 2)) return;
    }
  };
  ConnectionPluginState c;
  start_and_open(c);
  std::vector<core::Extent> out;
  ASSERT_EQ(h->extents(c, 1000, 0, req_one, out), 0);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(added, 1);  // the plugin was told to stop
  ASSERT_EQ(h->extents(c, 1000, 0, 0, out, 5), 0);
  EXPECT_EQ(out.size(), 5u);
  EXPECT_EQ(out.back().offset + out.back().length, 50u);
}

TEST_F(HostTest, ExtentsWithAGapOrNothingFailWithEio) {
  rec->extents_supported = true;
  rec->extents_fn = [](plugin::ExtentSink& sink, std::uint64_t, std::uint64_t) { sink.add(500, 10, 0); };
  ConnectionPluginState c;
  start_and_open(c);
  std::vector<core::Extent> out;
  EXPECT_EQ(h->extents(c, 1000, 0, 0, out), EIO);
  EXPECT_TRUE(out.empty());
  rec->extents_fn = nullptr;
  EXPECT_EQ(h->extents(c, 1000, 0, 0, out), EIO);
}

TEST_F(HostTest, StrangeReturnValuesBecomeEio) {
  ConnectionPluginState c;
  start_and_open(c);
  std::vector<std::byte> buf(16);
  rec->pread_result = -5;
  EXPECT_EQ(h->pread(c, buf, 0), EIO);
  rec->pread_result = 1 << 20;
  EXPECT_EQ(h->pread(c, buf, 0), EIO);
  rec->pread_result = ENOSPC;
  EXPECT_EQ(h->pread(c, buf, 0), ENOSPC);
}

TEST_F(HostTest, CacheIsEmulatedByPreadWhenAsked) {
  rec->cache_mode = plugin::cache_emulate;
  ConnectionPluginState c;
  start_and_open(c);
  ASSERT_EQ(h->cache(c, 3u << 20, 0), 0);
  EXPECT_EQ(rec->preads.load(), 3);
}

TEST_F(HostTest, DisconnectFromAConnectedCallbackReachesTheRightConnection) {
  rec->disconnect_in = "pread";
  rec->disconnect_force = true;
  ConnectionPluginState c;
  c.id = 42;
  start_and_open(c);
  std::vector<std::byte> buf(16);
  EXPECT_EQ(h->pread(c, buf, 0), 0);
  const auto d = h->disconnects();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].first, 42u);
  EXPECT_TRUE(d[0].second);
}

TEST_F(HostTest, DisconnectFromOpenOrCloseOrOutsideIsIgnored) {
  ConnectionPluginState c;
  c.id = 7;
  rec->disconnect_in = "open";
  start_and_open(c);
  rec->disconnect_in = "preconnect";
  ConnectionPluginState other;
  other.id = 8;
  EXPECT_EQ(h->preconnect(other, true), 0);
  EXPECT_EQ(rec->log().back(), "preconnect ro");
  rec->disconnect_in = "list_exports";
  EXPECT_EQ(h->listed_names(), std::vector<std::string>{""});
  rec->disconnect_in = "close";
  EXPECT_EQ(h->close(c), 0);
  h->host->disconnect(false);  // no callback running on this thread at all
  EXPECT_TRUE(h->disconnects().empty());
  EXPECT_TRUE(h->debug_contains("ignored"));
}

TEST_F(HostTest, DisconnectFromManyThreadsEachReachesItsOwnConnection) {
  rec->disconnect_in = "pread";
  ASSERT_EQ(h->start({}), "");
  constexpr int thread_count = 8;
  std::vector<std::thread> threads;
  for (int t = 0; t < thread_count; ++t) {
    threads.emplace_back([&, t] {
      ConnectionPluginState c;
      c.id = 100 + t;
      ASSERT_EQ(h->open(c), 0);
      std::vector<std::byte> buf(8);
      for (int i = 0; i < 20; ++i) EXPECT_EQ(h->pread(c, buf, 0), 0);
      EXPECT_EQ(h->close(c), 0);
    });
  }
  for (auto& t : threads) t.join();
  const auto d = h->disconnects();
  ASSERT_EQ(d.size(), thread_count * 20u);
  std::vector<int> per_id(thread_count);
  for (const auto& [id, force] : d) {
    ASSERT_GE(id, 100u);
    ASSERT_LT(id, 100u + thread_count);
    ++per_id[id - 100];
    EXPECT_FALSE(force);
  }
  for (int n : per_id) EXPECT_EQ(n, 20);
}

TEST_F(HostTest, ShutdownFromManyThreadsReachesTheHookEachTime) {
  ASSERT_EQ(h->start({}), "");
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) h->host->shutdown();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(h->shutdowns.load(), 80);
}

TEST_F(HostTest, UnloadHappensExactlyOnce) {
  ASSERT_EQ(h->start({}), "");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&] { h->host->unload(); });
  for (auto& t : threads) t.join();
  h->host->unload();
  EXPECT_EQ(rec->unloads.load(), 1);
}

TEST(HostLifetime, DestroyingAStartedHostUnloadsOnce) {
  auto p = std::make_unique<RecordingPlugin>();
  auto counter = p->unload_counter;
  {
    HostHarness h(std::move(p));
    ASSERT_EQ(h.start({}), "");
  }
  EXPECT_EQ(counter->load(), 1);
}

TEST(HostLifetime, ExplicitUnloadThenDestroyUnloadsOnce) {
  auto p = std::make_unique<RecordingPlugin>();
  auto counter = p->unload_counter;
  {
    HostHarness h(std::move(p));
    ASSERT_EQ(h.start({}), "");
    h.host->unload();
  }
  EXPECT_EQ(counter->load(), 1);
}

TEST_F(HostTest, OpenAndClosePairAndNoCallReachesThePluginAfterClose) {
  ConnectionPluginState c;
  start_and_open(c);
  EXPECT_NE(c.handle, nullptr);
  EXPECT_EQ(h->close(c), 0);
  EXPECT_EQ(c.handle, nullptr);
  std::vector<std::byte> buf(8);
  EXPECT_EQ(h->pread(c, buf, 0), EIO);
  EXPECT_EQ(rec->preads.load(), 0);
  EXPECT_EQ(h->close(c), 0);  // a second close is harmless and reaches no plugin
  EXPECT_EQ(rec->opens.load(), 1);
  EXPECT_EQ(rec->closes.load(), 1);
}

TEST_F(HostTest, SecondOpenOnAnOpenConnectionIsRefused) {
  ConnectionPluginState c;
  start_and_open(c);
  EXPECT_EQ(h->open(c), EIO);
  EXPECT_EQ(rec->opens.load(), 1);
  EXPECT_NE(c.handle, nullptr);  // the first handle is kept, to be closed properly
}

TEST_F(HostTest, NoCallReachesThePluginAfterUnload) {
  ConnectionPluginState c;
  start_and_open(c);
  h->host->unload();
  std::vector<std::byte> buf(8);
  EXPECT_EQ(h->pread(c, buf, 0), EIO);
  EXPECT_EQ(h->close(c), EIO);
  ConnectionPluginState other;
  EXPECT_EQ(h->open(other), EIO);
  EXPECT_EQ(rec->preads.load(), 0);
  EXPECT_EQ(rec->closes.load(), 0);
  EXPECT_EQ(rec->opens.load(), 1);
  EXPECT_TRUE(h->debug_contains("after unload"));
}

// A lent block of bytes for the lending tests: 64 KiB of 0x42.
const std::vector<std::byte> lent_block(64 * 1024, std::byte{0x42});

TEST_F(HostTest, LendIsNotSupportedUnlessThePluginLends) {
  ConnectionPluginState c;
  start_and_open(c);
  EXPECT_FALSE(h->host->lends_reads());
  std::vector<std::byte> buf(4096);
  plugin::ReadLoan loan;
  EXPECT_EQ(h->lend(c, buf, 0, loan), ENOTSUP);
  EXPECT_TRUE(loan.empty());
  EXPECT_EQ(rec->loans_returned.load(), 0);
}

TEST_F(HostTest, LendPassesThePiecesThatCoverTheRequest) {
  rec->lend_fn = [](std::uint64_t count, plugin::ReadLoan& loan) {
    loan.add(lent_block.data(), count / 2, nullptr);
    loan.add(lent_block.data(), count - count / 2, nullptr);
    return 0;
  };
  ConnectionPluginState c;
  start_and_open(c);
  EXPECT_TRUE(h->host->lends_reads());
  std::vector<std::byte> buf(1001);
  plugin::ReadLoan loan;
  ASSERT_EQ(h->lend(c, buf, 0, loan), 0);
  EXPECT_EQ(HostHarness::flatten(loan), std::vector<std::byte>(1001, std::byte{0x42}));
  h->host->return_loan(loan);
  EXPECT_EQ(rec->loans_returned.load(), 1);
  h->host->return_loan(loan);  // already empty: the plugin is not asked twice
  EXPECT_EQ(rec->loans_returned.load(), 1);
}

TEST_F(HostTest, LendWithPiecesThatDoNotCoverTheRequestFailsEioAndTakesThemBack) {
  rec->lend_fn = [](std::uint64_t count, plugin::ReadLoan& loan) {
    loan.add(lent_block.data(), count - 1, nullptr);  // one byte short
    return 0;
  };
  ConnectionPluginState c;
  start_and_open(c);
  std::vector<std::byte> buf(4096);
  plugin::ReadLoan loan;
  EXPECT_EQ(h->lend(c, buf, 0, loan), EIO);
  EXPECT_TRUE(loan.empty());
  EXPECT_EQ(rec->loans_returned.load(), 1);
  EXPECT_NE(plugin::PluginHost::last_error().find("do not cover"), std::string::npos);
}

TEST_F(HostTest, LendThatFailsButKeepsPiecesHasThemTakenBack) {
  int answer = EIO;
  rec->lend_fn = [&answer](std::uint64_t count, plugin::ReadLoan& loan) {
    loan.add(lent_block.data(), count, nullptr);
    return answer;
  };
  ConnectionPluginState c;
  start_and_open(c);
  std::vector<std::byte> buf(4096);
  plugin::ReadLoan loan;
  EXPECT_EQ(h->lend(c, buf, 0, loan), EIO);  // the plugin's error stands
  answer = ENOTSUP;
  EXPECT_EQ(h->lend(c, buf, 0, loan), ENOTSUP);  // the driver will pread instead
  EXPECT_TRUE(loan.empty());
  EXPECT_EQ(rec->loans_returned.load(), 2);
}

TEST_F(HostTest, LendAfterUnloadIsRefused) {
  rec->lend_fn = [](std::uint64_t count, plugin::ReadLoan& loan) {
    loan.add(lent_block.data(), count, nullptr);
    return 0;
  };
  ConnectionPluginState c;
  start_and_open(c);
  h->host->unload();
  std::vector<std::byte> buf(4096);
  plugin::ReadLoan loan;
  EXPECT_EQ(h->lend(c, buf, 0, loan), EIO);
  EXPECT_TRUE(loan.empty());
  const auto calls = rec->log();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "pread_lend"), 0);
}

}  // namespace
}  // namespace nbdd::test
