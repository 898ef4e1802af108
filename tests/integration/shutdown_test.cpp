// Graceful and forced disconnect/shutdown end to end, driven by `sh` plugin scripts whose
// exit codes call shutdown() and disconnect(force) (see docs/daemon.md and issue 4's table).
#include <gtest/gtest.h>

#include <cstring>

#include "tests/integration/daemon_fixture.hpp"
#include "tests/integration/nbd_handle.hpp"
#include "tests/net/raw_client.hpp"

namespace nbdd::itest {
namespace {

// pread behaviour by offset: 0 plain 'A'; 64K slow (2 s); 128K disconnect(force);
// 192K data then disconnect(graceful); 256K disconnect(graceful) + error; 320K data then shutdown().
constexpr std::uint64_t slow_offset = 65536, force_offset = 131072, graceful_ok_offset = 196608,
                        graceful_err_offset = 262144, shutdown_offset = 327680;

const char* script = R"(#!/bin/sh
case "$1" in
  thread_model) echo parallel ;;
  get_size) echo 1048576 ;;
  open) echo handle ;;
  can_write|can_flush) exit 0 ;;
  pread)
    count=$3; off=$4
    fill() { head -c "$count" /dev/zero | tr '\0' "$1"; }
    case "$off" in
      65536) sleep 2; fill A ;;
      131072) exit 6 ;;
      196608) fill D; exit 7 ;;
      262144) echo "ESHUTDOWN going away" >&2; exit 8 ;;
      327680) fill S; exit 4 ;;
      *) fill A ;;
    esac ;;
  pwrite) cat > /dev/null ;;
  flush) ;;
  *) exit 2 ;;
esac
)";

class Shutdown : public ::testing::Test {
 protected:
  void SetUp() override {
    script_path_ = dir_.file("plugin.sh");
    write_file(script_path_, script, true);
  }
  // -v: the tests synchronise on the debug log instead of sleeping.
  std::unique_ptr<Daemon> start(std::vector<std::string> extra = {}) {
    extra.insert(extra.end(), {"-v", "sh", script_path_});
    return Daemon::start_unix(dir_, extra);
  }
  static std::int64_t aio_read(Nbd& h, std::vector<char>& buf, std::uint64_t off) {
    return nbd_aio_pread(h, buf.data(), buf.size(), off, NBD_NULL_COMPLETION, 0);
  }
  TempDir dir_;
  std::string script_path_;
};

TEST_F(Shutdown, SigtermLetsInFlightReadFinishRefusesNewOnesAndExitsZero) {
  // The 2 s read finishes within the 3 s grace period of the shutdown (at 3 s the server
  // would force whatever is left: ForcedShutdown tests).
  auto d = start({"--grace-period=3"});
  ASSERT_TRUE(d);
  Nbd busy, idle;
  ASSERT_EQ(nbd_connect_uri(busy, d->uri().c_str()), 0) << Nbd::error();
  ASSERT_EQ(nbd_connect_uri(idle, d->uri().c_str()), 0) << Nbd::error();
  std::vector<char> slow(4096), late(4096);
  const auto slow_cookie = aio_read(busy, slow, slow_offset);
  ASSERT_GT(slow_cookie, 0);
  ASSERT_TRUE(d->wait_log("pread offset=65536"));  // the read reached the plugin
  const auto t0 = std::chrono::steady_clock::now();
  d->signal(SIGTERM);
  // Both sessions have taken ShutdownRequested (-v logs each input as its session feeds it
  // to core), so the next request is parsed after it. "server act EndConnection" only says
  // the input was posted: on io_uring, a request whose bytes reach the shard in the same
  // turn as that post could still be parsed first (seen once in CI).
  ASSERT_TRUE(d->wait_log("in  ShutdownRequested", 30s, 2));
  const auto late_cookie = aio_read(busy, late, 0);
  ASSERT_GT(late_cookie, 0);
  EXPECT_EQ(wait_command(busy, late_cookie), ESHUTDOWN);
  EXPECT_EQ(wait_command(busy, slow_cookie), 0);
  EXPECT_EQ(slow, std::vector<char>(4096, 'A'));  // real data, not an error
  const auto status = d->wait_exit(20s);
  EXPECT_EQ(status, 0) << d->stderr_text();
  // 2 s of script, then at most the rest of the grace period, with slack for a loaded machine.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 6s);
}

TEST_F(Shutdown, IdleClientsDoNotDelayExitBeyondTwoSeconds) {
  auto d = start();
  ASSERT_TRUE(d);
  Nbd a, b;
  ASSERT_EQ(nbd_connect_uri(a, d->uri().c_str()), 0) << Nbd::error();
  ASSERT_EQ(nbd_connect_uri(b, d->uri().c_str()), 0) << Nbd::error();
  nbdd::testing::RawClient mid;  // stuck in the handshake
  ASSERT_TRUE(mid.connect_unix(d->socket()));
  std::this_thread::sleep_for(200ms);
  const auto t0 = std::chrono::steady_clock::now();
  d->signal(SIGTERM);
  const auto status = d->wait_exit(20s);
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(status, 0) << d->stderr_text();
  // The requirement is 2 s (grace period 1 s); 0.5 s slack for a loaded 2-core CI machine.
  EXPECT_LT(elapsed, 2500ms) << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms";
}

TEST_F(Shutdown, SecondSigtermForcesAndDropsTheInFlightReply) {
  auto d = start();
  ASSERT_TRUE(d);
  Nbd h;
  ASSERT_EQ(nbd_connect_uri(h, d->uri().c_str()), 0) << Nbd::error();
  std::vector<char> slow(4096);
  const auto cookie = aio_read(h, slow, slow_offset);
  ASSERT_GT(cookie, 0);
  ASSERT_TRUE(d->wait_log("pread offset=65536"));
  d->signal(SIGTERM);
  // Two signals before the handler ran would count as one (signal_set coalesces them).
  ASSERT_TRUE(d->wait_log("force=false}"));
  d->signal(SIGTERM);
  EXPECT_NE(wait_command(h, cookie), 0);  // no reply: the connection is gone
  EXPECT_EQ(d->wait_exit(20s), 0) << d->stderr_text();
}

TEST_F(Shutdown, PluginForcedDisconnectDropsTheReplyAndKeepsServing) {
  auto d = start();
  ASSERT_TRUE(d);
  {
    Nbd h;
    ASSERT_EQ(nbd_connect_uri(h, d->uri().c_str()), 0) << Nbd::error();
    std::vector<char> buf(4096);
    EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), force_offset, 0), -1);
    EXPECT_TRUE(nbd_aio_is_dead(h) || nbd_aio_is_closed(h));
  }
  Nbd h2;
  ASSERT_EQ(nbd_connect_uri(h2, d->uri().c_str()), 0) << Nbd::error();
  std::vector<char> buf(512);
  EXPECT_EQ(nbd_pread(h2, buf.data(), buf.size(), 0, 0), 0) << Nbd::error();
}

TEST_F(Shutdown, PluginGracefulDisconnectRepliesThenRefusesThenCloses) {
  auto d = start();
  ASSERT_TRUE(d);
  Nbd h;
  ASSERT_EQ(nbd_connect_uri(h, d->uri().c_str()), 0) << Nbd::error();
  std::vector<char> buf(4096);
  ASSERT_EQ(nbd_pread(h, buf.data(), buf.size(), graceful_ok_offset, 0), 0) << Nbd::error();
  EXPECT_EQ(buf, std::vector<char>(4096, 'D'));
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_EQ(nbd_get_errno(), ESHUTDOWN);
  // The server closes once the grace period passes.
  for (int i = 0; i < 200 && !nbd_aio_is_dead(h) && !nbd_aio_is_closed(h); ++i) nbd_poll(h, 100);
  EXPECT_TRUE(nbd_aio_is_dead(h) || nbd_aio_is_closed(h));
}

TEST_F(Shutdown, PluginGracefulDisconnectWithError) {
  auto d = start();
  ASSERT_TRUE(d);
  Nbd h;
  ASSERT_EQ(nbd_connect_uri(h, d->uri().c_str()), 0) << Nbd::error();
  std::vector<char> buf(4096);
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), graceful_err_offset, 0), -1);
  EXPECT_EQ(nbd_get_errno(), ESHUTDOWN);
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_EQ(nbd_get_errno(), ESHUTDOWN);
}

TEST_F(Shutdown, PluginShutdownEndsEveryClientAndExitsZero) {
  auto d = start();
  ASSERT_TRUE(d);
  Nbd a, b, c;
  ASSERT_EQ(nbd_connect_uri(a, d->uri().c_str()), 0) << Nbd::error();
  ASSERT_EQ(nbd_connect_uri(b, d->uri().c_str()), 0) << Nbd::error();
  ASSERT_EQ(nbd_connect_uri(c, d->uri().c_str()), 0) << Nbd::error();
  std::vector<char> buf(4096);
  ASSERT_EQ(nbd_pread(a, buf.data(), buf.size(), shutdown_offset, 0), 0) << Nbd::error();
  EXPECT_EQ(buf, std::vector<char>(4096, 'S'));
  EXPECT_EQ(d->wait_exit(20s), 0) << d->stderr_text();
  EXPECT_EQ(nbd_pread(b, buf.data(), buf.size(), 0, 0), -1);  // b was closed
}

TEST_F(Shutdown, SigintIsGracefulToo) {
  auto d = start();
  ASSERT_TRUE(d);
  Nbd h;
  ASSERT_EQ(nbd_connect_uri(h, d->uri().c_str()), 0) << Nbd::error();
  d->signal(SIGINT);
  EXPECT_EQ(d->wait_exit(20s), 0) << d->stderr_text();
}

}  // namespace
}  // namespace nbdd::itest
