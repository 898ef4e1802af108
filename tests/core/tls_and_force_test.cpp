// STARTTLS (protocol §11) in the three TLS modes, and the server's forced shutdown
// (input::ShutdownForced) in every phase.
#include "tests/core/harness.hpp"

namespace nbdd::test {
namespace {

constexpr auto rep(nbd::Rep r) { return static_cast<std::uint32_t>(r); }

Bytes client_flags() {
  Bytes b;
  put32(b, nbd::flag_c_fixed_newstyle | nbd::flag_c_no_zeroes);
  return b;
}

// A connection past the greeting and the client flags, in the given TLS mode.
struct Tls : ::testing::Test {
  std::unique_ptr<Harness> h;
  void start(TlsMode mode) {
    h = std::make_unique<Harness>(default_catalog(), Limits{}, ThreadModel::parallel, nullptr, 1, true, mode);
    h->read_pos = nbd::greeting_bytes;
    h->send(client_flags());
  }
  Harness::OptReply ask(nbd::Opt opt, const Bytes& data = {}) {
    h->send(option(opt, data));
    while (!h->calls.empty() && is_lifecycle(h->calls[0].call.kind)) h->complete();
    return h->take_opt_reply();
  }
  // STARTTLS, its ACK, the handshake reported as `ok`.
  void start_tls(bool ok = true) {
    EXPECT_EQ(ask(nbd::Opt::starttls).type, rep(nbd::Rep::ack));
    EXPECT_EQ(h->tls_starts, 1);
    EXPECT_FALSE(h->conn->wants_read()) << "nothing is read while TLS is being set up";
    h->input(input::TlsDone{ok});
  }
};

TEST_F(Tls, RequireRefusesEveryOptionButStartTlsAndAbortWithoutAskingThePlugin) {
  start(TlsMode::require);
  for (auto opt : {nbd::Opt::list, nbd::Opt::info, nbd::Opt::go, nbd::Opt::structured_reply,
                   nbd::Opt::set_meta_context, nbd::Opt::list_meta_context}) {
    const Bytes data = opt == nbd::Opt::info || opt == nbd::Opt::go ? info_request("disk") : Bytes{};
    auto r = ask(opt, data);
    EXPECT_EQ(r.type, rep(nbd::Rep::err_tls_reqd)) << static_cast<int>(opt);
  }
  EXPECT_EQ(ask(static_cast<nbd::Opt>(99)).type, rep(nbd::Rep::err_tls_reqd)) << "unknown options too";
  EXPECT_TRUE(h->history.empty()) << "no preconnect-after call, list, open before TLS";
  EXPECT_EQ(h->tls_starts, 0);
}

TEST_F(Tls, RequireAnswersAnOversizedOptionTlsReqdNotTooBig) {
  start(TlsMode::require);
  h->send(option(nbd::Opt::go, Bytes(Limits{}.option_data_bytes_max + 1, std::byte{0})));
  EXPECT_EQ(h->take_opt_reply().type, rep(nbd::Rep::err_tls_reqd));
}

TEST_F(Tls, RequireClosesOnExportNameBeforeTls) {
  start(TlsMode::require);
  Bytes name;
  put_str(name, "disk");
  h->send(option(nbd::Opt::export_name, name));
  EXPECT_TRUE(h->closed_abort);
  EXPECT_EQ(h->unread(), 0u) << "nothing about the export leaves the server";
  EXPECT_TRUE(h->history.empty());
  EXPECT_EQ(h->conn->stats().end_reason, EndReason::tls_required);
  EXPECT_TRUE(h->finished);
}

TEST_F(Tls, RequireAbortIsAckedAndCloses) {
  start(TlsMode::require);
  EXPECT_EQ(ask(nbd::Opt::abort).type, rep(nbd::Rep::ack));
  EXPECT_TRUE(h->closed_flush);
}

TEST_F(Tls, AfterTlsEverythingWorksAndEarlierNegotiationIsForgotten) {
  start(TlsMode::require);
  start_tls();
  EXPECT_TRUE(h->conn->wants_read());
  EXPECT_EQ(ask(nbd::Opt::structured_reply).type, rep(nbd::Rep::ack));
  h->send(option(nbd::Opt::go, info_request("disk")));
  h->complete();
  EXPECT_EQ(h->take_opt_reply().type, rep(nbd::Rep::info));
  EXPECT_EQ(h->take_opt_reply().type, rep(nbd::Rep::ack));
  EXPECT_EQ(h->conn->phase(), Phase::transmission);
}

TEST_F(Tls, OnModeServesWithoutTlsAndForgetsStructuredRepliesAfterIt) {
  start(TlsMode::on);
  EXPECT_EQ(ask(nbd::Opt::structured_reply).type, rep(nbd::Rep::ack));
  EXPECT_EQ(ask(nbd::Opt::list).type, rep(nbd::Rep::server)) << "on: options work before TLS";
  while (h->unread() > 0) h->take_opt_reply();
  start_tls();
  // §3.10: structured replies were negotiated before TLS, so they are gone.
  EXPECT_EQ(ask(nbd::Opt::set_meta_context, meta_request("disk", {"base:allocation"})).type,
            rep(nbd::Rep::err_invalid));
}

TEST_F(Tls, StartTlsTwiceIsInvalidAndStartTlsWithDataIsInvalid) {
  start(TlsMode::on);
  EXPECT_EQ(ask(nbd::Opt::starttls, Bytes{std::byte{1}}).type, rep(nbd::Rep::err_invalid));
  EXPECT_EQ(h->tls_starts, 0);
  start_tls();
  EXPECT_EQ(ask(nbd::Opt::starttls).type, rep(nbd::Rep::err_invalid));
  EXPECT_EQ(h->tls_starts, 1);
}

TEST_F(Tls, RequireStillRefusesAfterAStartTlsWithData) {
  start(TlsMode::require);
  EXPECT_EQ(ask(nbd::Opt::starttls, Bytes{std::byte{1}}).type, rep(nbd::Rep::err_invalid));
  EXPECT_EQ(ask(nbd::Opt::list).type, rep(nbd::Rep::err_tls_reqd));
}

TEST_F(Tls, AFailedHandshakeClosesWithNothingMoreSent) {
  start(TlsMode::require);
  const auto before = h->out.size();
  start_tls(false);
  EXPECT_EQ(h->out.size(), before + 20) << "only the ACK";
  EXPECT_TRUE(h->closed_abort);
  EXPECT_TRUE(h->finished);
  EXPECT_EQ(h->conn->stats().end_reason, EndReason::tls_failed);
}

TEST_F(Tls, BytesAfterStartTlsInTheSameReadAreHandedToTls) {
  start(TlsMode::on);
  Bytes b = option(nbd::Opt::starttls);
  const Bytes hello = {std::byte{0x16}, std::byte{0x03}, std::byte{0x01}};
  b.insert(b.end(), hello.begin(), hello.end());
  h->send(b);
  EXPECT_EQ(h->take_opt_reply().type, rep(nbd::Rep::ack));
  ASSERT_EQ(h->tls_starts, 1);
  EXPECT_EQ(h->tls_early, hello);
  h->input(input::TlsDone{true});
  EXPECT_EQ(ask(nbd::Opt::list).type, rep(nbd::Rep::server)) << "the early bytes were not parsed as options";
}

TEST_F(Tls, HandshakeTimeoutCoversTheTlsHandshake) {
  start(TlsMode::require);
  EXPECT_EQ(ask(nbd::Opt::starttls).type, rep(nbd::Rep::ack));
  ASSERT_TRUE(h->conn->deadline().has_value());
  h->now = *h->conn->deadline();
  h->input(input::DeadlineReached{});
  EXPECT_TRUE(h->closed_abort);
  EXPECT_EQ(h->conn->stats().end_reason, EndReason::handshake_timeout);
  EXPECT_TRUE(h->finished) << "nothing waits for the TLS layer: the driver drops its report";
}

TEST_F(Tls, ShutdownDuringTheTlsHandshakeRefusesOptionsAfterIt) {
  start(TlsMode::require);
  EXPECT_EQ(ask(nbd::Opt::starttls).type, rep(nbd::Rep::ack));
  h->input(input::ShutdownRequested{});
  h->input(input::TlsDone{true});
  EXPECT_EQ(ask(nbd::Opt::go, info_request("disk")).type, rep(nbd::Rep::err_shutdown));
  EXPECT_TRUE(h->history.empty());
}

TEST_F(Tls, OffRefusesStartTlsWithPolicy) {
  start(TlsMode::off);
  EXPECT_EQ(ask(nbd::Opt::starttls).type, rep(nbd::Rep::err_policy));
  EXPECT_EQ(h->tls_starts, 0);
}

// ---- the server's forced shutdown ---------------------------------------------------------

TEST(ShutdownForced, ClosesAConnectionInTheHandshakeAtOnce) {
  Harness h;
  h.read_pos = nbd::greeting_bytes;
  h.send(client_flags());
  h.input(input::DisconnectRequested{true});
  EXPECT_FALSE(h.closed_abort) << "the plugin's disconnect is ignored before open";
  h.input(input::ShutdownForced{});
  EXPECT_TRUE(h.closed_abort);
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::shutdown_forced);
}

TEST(ShutdownForced, DuringOpenAbortsThenClosesTheHandleOnceOpenReturns) {
  Harness h;
  h.read_pos = nbd::greeting_bytes;
  h.send(client_flags());
  h.send(option(nbd::Opt::go, info_request("disk")));
  ASSERT_EQ(h.calls.size(), 1u);
  const auto before = h.out.size();
  h.input(input::ShutdownForced{});
  EXPECT_TRUE(h.closed_abort);
  EXPECT_FALSE(h.finished) << "the running open must still be reported";
  h.complete();  // open succeeds after the force
  EXPECT_EQ(h.out.size(), before) << "no reply to the GO";
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::close);
  h.complete();
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.conn->stats().opens, h.conn->stats().closes);
}

TEST(ShutdownForced, InTransmissionDropsTheReplyToARunningRead) {
  Harness h;
  h.handshake();
  h.send(request(nbd::Cmd::read, 1, 0, 512));
  h.send(request(nbd::Cmd::read, 2, 0, 512));
  ASSERT_EQ(h.calls.size(), 2u);
  h.complete(0);  // cookie 1 answered before the force
  const auto before = h.out.size();
  h.input(input::ShutdownForced{});
  EXPECT_TRUE(h.closed_abort);
  h.complete(0);  // cookie 2 finishes after it: no reply
  EXPECT_EQ(h.out.size(), before);
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::close);
  h.complete();
  EXPECT_TRUE(h.finished);
}

TEST(ShutdownForced, AfterAGracefulShutdownStillForces) {
  Harness h;
  h.handshake();
  h.send(request(nbd::Cmd::read, 1, 0, 512));
  h.input(input::ShutdownRequested{});
  EXPECT_FALSE(h.closed_abort);
  h.input(input::ShutdownForced{});
  EXPECT_TRUE(h.closed_abort);
  h.complete_all();
  EXPECT_TRUE(h.finished);
}

}  // namespace
}  // namespace nbdd::test

namespace nbdd::test {
namespace {

// nbdkit's --mask-handshake and --no-sr (ConnectionConfig::handshake_flags_mask,
// structured_replies).
Harness masked(std::uint16_t mask, bool structured = true) {
  return Harness(default_catalog(), Limits{}, ThreadModel::parallel, nullptr, 1, true, TlsMode::off, mask, structured);
}

TEST(HandshakeMask, TheGreetingOffersOnlyTheUnmaskedFlags) {
  for (std::uint16_t mask : {0, 1, 2, 3}) {
    Harness h = masked(mask);
    ASSERT_EQ(h.out.size(), nbd::greeting_bytes);
    EXPECT_EQ(wire::load_u16(h.out.data() + 16), mask) << "mask " << mask;
  }
}

TEST(HandshakeMask, AClientFlagThatWasNotOfferedCloses) {
  Harness h = masked(nbd::flag_fixed_newstyle);  // NO_ZEROES masked
  h.read_pos = nbd::greeting_bytes;
  Bytes flags;
  put32(flags, nbd::flag_c_fixed_newstyle | nbd::flag_c_no_zeroes);
  h.send(flags);
  EXPECT_TRUE(h.closed_abort);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::protocol_violation);

  Harness ok = masked(nbd::flag_fixed_newstyle);
  Bytes fixed_only;
  put32(fixed_only, nbd::flag_c_fixed_newstyle);
  ok.send(fixed_only);
  EXPECT_FALSE(ok.closed_abort);
  EXPECT_TRUE(ok.conn->wants_read());
}

TEST(NoStructuredReplies, StructuredReplyAndExtendedHeadersGetErrUnsupAndRepliesStaySimple) {
  Harness h = masked(0xffff, /*structured=*/false);
  h.read_pos = nbd::greeting_bytes;
  Bytes flags;
  put32(flags, nbd::flag_c_fixed_newstyle | nbd::flag_c_no_zeroes);
  h.send(flags);
  h.send(option(nbd::Opt::structured_reply));
  EXPECT_EQ(h.take_opt_reply().type, static_cast<std::uint32_t>(nbd::Rep::err_unsup));
  h.send(option(nbd::Opt::extended_headers));
  EXPECT_EQ(h.take_opt_reply().type, static_cast<std::uint32_t>(nbd::Rep::err_unsup));
  h.send(option(nbd::Opt::go, info_request("disk")));
  h.complete();
  while (h.unread() > 0) h.take_opt_reply();
  ASSERT_EQ(h.conn->phase(), Phase::transmission);
  h.send(request(nbd::Cmd::read, 7, 0, 512));
  h.complete();
  const auto r = h.take_simple_reply();
  EXPECT_EQ(r.cookie, 7u);
  EXPECT_EQ(r.error, 0u);
}

}  // namespace
}  // namespace nbdd::test
