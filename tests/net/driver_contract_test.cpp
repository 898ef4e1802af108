// The driver contract (core/connection.hpp) as the daemon's net/ implements it, on a real
// Unix socket (and TCP where the transport matters) with an in-process Server and a tiny raw client: handshake, gather writes,
// pipelining, plugin calls on workers, graceful shutdown with a read in flight, forced
// disconnect, handshake timeout, garbage.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "net/server.hpp"
#include "tests/net/raw_client.hpp"

namespace nbdd::net {
namespace {
using nbdd::testing::RawClient;
namespace nbdc = nbdd::testing::nbdc;
using namespace std::chrono_literals;

constexpr std::uint64_t disk_bytes = 1 << 20;
constexpr std::uint64_t force_offset = disk_bytes - 4096;     // pread here: disconnect(true)
constexpr std::uint64_t graceful_offset = disk_bytes - 8192;  // pread here: disconnect(false)

class TestPlugin final : public plugin::Plugin {
 public:
  // Set before start: nonblocking (data calls on the I/O thread) and lending its reads.
  bool lending = false;
  std::atomic<int> read_delay_ms{0};
  std::atomic<int> opens{0}, closes{0}, unloads{0}, reads_started{0};
  std::atomic<int> loans_taken{0}, loans_out{0}, loans_out_at_unload{-1};

  std::string_view name() const override { return "contract"; }
  int open(bool, std::string_view, std::unique_ptr<plugin::Handle>& out) override {
    ++opens;
    out = std::make_unique<plugin::Handle>();
    return 0;
  }
  void close(plugin::Handle&) override { ++closes; }
  void unload() override {
    ++unloads;
    loans_out_at_unload = loans_out.load();
  }
  bool nonblocking() const override { return lending; }
  bool has_pread_lend() const override { return lending; }
  // Lends the disk's own bytes in 64 KiB pieces; they never move, so nothing to pin.
  int pread_lend(plugin::Handle&, std::uint64_t count, std::uint64_t offset, std::uint32_t,
                 plugin::ReadLoan& loan) override {
    ++reads_started;
    if (offset == force_offset) host().disconnect(true);
    if (offset == graceful_offset) host().disconnect(false);
    for (std::uint64_t done = 0; done < count;) {
      const std::uint64_t n = std::min<std::uint64_t>(count - done, 64 * 1024);
      if (!loan.add(disk_.data() + offset + done, n, nullptr)) return ENOTSUP;  // the host takes them back
      done += n;
    }
    ++loans_taken;
    ++loans_out;
    return 0;
  }
  void return_loan(const plugin::ReadLoan&) override { --loans_out; }
  int get_size(plugin::Handle&, std::uint64_t& size) override {
    size = disk_bytes;
    return 0;
  }
  int pread(plugin::Handle&, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t) override {
    ++reads_started;
    if (offset == force_offset) host().disconnect(true);
    if (offset == graceful_offset) host().disconnect(false);
    if (const int ms = read_delay_ms.load()) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    const std::lock_guard lock(mutex_);
    std::memcpy(buf.data(), disk_.data() + offset, buf.size());
    return 0;
  }
  int pwrite(plugin::Handle&, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t) override {
    const std::lock_guard lock(mutex_);
    std::memcpy(disk_.data() + offset, buf.data(), buf.size());
    return 0;
  }
  int flush(plugin::Handle&, std::uint32_t) override { return 0; }
  bool has_pwrite() const override { return true; }
  bool has_flush() const override { return true; }

 private:
  std::mutex mutex_;
  std::vector<std::byte> disk_ = std::vector<std::byte>(disk_bytes);
};

class DriverContract : public ::testing::Test {
 protected:
  // lending: the plugin is nonblocking (its data calls run on the I/O thread, as the memory
  // plugin's do) and lends its reads. tcp: listen on 127.0.0.1 instead of a Unix socket.
  void start(ServerConfig config = {}, bool lending = false, bool tcp = false) {
    char templ[] = "/tmp/nbdd-net-test-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    socket_path_ = dir_ + "/sock";
    config.worker_threads = 4;
    server_ = std::make_unique<Server>(config);
    auto p = std::make_unique<TestPlugin>();
    p->lending = lending;
    plugin_ = p.get();
    host_ = std::make_unique<plugin::PluginHost>(std::move(p), server_->hooks());
    ASSERT_EQ(host_->start({}), "");
    core::ExportCatalog catalog;
    ASSERT_EQ(host_->build_catalog(false, catalog), "");
    server_->set_plugin(*host_, std::move(catalog), core::ThreadModel::parallel);
    if (tcp) {
      tcp_port_ = nbdd::testing::free_tcp_port();
      ASSERT_EQ(server_->listen_tcp("127.0.0.1", std::to_string(tcp_port_)), "");
    } else {
      ASSERT_EQ(server_->listen_unix(socket_path_), "");
    }
    result_ = std::async(std::launch::async, [this] { return server_->run(); });
  }
  // Waits for run() to return; false on timeout.
  bool stopped_within(std::chrono::milliseconds limit) {
    return result_.valid() && result_.wait_for(limit) == std::future_status::ready;
  }
  void TearDown() override {
    if (server_ && result_.valid()) {
      server_->request_shutdown();
      server_->request_shutdown();  // force whatever is left
      EXPECT_TRUE(stopped_within(20s));
      if (result_.valid()) result_.get();
    }
    host_.reset();
    server_.reset();
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }
  RawClient connect_ready() {
    RawClient c;
    EXPECT_TRUE(tcp_port_ != 0 ? c.connect_tcp(tcp_port_) : c.connect_unix(socket_path_));
    EXPECT_EQ(c.handshake(), disk_bytes);
    return c;
  }

  std::string dir_, socket_path_;
  std::uint16_t tcp_port_ = 0;
  std::unique_ptr<Server> server_;
  std::unique_ptr<plugin::PluginHost> host_;
  TestPlugin* plugin_ = nullptr;
  std::future<int> result_;
};

template <class F>
bool eventually(F condition) {
  for (int i = 0; i < 3000; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(seed + i * 7);
  return v;
}

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
  // Every open has its close: the catalog's probe at start, and this connection's.
  const int opened = plugin_->opens.load();
  EXPECT_EQ(opened, 2);
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
}  // namespace nbdd::net
