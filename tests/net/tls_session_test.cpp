// STARTTLS through the real Server and ConnectionSession in-process (net/connection_session_tls.cpp):
// a raw NBD client negotiates up to STARTTLS in plain text, a GnuTLS client takes over the
// socket, and a relay thread pair hands the decrypted stream to a RawClient, which carries on
// with the NBD protocol as if nothing happened. Independent of the command line (run_nbdd).
#include <gnutls/gnutls.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <thread>

#include "net/options.hpp"
#include "net/tls_context.hpp"
#include "tests/net/driver_fixture.hpp"
#include "tests/net/tls_certs.hpp"

namespace nbdd::net::driver_test {
namespace {

constexpr std::uint32_t opt_starttls = 5;
constexpr std::uint32_t rep_err_tls_reqd = 0x80000005u;

std::string pki;

// A GnuTLS client on `net_fd` whose plaintext is relayed to and from a socketpair.
class TlsRelay {
 public:
  TlsRelay(int net_fd, const std::string& ca_dir) : net_fd_(net_fd) {
    gnutls_init(&session_, GNUTLS_CLIENT);
    gnutls_certificate_allocate_credentials(&x509_);
    gnutls_certificate_set_x509_trust_file(x509_, (ca_dir + "/ca-cert.pem").c_str(), GNUTLS_X509_FMT_PEM);
    gnutls_credentials_set(session_, GNUTLS_CRD_CERTIFICATE, x509_);
    gnutls_priority_set_direct(session_, "NORMAL", nullptr);
    gnutls_session_set_verify_cert(session_, "localhost", 0);
    gnutls_transport_set_int(session_, net_fd_);
  }
  ~TlsRelay() {
    ::shutdown(net_fd_, SHUT_RDWR);
    if (plain_[0] >= 0) ::shutdown(plain_[0], SHUT_RDWR);
    if (up_.joinable()) up_.join();
    if (down_.joinable()) down_.join();
    if (plain_[0] >= 0) ::close(plain_[0]);
    gnutls_deinit(session_);
    gnutls_certificate_free_credentials(x509_);
  }
  int handshake() {
    int r;
    do r = gnutls_handshake(session_);
    while (r < 0 && gnutls_error_is_fatal(r) == 0);
    return r;
  }
  // After the handshake: a RawClient speaking plain NBD through the TLS session.
  void attach(RawClient& client) {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, plain_), 0);
    client.adopt_pipes(plain_[1], ::dup(plain_[1]));
    up_ = std::thread([this] {
      std::vector<char> buf(64 * 1024);
      for (;;) {
        const ssize_t n = ::read(plain_[0], buf.data(), buf.size());
        if (n <= 0) break;
        for (ssize_t done = 0; done < n;) {
          const ssize_t w = gnutls_record_send(session_, buf.data() + done, static_cast<std::size_t>(n - done));
          if (w < 0 && gnutls_error_is_fatal(static_cast<int>(w)) == 0) continue;
          if (w <= 0) return;
          done += w;
        }
      }
    });
    down_ = std::thread([this] {
      std::vector<char> buf(64 * 1024);
      for (;;) {
        const ssize_t n = gnutls_record_recv(session_, buf.data(), buf.size());
        if (n < 0 && gnutls_error_is_fatal(static_cast<int>(n)) == 0) continue;
        if (n <= 0) break;
        if (::write(plain_[0], buf.data(), static_cast<std::size_t>(n)) != n) break;
      }
      ::shutdown(plain_[0], SHUT_WR);  // the client sees the server's close
    });
  }

 private:
  int net_fd_;
  gnutls_session_t session_ = nullptr;
  gnutls_certificate_credentials_t x509_ = nullptr;
  int plain_[2] = {-1, -1};
  std::thread up_, down_;
};

class TlsSession : public DriverContract {
 protected:
  static void SetUpTestSuite() {
    char templ[] = "/tmp/nbdd-tls-session-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    pki = templ;
    ASSERT_EQ(nbdd::testing::make_test_pki(pki), "");
  }
  static void TearDownTestSuite() { std::system(("rm -rf '" + pki + "'").c_str()); }

  // DriverContract::start() over TCP, with TLS credentials given before the server runs.
  void start_tls(core::TlsMode mode, bool lending) {
    Options o;
    o.tls = Options::Tls::require;
    o.tls_given = true;
    o.tls_certificates = pki + "/server";
    std::string error;
    tls_ = make_tls_context(o, error);
    ASSERT_NE(tls_, nullptr) << error;
    ServerConfig config;
    config.tls = mode;
    start(config, lending, /*tcp=*/true, /*read_only=*/false, tls_.get());
  }
  void TearDown() override {
    DriverContract::TearDown();
    tls_.reset();  // after the server: sessions use it until they end
  }
  // Connects and negotiates in plain text up to STARTTLS's ACK.
  RawClient until_starttls() {
    RawClient c;
    EXPECT_TRUE(c.connect_tcp(tcp_port_));
    EXPECT_TRUE(c.start_handshake());
    EXPECT_TRUE(c.send_option(opt_starttls, {}));
    auto ack = c.read_option_reply();
    EXPECT_TRUE(ack && ack->type == nbdc::rep_ack);
    return c;
  }

  std::unique_ptr<TlsContext> tls_;
};

std::vector<std::uint8_t> pattern(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return v;
}

TEST_F(TlsSession, RequireRefusesBeforeTlsThenServesReadsAndWritesThroughIt) {
  start_tls(core::TlsMode::require, /*lending=*/true);
  RawClient raw;
  ASSERT_TRUE(raw.connect_tcp(tcp_port_));
  ASSERT_TRUE(raw.start_handshake());
  ASSERT_TRUE(raw.send_option(nbdc::opt_list, {}));
  auto refused = raw.read_option_reply();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->type, rep_err_tls_reqd);
  ASSERT_TRUE(raw.send_option(opt_starttls, {}));
  auto ack = raw.read_option_reply();
  ASSERT_TRUE(ack && ack->type == nbdc::rep_ack);
  EXPECT_EQ(plugin_->opens.load(), 0);  // nothing about exports before TLS

  TlsRelay relay(raw.fd(), pki + "/client");
  ASSERT_EQ(relay.handshake(), 0);
  RawClient c;
  relay.attach(c);
  ASSERT_EQ(c.go(""), disk_bytes);
  // 256 KiB each way: the read is lent by the plugin (zero-copy) and encrypted from its pages.
  const auto data = pattern(256 * 1024);
  ASSERT_TRUE(c.send_request(nbdc::cmd_write, 1, 4096, static_cast<std::uint32_t>(data.size()), data));
  auto w = c.read_reply();
  ASSERT_TRUE(w);
  EXPECT_EQ(w->error, 0u);
  ASSERT_TRUE(c.send_request(nbdc::cmd_read, 2, 4096, static_cast<std::uint32_t>(data.size())));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, 0u);
  EXPECT_EQ(r->cookie, 2u);
  std::vector<std::uint8_t> back(data.size());
  ASSERT_TRUE(c.read_exact(back.data(), back.size()));
  EXPECT_EQ(back, data);
  EXPECT_GT(plugin_->loans_taken.load(), 0);
  ASSERT_TRUE(c.send_request(nbdc::cmd_disc, 3, 0, 0));
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(TlsSession, AFailedHandshakeClosesWithoutAReplyAndOthersAreServed) {
  start_tls(core::TlsMode::require, /*lending=*/false);
  RawClient bad = until_starttls();
  const std::string not_tls = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_TRUE(bad.write_all(not_tls.data(), not_tls.size()));
  EXPECT_TRUE(bad.wait_closed());  // after GnuTLS's alert, nothing: no NBD reply in plain text

  RawClient raw = until_starttls();
  TlsRelay relay(raw.fd(), pki + "/client");
  ASSERT_EQ(relay.handshake(), 0);
  RawClient c;
  relay.attach(c);
  EXPECT_EQ(c.go(""), disk_bytes);
}

TEST_F(TlsSession, OnModeStillServesPlainClients) {
  start_tls(core::TlsMode::on, /*lending=*/false);
  RawClient plain;
  ASSERT_TRUE(plain.connect_tcp(tcp_port_));
  EXPECT_EQ(plain.handshake(), disk_bytes);
}

}  // namespace
}  // namespace nbdd::net::driver_test
