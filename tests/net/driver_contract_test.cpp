// The driver contract (core/connection.hpp) as the daemon's net/ implements it, on a real
// Unix socket (and TCP where the transport matters) with an in-process Server and a tiny raw
// client: handshake, gather writes, pipelining, plugin calls on workers, graceful shutdown
// with a read in flight, forced disconnect, handshake timeout, garbage. The plugin's
// lifecycle calls (preconnect, open, close per connection) are in lifecycle_test.cpp.
#include <gtest/gtest.h>

#include <set>

#include "tests/net/driver_fixture.hpp"

namespace nbdd::net::driver_test {
namespace {

TEST_F(DriverContract, WriteReadBackThenDisconnectCleanly) {
  start();
  RawClient c = connect_ready();
  const auto data = pattern(65536, 3);
  ASSERT_TRUE(c.send_request(nbdc::cmd_write, 1, 4096, 65536, data));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, 0u);
  EXPECT_EQ(r->cookie, 1u);
  ASSERT_TRUE(c.send_request(nbdc::cmd_read, 2, 4096, 65536));
  r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->cookie, 2u);
  std::vector<std::uint8_t> back(65536);
  ASSERT_TRUE(c.read_exact(back.data(), back.size()));
  EXPECT_EQ(back, data);
  ASSERT_TRUE(c.send_request(nbdc::cmd_disc, 3, 0, 0));
  EXPECT_TRUE(c.wait_closed());
  // The plugin's close ran for the connection.
  for (int i = 0; i < 200 && plugin_->closes.load() < 1; ++i) std::this_thread::sleep_for(10ms);
  for (int i = 0; i < 200 && plugin_->closes.load() < plugin_->opens.load(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(plugin_->closes.load(), plugin_->opens.load());
}

TEST_F(DriverContract, HundredPipelinedRequestsAllAnswered) {
  start();
  RawClient c = connect_ready();
  constexpr int n = 100;
  std::vector<std::uint8_t> all;
  for (int i = 0; i < n; ++i) {
    const auto d = pattern(4096, static_cast<std::uint8_t>(i));
    ASSERT_TRUE(c.send_request(nbdc::cmd_write, 1000 + i, static_cast<std::uint64_t>(i) * 4096, 4096, d));
  }
  for (int i = 0; i < n; ++i) {
    auto r = c.read_reply();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->error, 0u);
  }
  for (int i = 0; i < n; ++i)
    ASSERT_TRUE(c.send_request(nbdc::cmd_read, 5000 + i, static_cast<std::uint64_t>(i) * 4096, 4096));
  std::set<std::uint64_t> seen;
  for (int i = 0; i < n; ++i) {
    auto r = c.read_reply();
    ASSERT_TRUE(r) << i;
    ASSERT_EQ(r->error, 0u);
    std::vector<std::uint8_t> back(4096);
    ASSERT_TRUE(c.read_exact(back.data(), back.size()));
    const int k = static_cast<int>(r->cookie - 5000);
    EXPECT_EQ(back, pattern(4096, static_cast<std::uint8_t>(k))) << k;
    seen.insert(r->cookie);
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(n));
}

// Reads of 32 KiB and more from a lending plugin go out from the plugin's own bytes.
TEST_F(DriverContract, LentReadsArriveIntactAndEveryLoanComesBack) {
  start({}, true);
  RawClient c = connect_ready();
  const auto data = pattern(disk_bytes, 5);
  ASSERT_TRUE(c.send_request(nbdc::cmd_write, 1, 0, disk_bytes, data));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->error, 0u);
  struct Read { std::uint64_t offset, length; };
  const std::vector<Read> reads = {{0, disk_bytes}, {4099, 100000}, {3 * 65536 + 1, 40000}, {12345, 4096}};
  for (std::size_t i = 0; i < reads.size(); ++i)
    ASSERT_TRUE(c.send_request(nbdc::cmd_read, 10 + i, reads[i].offset, reads[i].length));
  for (std::size_t i = 0; i < reads.size(); ++i) {
    r = c.read_reply();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->error, 0u);
    const Read& rd = reads.at(r->cookie - 10);
    std::vector<std::uint8_t> back(rd.length);
    ASSERT_TRUE(c.read_exact(back.data(), back.size()));
    EXPECT_TRUE(std::equal(back.begin(), back.end(), data.begin() + rd.offset)) << "read at " << rd.offset;
  }
  EXPECT_EQ(plugin_->loans_taken.load(), 3);  // the 4 KiB read was copied
  EXPECT_TRUE(eventually([&] { return plugin_->loans_out.load() == 0; }));
  server_->request_shutdown();
  ASSERT_TRUE(stopped_within(5s));
  EXPECT_EQ(result_.get(), 0);
  EXPECT_EQ(plugin_->loans_out_at_unload.load(), 0);
}

// A client that stops reading leaves replies queued with their loans; a forced end of the
// connection drops them, and every loan is back before unload.
TEST_F(DriverContract, ForcedEndGivesBackTheLoansOfUnsentReplies) {
  start({}, true);
  RawClient c = connect_ready();
  constexpr int reads = 48;
  for (int i = 0; i < reads; ++i) ASSERT_TRUE(c.send_request(nbdc::cmd_read, 100 + i, 0, disk_bytes));
  ASSERT_TRUE(eventually([&] { return plugin_->loans_taken.load() == reads; }));
  EXPECT_GT(plugin_->loans_out.load(), 0);  // most replies wait behind the full socket
  server_->request_shutdown();
  server_->request_shutdown();  // forced: nothing more is sent
  ASSERT_TRUE(stopped_within(5s));
  EXPECT_EQ(result_.get(), 0);
  EXPECT_EQ(plugin_->loans_out_at_unload.load(), 0);
  EXPECT_EQ(plugin_->loans_out.load(), 0);
}

// Over TCP the rest of a large write payload is read with a receive low-water mark
// (ConnectionSession::do_read). Payloads that arrive in uneven pieces with pauses, or whose
// last byte comes alone and late, must still be read whole: a mark above what is still to
// come would leave the connection waiting here until the reply's timeout.
// The default (--io-uring=unix) puts TCP clients on epoll: io_uring served them 10-20%
// slower on the bench VM (net/io_uring_use.hpp).
void expect_a_read_served(RawClient& c) {
  ASSERT_TRUE(c.send_request(nbdc::cmd_read, 1, 0, 4096));
  const auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, 0u);
}

TEST_F(DriverContract, DefaultServesTcpClientsOnEpoll) {
  keep_io_uring_default_ = true;
  start({}, false, true);
  RawClient c = connect_ready();
  EXPECT_FALSE(server_->uses_io_uring());
  expect_a_read_served(c);
}

TEST_F(DriverContract, DefaultServesUnixClientsOnIoUring) {
  if (!io_uring_available()) GTEST_SKIP() << "io_uring refused here";
  if (epoll_rerun()) GTEST_SKIP() << "the epoll rerun";
  keep_io_uring_default_ = true;
  start();
  RawClient c = connect_ready();
  EXPECT_TRUE(server_->uses_io_uring());
  expect_a_read_served(c);
}

TEST_F(DriverContract, TcpWritePayloadsArrivingInPiecesAreReadWhole) {
  start({}, true, true);
  RawClient c = connect_ready();
  std::vector<std::uint8_t> disk(disk_bytes);
  auto write = [&](std::uint64_t cookie, std::uint64_t offset, std::size_t length, std::size_t piece,
                   std::chrono::milliseconds pause) {
    const auto data = pattern(length, static_cast<std::uint8_t>(cookie));
    std::copy(data.begin(), data.end(), disk.begin() + static_cast<std::ptrdiff_t>(offset));
    ASSERT_TRUE(c.send_request(nbdc::cmd_write, cookie, offset, static_cast<std::uint32_t>(length)));
    for (std::size_t done = 0; done < length; done += piece) {
      if (done > 0) std::this_thread::sleep_for(pause);
      ASSERT_TRUE(c.write_all(data.data() + done, std::min(piece, length - done)));
    }
    const auto r = c.read_reply(5000);
    ASSERT_TRUE(r) << "no reply to write " << cookie;
    EXPECT_EQ(r->error, 0u);
    EXPECT_EQ(r->cookie, cookie);
  };
  write(1, 0, disk_bytes, 70001, 2ms);             // many pieces, the last one short
  write(2, 4096 * 7 + 3, 300000, 300000, 0ms);     // all at once
  write(3, 99999, 200000, 199999, 30ms);           // the last byte alone, 30 ms later
  write(4, disk_bytes - 131072, 131072, 1000, 0ms);  // the smallest that may get a mark
  ASSERT_TRUE(c.send_request(nbdc::cmd_read, 9, 0, disk_bytes));
  const auto r = c.read_reply(5000);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->error, 0u);
  std::vector<std::uint8_t> back(disk_bytes);
  ASSERT_TRUE(c.read_exact(back.data(), back.size()));
  EXPECT_TRUE(back == disk);
}

// A TCP client that hangs up in the middle of a large payload is noticed (the kernel reports
// the end of the stream whatever the low-water mark), its connection is closed, and the
// server goes on serving.
TEST_F(DriverContract, TcpClientGoneMidPayloadEndsItsConnection) {
  start({}, true, true);
  {
    RawClient c = connect_ready();
    ASSERT_TRUE(c.send_request(nbdc::cmd_write, 1, 0, disk_bytes));
    const auto part = pattern(300000, 1);
    ASSERT_TRUE(c.write_all(part));
    std::this_thread::sleep_for(20ms);
  }
  // This connection's open (the only one: nothing is opened at start-up) has its close.
  const int opened = plugin_->opens.load();
  EXPECT_EQ(opened, 1);
  EXPECT_TRUE(eventually([&] { return plugin_->closes.load() == opened; }));
  RawClient d = connect_ready();
  ASSERT_TRUE(d.send_request(nbdc::cmd_write, 2, 0, 262144, pattern(262144, 2)));
  const auto r = d.read_reply(5000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, 0u);
}

TEST_F(DriverContract, ShutdownLetsInFlightReadFinishAndRefusesNewOnes) {
  start();
  RawClient c = connect_ready();
  plugin_->read_delay_ms = 600;
  ASSERT_TRUE(c.send_request(nbdc::cmd_read, 7, 0, 4096));
  ASSERT_TRUE(eventually([&] { return plugin_->reads_started.load() == 1; }));  // reached the plugin
  server_->request_shutdown();
  ASSERT_TRUE(eventually([&] { return server_->shutdowns_handled() == 1; }));  // ShutdownRequested queued
  ASSERT_TRUE(c.send_request(nbdc::cmd_read, 8, 0, 4096));
  // Replies may come in any order: the refused one usually first.
  for (int i = 0; i < 2; ++i) {
    auto r = c.read_reply();
    ASSERT_TRUE(r);
    if (r->cookie == 7u) {
      EXPECT_EQ(r->error, 0u);  // in flight at shutdown: completes with its data
      std::vector<std::uint8_t> back(4096);
      ASSERT_TRUE(c.read_exact(back.data(), back.size()));
    } else {
      EXPECT_EQ(r->cookie, 8u);
      EXPECT_EQ(r->error, nbdc::eshutdown);
    }
  }
  EXPECT_TRUE(c.wait_closed(5000));  // idle after the grace period: closed
  ASSERT_TRUE(stopped_within(5s));
  EXPECT_EQ(result_.get(), 0);
  EXPECT_EQ(plugin_->unloads.load(), 1);
}

TEST_F(DriverContract, IdleClientDoesNotKeepTheServerAlive) {
  start();
  RawClient c = connect_ready();
  RawClient half;  // mid-handshake
  ASSERT_TRUE(half.connect_unix(socket_path_));
  const auto t0 = std::chrono::steady_clock::now();
  server_->request_shutdown();
  ASSERT_TRUE(stopped_within(3s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms);
  EXPECT_EQ(result_.get(), 0);
  EXPECT_TRUE(c.wait_closed(1000));
  EXPECT_EQ(plugin_->closes.load(), plugin_->opens.load());
}

TEST_F(DriverContract, SecondShutdownForcesAndDropsInFlightReplies) {
  start();
  RawClient c = connect_ready();
  plugin_->read_delay_ms = 1500;
  ASSERT_TRUE(c.send_request(nbdc::cmd_read, 9, 0, 4096));
  ASSERT_TRUE(eventually([&] { return plugin_->reads_started.load() == 1; }));
  server_->request_shutdown();
  server_->request_shutdown();
  EXPECT_FALSE(c.read_reply(3000));  // no reply, the connection is gone
  ASSERT_TRUE(stopped_within(5s));   // exits once the running call returned
  EXPECT_EQ(result_.get(), 0);
}

TEST_F(DriverContract, PluginForcedDisconnectSendsNoReply) {
  start();
  RawClient c = connect_ready();
  ASSERT_TRUE(c.send_request(nbdc::cmd_read, 11, force_offset, 4096));
  EXPECT_FALSE(c.read_reply(3000));
  EXPECT_TRUE(c.wait_closed(3000));
  RawClient again = connect_ready();  // the server still serves
  ASSERT_TRUE(again.send_request(nbdc::cmd_flush, 1, 0, 0));
  auto r = again.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, 0u);
}

// The plugin's disconnect(true) is fed to the core with its call's completion, before the
// PluginDone (issue 27): never a reply to the read that asked for it, whether the read ran
// inline on the I/O thread (a nonblocking plugin) or on a worker. Repeated, because the old
// design (a posted input racing the completion) passed most runs by timing alone.
class ForcedDisconnectPath : public DriverContract, public ::testing::WithParamInterface<bool> {};

TEST_P(ForcedDisconnectPath, NoReplyToTheCallThatForced) {
  start(ServerConfig{}, /*lending (inline calls)=*/GetParam());
  for (int i = 0; i < 25; ++i) {
    RawClient c = connect_ready();
    ASSERT_TRUE(c.send_request(nbdc::cmd_read, 11, force_offset, 4096));
    EXPECT_FALSE(c.read_reply(3000)) << "round " << i;
    EXPECT_TRUE(c.wait_closed(3000));
  }
}

INSTANTIATE_TEST_SUITE_P(InlineAndWorker, ForcedDisconnectPath, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Inline" : "Worker"; });

// A second shutdown request forces connections still in the handshake too (issue 27): they
// close at once instead of waiting for the handshake timeout.
TEST_F(DriverContract, SecondShutdownClosesAConnectionInTheHandshakeAtOnce) {
  start();
  RawClient c;
  ASSERT_TRUE(c.connect_unix(socket_path_));
  std::vector<std::uint8_t> greeting(18);
  ASSERT_TRUE(c.read_exact(greeting.data(), greeting.size()));  // then silence: no client flags
  const auto t0 = std::chrono::steady_clock::now();
  server_->request_shutdown();
  server_->request_shutdown();
  EXPECT_TRUE(c.wait_closed(3000));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 900ms) << "not the grace period (1 s) nor the handshake timeout";
  ASSERT_TRUE(stopped_within(5s));
  EXPECT_EQ(result_.get(), 0);
}

TEST_F(DriverContract, PluginGracefulDisconnectRepliesThenRefuses) {
  start();
  RawClient c = connect_ready();
  ASSERT_TRUE(c.send_request(nbdc::cmd_read, 12, graceful_offset, 4096));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, 0u);
  std::vector<std::uint8_t> back(4096);
  ASSERT_TRUE(c.read_exact(back.data(), back.size()));
  ASSERT_TRUE(c.send_request(nbdc::cmd_read, 13, 0, 4096));
  r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, nbdc::eshutdown);
  EXPECT_TRUE(c.wait_closed(5000));
}

TEST_F(DriverContract, HandshakeTimeoutClosesSilentClients) {
  ServerConfig config;
  config.limits.handshake_timeout = core::Duration::from_ms(300);
  start(config);
  RawClient c;
  ASSERT_TRUE(c.connect_unix(socket_path_));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.wait_closed(5000));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 250ms);
  connect_ready();
}

TEST_F(DriverContract, GarbageAndVanishingClientsDoNotHurtTheServer) {
  start();
  {
    RawClient g;
    ASSERT_TRUE(g.connect_unix(socket_path_));
    std::vector<std::uint8_t> junk(1000, 0xab);
    g.write_all(junk);
    EXPECT_TRUE(g.wait_closed(5000));
  }
  {
    RawClient v = connect_ready();
    // Half a write payload, then vanish with a reset.
    ASSERT_TRUE(v.send_request(nbdc::cmd_write, 1, 0, 65536, pattern(1000, 1)));
    v.reset();
  }
  {
    RawClient b = connect_ready();
    std::vector<std::uint8_t> bad(28, 0x11);  // bad request magic
    b.write_all(bad);
    EXPECT_TRUE(b.wait_closed(5000));
  }
  RawClient ok = connect_ready();
  ASSERT_TRUE(ok.send_request(nbdc::cmd_read, 2, 0, 512));
  auto r = ok.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, 0u);
}

TEST_F(DriverContract, MaxConnectionsRefusesTheExtraClient) {
  ServerConfig config;
  config.max_connections = 2;
  start(config);
  RawClient a = connect_ready();
  RawClient b = connect_ready();
  RawClient c;
  ASSERT_TRUE(c.connect_unix(socket_path_));
  EXPECT_TRUE(c.wait_closed(5000));
  a.send_request(nbdc::cmd_disc, 1, 0, 0);
  EXPECT_TRUE(a.wait_closed(5000));
  for (int i = 0; i < 200 && server_->live_sessions() > 1; ++i) std::this_thread::sleep_for(10ms);
  RawClient d = connect_ready();
}

}  // namespace
}  // namespace nbdd::net::driver_test
