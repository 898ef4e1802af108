// The plugin's lifecycle as the daemon runs it per connection (issue 21): preconnect before
// the greeting, open with the client's export name for each INFO/GO, close once per open,
// -r passed to every lifecycle call, and a slow open overtaken by a shutdown. In-process
// Server, raw client (tests/net/driver_fixture.hpp).
#include <gtest/gtest.h>

#include "tests/net/driver_fixture.hpp"

namespace nbdd::net::driver_test {
namespace {

class Lifecycle : public DriverContract {};

// One line each: the calls the plugin saw, for failure messages.
std::string joined(const std::vector<std::string>& calls) {
  std::string s;
  for (const auto& c : calls) s += c + "; ";
  return s;
}

// A refusing preconnect ends the connection before the greeting: the client reads EOF with
// not one byte, nothing is opened, and the next client is served.
TEST_F(Lifecycle, RefusedPreconnectClosesBeforeTheGreeting) {
  start();
  plugin_->refuse_preconnect = true;
  {
    RawClient c;
    ASSERT_TRUE(c.connect_unix(socket_path_));
    std::uint8_t byte = 0;
    EXPECT_FALSE(c.read_exact(&byte, 1, 5000));  // EOF, not a timeout (checked below)
    EXPECT_TRUE(c.wait_closed(100));
  }
  EXPECT_EQ(plugin_->preconnects.load(), 1);
  EXPECT_EQ(plugin_->opens_started.load(), 0);
  plugin_->refuse_preconnect = false;
  RawClient ok = connect_ready();
  EXPECT_EQ(plugin_->preconnects.load(), 2);
  EXPECT_EQ(plugin_->opens.load(), 1);
}

// Each GO opens the name the client asked for; DISC closes it; nothing ran at start-up.
TEST_F(Lifecycle, EachConnectionOpensTheNameItAskedForAndClosesIt) {
  start();
  EXPECT_TRUE(plugin_->calls().empty()) << joined(plugin_->calls());
  for (const std::string name : {"foo", "anything/at all"}) {
    RawClient c;
    ASSERT_TRUE(c.connect_unix(socket_path_));
    ASSERT_EQ(c.handshake(name), disk_bytes) << name;
    ASSERT_TRUE(c.send_request(nbdc::cmd_disc, 1, 0, 0));
    EXPECT_TRUE(c.wait_closed());
    EXPECT_TRUE(eventually([&] { return plugin_->closes.load() == plugin_->opens.load(); }));
  }
  const std::vector<std::string> want = {"preconnect readonly=0", "open 'foo' readonly=0", "close",
                                         "preconnect readonly=0", "open 'anything/at all' readonly=0", "close"};
  EXPECT_EQ(plugin_->calls(), want) << joined(plugin_->calls());
}

// INFO opens and closes; a GO on the same connection opens again; a name the plugin's open
// refuses is answered NBD_REP_ERR_UNKNOWN (nbdkit 1.32) and the client may try another.
TEST_F(Lifecycle, InfoThenRefusedGoThenGoOnOneConnection) {
  start();
  RawClient c;
  ASSERT_TRUE(c.connect_unix(socket_path_));
  ASSERT_TRUE(c.start_handshake());
  EXPECT_EQ(c.info("a"), disk_bytes);
  EXPECT_FALSE(c.go(plugin_->refused_name));
  EXPECT_EQ(c.last_option_error, nbdc::rep_err_unknown);
  ASSERT_EQ(c.go("b"), disk_bytes);
  ASSERT_TRUE(c.send_request(nbdc::cmd_read, 1, 0, 4096));
  const auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, 0u);
  std::vector<std::uint8_t> back(4096);
  ASSERT_TRUE(c.read_exact(back.data(), back.size()));
  ASSERT_TRUE(c.send_request(nbdc::cmd_disc, 2, 0, 0));
  EXPECT_TRUE(c.wait_closed());
  EXPECT_TRUE(eventually([&] { return plugin_->closes.load() == 2; }));
  const std::vector<std::string> want = {"preconnect readonly=0", "open 'a' readonly=0", "close",
                                         "open 'refused' readonly=0", "open 'b' readonly=0", "close"};
  EXPECT_EQ(plugin_->calls(), want) << joined(plugin_->calls());
}

// -r reaches preconnect and open, and the export is announced read-only.
TEST_F(Lifecycle, ReadOnlyIsPassedToTheLifecycleCalls) {
  start({}, false, false, true);
  RawClient c;
  ASSERT_TRUE(c.connect_unix(socket_path_));
  ASSERT_EQ(c.handshake("x"), disk_bytes);
  EXPECT_NE(c.eflags & nbdc::flag_read_only, 0);
  ASSERT_TRUE(c.send_request(nbdc::cmd_write, 1, 0, 4096, pattern(4096, 1)));
  const auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, nbdc::eperm);
  const auto calls = plugin_->calls();
  ASSERT_GE(calls.size(), 2u) << joined(calls);
  EXPECT_EQ(calls[0], "preconnect readonly=1");
  EXPECT_EQ(calls[1], "open 'x' readonly=1");
}

// A shutdown while the GO's open is still running: the GO is answered ERR_SHUTDOWN, the
// handle the open returns is closed, and the server exits 0 once that is done.
TEST_F(Lifecycle, ShutdownDuringASlowOpenAnswersErrShutdownAndClosesTheHandle) {
  start();
  plugin_->open_delay_ms = 800;
  RawClient c;
  ASSERT_TRUE(c.connect_unix(socket_path_));
  ASSERT_TRUE(c.start_handshake());
  std::optional<std::uint64_t> size;
  std::thread go([&] { size = c.go("slow"); });
  ASSERT_TRUE(eventually([&] { return plugin_->opens_started.load() == 1; }));
  server_->request_shutdown();
  go.join();
  EXPECT_FALSE(size);
  EXPECT_EQ(c.last_option_error, nbdc::rep_err_shutdown);
  c.close();
  ASSERT_TRUE(stopped_within(10s));
  EXPECT_EQ(result_.get(), 0);
  EXPECT_EQ(plugin_->opens.load(), 1);
  EXPECT_EQ(plugin_->closes.load(), 1);
  EXPECT_EQ(plugin_->unloads.load(), 1);
}

// A client that connects while another's open is slow is not held up by it (lifecycle
// calls run on the workers, not on the I/O threads).
TEST_F(Lifecycle, SlowOpenOfOneClientDoesNotHoldUpAnother) {
  start();
  plugin_->open_delay_ms = 1500;
  RawClient slow;
  ASSERT_TRUE(slow.connect_unix(socket_path_));
  ASSERT_TRUE(slow.start_handshake());
  std::optional<std::uint64_t> slow_size;
  std::thread go([&] { slow_size = slow.go("slow"); });
  ASSERT_TRUE(eventually([&] { return plugin_->opens_started.load() == 1; }));
  plugin_->open_delay_ms = 0;
  const auto t0 = std::chrono::steady_clock::now();
  RawClient quick = connect_ready();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1000ms);
  go.join();
  EXPECT_EQ(slow_size, disk_bytes);
}

}  // namespace
}  // namespace nbdd::net::driver_test
