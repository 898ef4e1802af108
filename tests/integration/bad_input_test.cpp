// Hostile and broken clients on raw sockets: garbage, oversized options, bad magic,
// 4 GiB reads, clients vanishing mid-payload, 500 simultaneous connections, silent
// clients (handshake timeout). After each, the daemon still serves and exits cleanly.
#include <gtest/gtest.h>

#include "tests/integration/daemon_fixture.hpp"
#include "tests/integration/nbd_handle.hpp"
#include "tests/net/raw_client.hpp"

namespace nbdd::itest {
namespace {
using nbdd::testing::RawClient;
namespace nbdc = nbdd::testing::nbdc;

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = Daemon::start_unix(dir_, {"--handshake-timeout=2", "memory", "16M"});
    ASSERT_TRUE(daemon_);
  }
  void TearDown() override {
    if (!daemon_) return;
    still_serves();
    daemon_->signal(SIGTERM);
    EXPECT_EQ(daemon_->wait_exit(30s), 0) << daemon_->stderr_text();
  }
  void still_serves() {
    EXPECT_FALSE(wait_child(daemon_->pid(), 0ms)) << "the daemon died: " << daemon_->stderr_text();
    RawClient c;
    ASSERT_TRUE(c.connect_unix(daemon_->socket()));
    ASSERT_EQ(c.handshake(), 16u << 20);
    ASSERT_TRUE(c.send_request(nbdc::cmd_read, 77, 0, 512));
    auto r = c.read_reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->error, 0u);
  }
  RawClient connect() {
    RawClient c;
    EXPECT_TRUE(c.connect_unix(daemon_->socket()));
    return c;
  }
  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(BadInput, GarbageInsteadOfClientFlags) {
  RawClient c = connect();
  std::vector<std::uint8_t> junk(4096);
  for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<std::uint8_t>(i * 37 + 11);
  c.write_all(junk);
  EXPECT_TRUE(c.wait_closed());
  still_serves();
}

TEST_F(BadInput, BadOptionMagic) {
  RawClient c = connect();
  ASSERT_TRUE(c.start_handshake());
  std::vector<std::uint8_t> v;
  RawClient::put64(v, 0x1122334455667788ull);
  RawClient::put32(v, nbdc::opt_go);
  RawClient::put32(v, 0);
  c.write_all(v);
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(BadInput, OversizedOptionIsRefusedOrDropped) {
  {  // 100 KiB: beyond the option buffer, read and answered NBD_REP_ERR_TOO_BIG
    RawClient c = connect();
    ASSERT_TRUE(c.start_handshake());
    ASSERT_TRUE(c.send_option(nbdc::opt_go, std::vector<std::uint8_t>(100 * 1024, 0)));
    auto r = c.read_option_reply();
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->type & 0x80000000u) << r->type;
    ASSERT_TRUE(c.send_option(nbdc::opt_abort, {}));
  }
  {  // 4 GiB - 1 announced: the server must not try to buffer it
    RawClient c = connect();
    ASSERT_TRUE(c.start_handshake());
    std::vector<std::uint8_t> v;
    RawClient::put64(v, nbdc::ihaveopt);
    RawClient::put32(v, nbdc::opt_go);
    RawClient::put32(v, 0xffffffffu);
    c.write_all(v);
    std::vector<std::uint8_t> chunk(1 << 20, 0x5a);
    for (int i = 0; i < 80 && c.write_all(chunk); ++i) {
    }
    EXPECT_TRUE(c.wait_closed());
  }
}

TEST_F(BadInput, BadRequestMagicClosesTheConnection) {
  RawClient c = connect();
  ASSERT_TRUE(c.handshake());
  std::vector<std::uint8_t> v(28, 0xee);
  c.write_all(v);
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(BadInput, FourGiBReadIsRefused) {
  RawClient c = connect();
  ASSERT_TRUE(c.handshake());
  ASSERT_TRUE(c.send_request(nbdc::cmd_read, 1, 0, 0xffffffffu));
  auto r = c.read_reply();
  if (r) {
    EXPECT_EQ(r->cookie, 1u);
    EXPECT_NE(r->error, 0u);  // EINVAL/EOVERFLOW: never 4 GiB of data
    ASSERT_TRUE(c.send_request(nbdc::cmd_read, 2, 0, 512));
    r = c.read_reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->error, 0u);
  } else {
    EXPECT_TRUE(c.wait_closed());
  }
}

TEST_F(BadInput, ClientsVanishingMidPayloadAndMidReply) {
  for (int i = 0; i < 20; ++i) {
    RawClient c = connect();
    ASSERT_TRUE(c.handshake());
    ASSERT_TRUE(c.send_request(nbdc::cmd_write, 1, 0, 1 << 20, std::vector<std::uint8_t>(1000 + i * 100, 1)));
    if (i % 2) c.reset();
    else c.close();
  }
  for (int i = 0; i < 10; ++i) {  // many large reads, then gone without reading replies
    RawClient c = connect();
    ASSERT_TRUE(c.handshake());
    for (int k = 0; k < 32; ++k) c.send_request(nbdc::cmd_read, k, 0, 1 << 20);
    c.reset();
  }
  still_serves();
}

TEST_F(BadInput, FiveHundredSimultaneousConnections) {
  constexpr int n = 500;
  std::vector<RawClient> clients;
  clients.reserve(n);
  int ready = 0;
  for (int i = 0; i < n; ++i) {  // each finishes its handshake at once (timeout 2 s here)
    clients.emplace_back();
    ASSERT_TRUE(clients.back().connect_unix(daemon_->socket())) << i;
    if (clients.back().handshake() == (16u << 20)) ++ready;
  }
  EXPECT_EQ(ready, n);
  int answered = 0;
  for (int i = 0; i < n; ++i) clients[i].send_request(nbdc::cmd_read, i, 0, 4096);
  for (auto& c : clients) {
    auto r = c.read_reply();
    std::vector<std::uint8_t> buf(4096);
    if (r && r->error == 0 && c.read_exact(buf.data(), buf.size())) ++answered;
  }
  EXPECT_EQ(answered, n);
  still_serves();
  clients.clear();
}

TEST_F(BadInput, SilentClientsHitTheHandshakeTimeout) {
  RawClient silent = connect();
  RawClient half = connect();
  ASSERT_TRUE(half.start_handshake());  // greeting read, then nothing
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(silent.wait_closed(30000));
  EXPECT_TRUE(half.wait_closed(30000));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1s);
}

}  // namespace
}  // namespace nbdd::itest
