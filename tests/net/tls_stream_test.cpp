// TlsStream (net/tls_stream.hpp) and TlsContext (net/tls_context.hpp) against a real GnuTLS
// client over a socketpair: the server side runs on an io_context thread exactly as a
// session's strand would drive it; the client is plain blocking GnuTLS in the test thread.
#include <gnutls/gnutls.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <thread>

#include "net/options.hpp"
#include "net/tls_context.hpp"
#include "net/tls_stream.hpp"
#include "tests/net/tls_certs.hpp"

namespace nbdd::net {
namespace {
namespace asio = boost::asio;
using namespace std::chrono_literals;

std::string pki;  // made once for the whole binary

class TlsStreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char templ[] = "/tmp/nbdd-tls-unit-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    pki = templ;
    const std::string failed = testing::make_test_pki(pki);
    ASSERT_EQ(failed, "") << "certtool/psktool (gnutls-bin) failed at " << failed;
  }
  static void TearDownTestSuite() { std::system(("rm -rf '" + pki + "'").c_str()); }
};

Options x509_options(const std::string& dir, bool verify_peer = false) {
  Options o;
  o.tls = Options::Tls::require;
  o.tls_given = true;
  o.tls_certificates = pki + "/" + dir;
  o.tls_verify_peer = verify_peer;
  return o;
}

Options psk_options() {
  Options o;
  o.tls = Options::Tls::require;
  o.tls_given = true;
  o.tls_psk = pki + "/keys.psk";
  return o;
}

// The server end: a TlsStream over one end of a socketpair, on its own io_context thread.
// wrap() makes the stream; until then server_fd is a plain socket the test may read.
struct Server {
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> guard{ioc.get_executor()};
  Strand strand{asio::make_strand(ioc)};
  std::unique_ptr<TlsContext> context;
  std::unique_ptr<TlsStream> stream;
  int server_fd = -1;
  int client_fd = -1;
  std::atomic<int> handshake_reports{0};
  std::promise<std::pair<bool, std::string>> handshake;
  std::thread thread;

  explicit Server(const Options& options, bool wrap_now = true) {
    std::string error;
    context = make_tls_context(options, error);
    EXPECT_NE(context, nullptr) << error;
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    server_fd = fds[0];
    client_fd = fds[1];
    thread = std::thread([this] { ioc.run(); });
    if (wrap_now) wrap();
  }
  void wrap() {
    on_strand([this] {
      GenericSocket socket(strand);
      socket.assign(asio::generic::stream_protocol(AF_UNIX, 0), server_fd);
      std::string error;
      std::unique_ptr<Stream> inner = make_socket_stream(std::move(socket));
      stream = TlsStream::create(strand, std::move(inner), *context, "test", error);
      EXPECT_NE(stream, nullptr) << error;
    });
  }
  ~Server() {
    on_strand([this] {
      if (stream) stream->close();
      stream.reset();
    });
    guard.reset();
    ioc.stop();
    thread.join();
    if (client_fd >= 0) ::close(client_fd);
  }
  // Runs f on the strand and waits for it.
  template <class F>
  void on_strand(F f) {
    std::promise<void> done;
    asio::post(strand, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
  void start_handshake(std::vector<std::byte> early = {}) {
    on_strand([this, early] {
      stream->async_handshake(early, [this](bool ok, const std::string& detail) {
        if (handshake_reports++ == 0) handshake.set_value({ok, detail});
      });
    });
  }
  std::pair<bool, std::string> handshake_result() {
    auto f = handshake.get_future();
    if (f.wait_for(20s) != std::future_status::ready) return {false, "timeout"};
    return f.get();
  }

  // Reads exactly `count` bytes, then writes them back as three gathered pieces after a
  // 16-byte header; `echoed` gets the outcome.
  std::vector<std::byte> received;
  std::vector<std::byte> header = std::vector<std::byte>(16, std::byte{'H'});
  std::vector<asio::const_buffer> gather;
  std::promise<boost::system::error_code> echoed;
  std::size_t expected = 0;
  std::vector<std::byte> chunk = std::vector<std::byte>(64 * 1024);
  void echo(std::size_t count) {
    expected = count;
    received.clear();
    asio::post(strand, [this] { read_more(); });
  }
  void read_more() {
    stream->async_read_some(std::span<std::byte>(chunk.data(), std::min(chunk.size(), expected - received.size())),
                            [this](const boost::system::error_code& ec, std::size_t n) {
                              if (ec) return echoed.set_value(ec);
                              received.insert(received.end(), chunk.begin(), chunk.begin() + static_cast<long>(n));
                              if (received.size() < expected) return read_more();
                              const std::size_t half = received.size() / 2;
                              gather = {asio::buffer(header), asio::buffer(received.data(), half),
                                        asio::buffer(received.data() + half, received.size() - half)};
                              stream->async_write(gather, [this](const boost::system::error_code& wec, std::size_t) {
                                echoed.set_value(wec);
                              });
                            });
  }
};

// A blocking GnuTLS client on the other end.
struct Client {
  gnutls_session_t session = nullptr;
  gnutls_certificate_credentials_t x509 = nullptr;
  gnutls_psk_client_credentials_t psk = nullptr;
  int fd;

  // ca: the directory whose ca-cert.pem (and client-cert.pem/client-key.pem, if present) to use.
  Client(int fd_, const std::string& dir) : fd(fd_) {
    gnutls_init(&session, GNUTLS_CLIENT);
    gnutls_certificate_allocate_credentials(&x509);
    gnutls_certificate_set_x509_trust_file(x509, (dir + "/ca-cert.pem").c_str(), GNUTLS_X509_FMT_PEM);
    if (::access((dir + "/client-cert.pem").c_str(), R_OK) == 0)
      gnutls_certificate_set_x509_key_file(x509, (dir + "/client-cert.pem").c_str(), (dir + "/client-key.pem").c_str(),
                                           GNUTLS_X509_FMT_PEM);
    gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, x509);
    gnutls_priority_set_direct(session, "NORMAL", nullptr);
    gnutls_server_name_set(session, GNUTLS_NAME_DNS, "localhost", 9);
    gnutls_session_set_verify_cert(session, "localhost", 0);
    gnutls_transport_set_int(session, fd);
  }
  Client(int fd_, const std::string& user, const std::string& hexkey) : fd(fd_) {
    gnutls_init(&session, GNUTLS_CLIENT);
    gnutls_psk_allocate_client_credentials(&psk);
    const gnutls_datum_t key{reinterpret_cast<unsigned char*>(const_cast<char*>(hexkey.data())),
                             static_cast<unsigned>(hexkey.size())};
    gnutls_psk_set_client_credentials(psk, user.c_str(), &key, GNUTLS_PSK_KEY_HEX);
    gnutls_credentials_set(session, GNUTLS_CRD_PSK, psk);
    gnutls_priority_set_direct(session, "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK", nullptr);
    gnutls_transport_set_int(session, fd);
  }
  ~Client() {
    gnutls_deinit(session);
    if (x509) gnutls_certificate_free_credentials(x509);
    if (psk) gnutls_psk_free_client_credentials(psk);
  }
  int handshake() {
    int r;
    do r = gnutls_handshake(session);
    while (r < 0 && gnutls_error_is_fatal(r) == 0);
    return r;
  }
  bool send_all(const std::vector<std::byte>& data) {
    std::size_t done = 0;
    while (done < data.size()) {
      const ssize_t r = gnutls_record_send(session, data.data() + done, data.size() - done);
      if (r < 0 && gnutls_error_is_fatal(static_cast<int>(r)) == 0) continue;
      if (r <= 0) return false;
      done += static_cast<std::size_t>(r);
    }
    return true;
  }
  // Reads exactly n bytes; fewer on EOF or error (last_result says which).
  ssize_t last_result = 0;
  std::vector<std::byte> receive(std::size_t n) {
    std::vector<std::byte> out(n);
    std::size_t done = 0;
    while (done < n) {
      last_result = gnutls_record_recv(session, out.data() + done, n - done);
      if (last_result < 0 && gnutls_error_is_fatal(static_cast<int>(last_result)) == 0) continue;
      if (last_result <= 0) break;
      done += static_cast<std::size_t>(last_result);
    }
    out.resize(done);
    return out;
  }
};

std::string psk_key(const std::string& file) {
  const std::string text = testing::read_text(file);
  return text.substr(text.find(':') + 1, 64);
}

std::vector<std::byte> pattern(std::size_t n) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + 7) & 0xff);
  return v;
}

void expect_echo(Server& server, Client& client, std::size_t n) {
  const auto data = pattern(n);
  server.echoed = {};
  server.echo(n);
  std::thread sender([&] { EXPECT_TRUE(client.send_all(data)); });
  const auto back = client.receive(16 + n);
  sender.join();
  auto f = server.echoed.get_future();
  ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
  EXPECT_FALSE(f.get());
  ASSERT_EQ(back.size(), 16 + n);
  EXPECT_EQ(std::memcmp(back.data(), server.header.data(), 16), 0);
  EXPECT_EQ(std::memcmp(back.data() + 16, data.data(), n), 0) << "size " << n;
}

TEST_F(TlsStreamTest, X509HandshakeThenGatheredWritesOfEverySizeArriveIntact) {
  Server server(x509_options("server"));
  Client client(server.client_fd, pki + "/client");
  server.start_handshake();
  ASSERT_EQ(client.handshake(), 0);
  const auto [ok, detail] = server.handshake_result();
  ASSERT_TRUE(ok) << detail;
  std::string desc;
  server.on_strand([&] { desc = server.stream->describe(); });
  EXPECT_NE(desc.find("TLS1."), std::string::npos) << desc;
  // 1 B and 4 KiB: header and payload share records (corked); 1 MiB: past the outbound
  // buffer's limit, so GnuTLS waits for the socket several times.
  for (std::size_t n : {std::size_t{1}, std::size_t{4096}, std::size_t{70 * 1024}, std::size_t{(1 << 20) + 7}})
    expect_echo(server, client, n);
  EXPECT_EQ(server.handshake_reports.load(), 1);
}

TEST_F(TlsStreamTest, EarlyBytesReachGnuTlsBeforeTheSocket) {
  Server server(x509_options("server"), /*wrap_now=*/false);
  Client client(server.client_fd, pki + "/client");
  std::promise<int> client_result;
  std::thread handshaker([&] { client_result.set_value(client.handshake()); });
  // The first bytes of the ClientHello, read as the core reads a client that sends its
  // handshake right behind STARTTLS: they are handed over as `early`.
  std::vector<std::byte> early(11);
  ASSERT_EQ(::recv(server.server_fd, early.data(), early.size(), MSG_WAITALL), 11);
  server.wrap();
  server.start_handshake(early);
  const auto [ok, detail] = server.handshake_result();
  handshaker.join();
  EXPECT_TRUE(ok) << detail;
  EXPECT_EQ(client_result.get_future().get(), 0);
  expect_echo(server, client, 100);
}

TEST_F(TlsStreamTest, AClientTrustingAnotherCaRefusesAndTheServerReportsFailureOnce) {
  Server server(x509_options("server"));
  Client client(server.client_fd, pki + "/client-other-ca");
  server.start_handshake();
  EXPECT_LT(client.handshake(), 0);
  ::shutdown(server.client_fd, SHUT_RDWR);
  const auto [ok, detail] = server.handshake_result();
  EXPECT_FALSE(ok);
  EXPECT_FALSE(detail.empty());
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(server.handshake_reports.load(), 1);
}

TEST_F(TlsStreamTest, AnExpiredServerCertificateIsRefusedByTheClient) {
  Server server(x509_options("server-expired"));
  Client client(server.client_fd, pki + "/client");
  server.start_handshake();
  const int r = client.handshake();
  EXPECT_EQ(r, GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) << gnutls_strerror(r);
  ::shutdown(server.client_fd, SHUT_RDWR);
  EXPECT_FALSE(server.handshake_result().first);
}

// --tls-verify-peer: a certificate from the CA passes; none, an expired one, a revoked one
// (ca-crl.pem) and one from another CA do not.
TEST_F(TlsStreamTest, VerifyPeerAcceptsOnlyAValidClientCertificate) {
  struct Case {
    const char* server_dir;
    const char* client_dir;
    bool accepted;
  };
  const std::string no_cert = pki + "/no-client-cert";
  std::system(("mkdir -p '" + no_cert + "' && cp '" + pki + "/ca-cert.pem' '" + no_cert + "/'").c_str());
  for (const Case& c : {Case{"server-crl", "client", true}, Case{"server-crl", "no-client-cert", false},
                        Case{"server-crl", "client-expired", false}, Case{"server-crl", "client-revoked", false},
                        Case{"server", "client-revoked", true}}) {
    SCOPED_TRACE(std::string(c.server_dir) + " <- " + c.client_dir);
    Server server(x509_options(c.server_dir, /*verify_peer=*/true));
    // client-other-ca trusts another CA; the others trust ours.
    Client client(server.client_fd, pki + "/" + c.client_dir);
    server.start_handshake();
    const int r = client.handshake();
    if (r < 0 || !c.accepted) ::shutdown(server.client_fd, SHUT_RDWR);
    const auto [ok, detail] = server.handshake_result();
    EXPECT_EQ(ok, c.accepted) << detail;
    if (c.accepted) {
      EXPECT_EQ(r, 0) << gnutls_strerror(r);
      expect_echo(server, client, 10);
    }
  }
}

TEST_F(TlsStreamTest, PskAcceptsTheKeyFromTheFileAndRefusesAnother) {
  {
    Server server(psk_options());
    Client client(server.client_fd, "alice", psk_key(pki + "/keys.psk"));
    server.start_handshake();
    ASSERT_EQ(client.handshake(), 0);
    ASSERT_TRUE(server.handshake_result().first);
    expect_echo(server, client, 5000);
  }
  {
    Server server(psk_options());
    Client client(server.client_fd, "alice", psk_key(pki + "/wrong.psk"));
    server.start_handshake();
    EXPECT_LT(client.handshake(), 0);
    ::shutdown(server.client_fd, SHUT_RDWR);
    EXPECT_FALSE(server.handshake_result().first);
  }
  {
    Server server(psk_options());
    Client client(server.client_fd, "mallory", psk_key(pki + "/keys.psk"));
    server.start_handshake();
    EXPECT_LT(client.handshake(), 0);
    ::shutdown(server.client_fd, SHUT_RDWR);
    EXPECT_FALSE(server.handshake_result().first);
  }
}

// A client that does not read holds the server's ciphertext to the outbound limit (256 KiB
// plus the socket buffers): a 4 MiB write does not complete until the client reads.
TEST_F(TlsStreamTest, AWriteWaitsForASlowReaderInsteadOfBufferingEverything) {
  Server server(x509_options("server"));
  Client client(server.client_fd, pki + "/client");
  server.start_handshake();
  ASSERT_EQ(client.handshake(), 0);
  ASSERT_TRUE(server.handshake_result().first);
  const auto data = pattern(4 << 20);
  std::promise<boost::system::error_code> written;
  server.on_strand([&] {
    server.gather = {asio::buffer(data)};
    server.stream->async_write(server.gather,
                               [&](const boost::system::error_code& ec, std::size_t) { written.set_value(ec); });
  });
  auto f = written.get_future();
  EXPECT_EQ(f.wait_for(300ms), std::future_status::timeout);
  const auto back = client.receive(data.size());
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(f.get());
  ASSERT_EQ(back.size(), data.size());
  EXPECT_EQ(std::memcmp(back.data(), data.data(), data.size()), 0);
}

TEST_F(TlsStreamTest, CloseDuringTheHandshakeReportsFailureExactlyOnce) {
  Server server(x509_options("server"));
  server.start_handshake();  // the client never speaks
  std::this_thread::sleep_for(20ms);
  server.on_strand([&] { server.stream->close(); });
  const auto [ok, detail] = server.handshake_result();
  EXPECT_FALSE(ok);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(server.handshake_reports.load(), 1);
  // The socket is closed: the client sees EOF.
  char byte;
  EXPECT_EQ(::recv(server.client_fd, &byte, 1, 0), 0);
}

TEST_F(TlsStreamTest, PendingReadEndsAbortedOnClose) {
  Server server(x509_options("server"));
  Client client(server.client_fd, pki + "/client");
  server.start_handshake();
  ASSERT_EQ(client.handshake(), 0);
  ASSERT_TRUE(server.handshake_result().first);
  server.echo(10);  // a read is now pending: the client sends nothing
  std::this_thread::sleep_for(20ms);
  server.on_strand([&] { server.stream->close(); });
  auto f = server.echoed.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), asio::error::operation_aborted);
}

TEST_F(TlsStreamTest, ShutdownSendsCloseNotify) {
  Server server(x509_options("server"));
  Client client(server.client_fd, pki + "/client");
  server.start_handshake();
  ASSERT_EQ(client.handshake(), 0);
  ASSERT_TRUE(server.handshake_result().first);
  expect_echo(server, client, 3);
  server.on_strand([&] { server.stream->shutdown_and_close(); });
  const auto rest = client.receive(1);
  EXPECT_TRUE(rest.empty());
  EXPECT_EQ(client.last_result, 0) << gnutls_strerror(static_cast<int>(client.last_result));  // not PREMATURE_TERMINATION
}

TEST_F(TlsStreamTest, APeerThatClosesMidStreamEndsTheReadWithAnError) {
  Server server(x509_options("server"));
  Client client(server.client_fd, pki + "/client");
  server.start_handshake();
  ASSERT_EQ(client.handshake(), 0);
  ASSERT_TRUE(server.handshake_result().first);
  server.echo(10);
  ::shutdown(server.client_fd, SHUT_RDWR);  // no close_notify
  auto f = server.echoed.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  const auto ec = f.get();
  EXPECT_TRUE(ec);
  EXPECT_NE(ec, asio::error::operation_aborted);
}

// make_tls_context: nbdkit's rules for missing credentials.
TEST_F(TlsStreamTest, ContextRequireWithoutCertificatesIsAnError) {
  Options o = x509_options("does-not-exist");
  std::string error;
  EXPECT_EQ(make_tls_context(o, error), nullptr);
  EXPECT_NE(error.find("--tls=require"), std::string::npos) << error;
}

TEST_F(TlsStreamTest, ContextOnWithoutCertificatesIsOffWithoutError) {
  Options o = x509_options("does-not-exist");
  o.tls = Options::Tls::on;
  std::string error;
  const auto context = make_tls_context(o, error);
  EXPECT_EQ(context, nullptr);
  EXPECT_EQ(error, "");
  EXPECT_EQ(effective_tls_mode(o, context.get()), core::TlsMode::off);
}

TEST_F(TlsStreamTest, ContextWithoutTlsOptionIsOnWhenCertificatesLoad) {
  Options o = x509_options("server");
  o.tls_given = false;
  o.tls = Options::Tls::off;  // the parser's default when --tls is absent
  std::string error;
  const auto context = make_tls_context(o, error);
  ASSERT_NE(context, nullptr) << error;
  EXPECT_EQ(effective_tls_mode(o, context.get()), core::TlsMode::on);
  o.tls_given = true;  // an explicit --tls=off
  EXPECT_EQ(make_tls_context(o, error), nullptr);
}

TEST_F(TlsStreamTest, ContextRefusesAMalformedKeyAndAMissingPskFile) {
  const std::string bad = pki + "/bad-key";
  std::system(("mkdir -p '" + bad + "' && cp '" + pki + "/server/'*.pem '" + bad + "/' && echo garbage > '" + bad +
               "/server-key.pem'")
                  .c_str());
  Options o = x509_options("bad-key");
  std::string error;
  EXPECT_EQ(make_tls_context(o, error), nullptr);
  EXPECT_NE(error.find("server-key.pem"), std::string::npos) << error;
  Options p = psk_options();
  p.tls_psk = pki + "/no-such.psk";
  EXPECT_EQ(make_tls_context(p, error), nullptr);
  EXPECT_NE(error.find("no-such.psk"), std::string::npos) << error;
}

}  // namespace
}  // namespace nbdd::net
