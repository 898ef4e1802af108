// Byte-exact handshake transcripts: every option, every error the spec calls for.
#include "tests/core/harness.hpp"

namespace nbdd::test {
namespace {

constexpr auto rep(nbd::Rep r) { return static_cast<std::uint32_t>(r); }

Bytes client_flags(std::uint32_t f = nbd::flag_c_fixed_newstyle | nbd::flag_c_no_zeroes) {
  Bytes b;
  put32(b, f);
  return b;
}

struct HandshakeTest : ::testing::Test {
  Harness h;
  void SetUp() override {
    h.read_pos = nbd::greeting_bytes;
    h.send(client_flags());
  }
  Harness::OptReply ask(nbd::Opt opt, const Bytes& data = {}) {
    h.send(option(opt, data));
    return h.take_opt_reply();
  }
};

TEST(Greeting, IsFixedNewstyleWithNoZeroes) {
  Harness h;
  ASSERT_EQ(h.out.size(), 18u);
  EXPECT_EQ(wire::load_u64(h.out.data()), nbd::init_passwd);
  EXPECT_EQ(wire::load_u64(h.out.data() + 8), nbd::opts_magic);
  EXPECT_EQ(wire::load_u16(h.out.data() + 16), nbd::flag_fixed_newstyle | nbd::flag_no_zeroes);
  EXPECT_TRUE(h.conn->wants_read());
}

TEST(Greeting, UnknownClientFlagsCloseTheConnection) {
  Harness h;
  h.send(client_flags(1u << 7));
  EXPECT_TRUE(h.closed_abort);
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::protocol_violation);
}

TEST_F(HandshakeTest, GoAnswersInfoExportThenAckAndOpensThePlugin) {
  h.send(option(nbd::Opt::go, info_request("")));
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::open);
  EXPECT_EQ(h.calls[0].call.export_name, "disk");
  EXPECT_EQ(h.unread(), 0u) << "nothing is sent before open returns";
  EXPECT_FALSE(h.conn->wants_read());
  h.complete();
  auto info = h.take_opt_reply();
  EXPECT_EQ(info.option, 7u);
  EXPECT_EQ(info.type, rep(nbd::Rep::info));
  ASSERT_EQ(info.data.size(), 12u);
  EXPECT_EQ(wire::load_u16(info.data.data()), 0);
  EXPECT_EQ(wire::load_u64(info.data.data() + 2), 1u << 20);
  const std::uint16_t flags = wire::load_u16(info.data.data() + 10);
  EXPECT_TRUE(flags & nbd::flag_has_flags);
  EXPECT_TRUE(flags & nbd::flag_send_flush);
  EXPECT_TRUE(flags & nbd::flag_send_trim);
  EXPECT_FALSE(flags & nbd::flag_read_only);
  EXPECT_FALSE(flags & nbd::flag_send_df) << "DF needs structured replies";
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::ack));
  EXPECT_EQ(h.conn->phase(), Phase::transmission);
  EXPECT_TRUE(h.conn->stats().opened);
}

TEST_F(HandshakeTest, GoWithNameAndDescriptionRequests) {
  h.send(option(nbd::Opt::go, info_request("small", {nbd::Info::name, nbd::Info::description})));
  h.complete();
  auto exp = h.take_opt_reply();
  EXPECT_EQ(wire::load_u64(exp.data.data() + 2), 4096u);
  auto name = h.take_opt_reply();
  EXPECT_EQ(wire::load_u16(name.data.data()), 1);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(name.data.data() + 2), name.data.size() - 2), "small");
  auto desc = h.take_opt_reply();
  EXPECT_EQ(wire::load_u16(desc.data.data()), 2);
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::ack));
}

TEST_F(HandshakeTest, InfoIsAnsweredFromTheCatalogWithoutOpening) {
  auto r = ask(nbd::Opt::info, info_request("disk"));
  EXPECT_EQ(r.type, rep(nbd::Rep::info));
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::ack));
  EXPECT_TRUE(h.calls.empty());
  EXPECT_EQ(h.conn->phase(), Phase::handshake);
}

TEST_F(HandshakeTest, UnknownExportIsErrUnknownAndNegotiationContinues) {
  EXPECT_EQ(ask(nbd::Opt::go, info_request("nope")).type, rep(nbd::Rep::err_unknown));
  EXPECT_EQ(ask(nbd::Opt::info, info_request("nope")).type, rep(nbd::Rep::err_unknown));
  EXPECT_EQ(ask(nbd::Opt::list).type, rep(nbd::Rep::server));
}

TEST_F(HandshakeTest, MalformedInfoIsErrInvalid) {
  Bytes bad = info_request("disk");
  bad.push_back(std::byte{0});  // L != 6 + N + 2K
  EXPECT_EQ(ask(nbd::Opt::info, bad).type, rep(nbd::Rep::err_invalid));
  EXPECT_EQ(ask(nbd::Opt::go, Bytes{std::byte{0}}).type, rep(nbd::Rep::err_invalid));
}

TEST_F(HandshakeTest, ListNamesEveryExportWithDescriptionThenAck) {
  auto a = ask(nbd::Opt::list);
  EXPECT_EQ(a.type, rep(nbd::Rep::server));
  EXPECT_EQ(wire::load_u32(a.data.data()), 4u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(a.data.data() + 4), a.data.size() - 4), "disktest disk");
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::server));
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::ack));
  EXPECT_EQ(ask(nbd::Opt::list, Bytes{std::byte{1}}).type, rep(nbd::Rep::err_invalid));
}

TEST(Handshake, ListCanBeRefusedByPolicy) {
  auto cat = default_catalog();
  cat.list_allowed = false;
  Harness h(cat);
  h.read_pos = 18;
  h.send(client_flags());
  h.send(option(nbd::Opt::list));
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::err_policy));
}

TEST_F(HandshakeTest, UnknownOptionIsErrUnsupAndItsDataIsSkipped) {
  Bytes data(100, std::byte{0x55});
  h.send(option(999, data));
  auto r = h.take_opt_reply();
  EXPECT_EQ(r.option, 999u);
  EXPECT_EQ(r.type, rep(nbd::Rep::err_unsup));
  EXPECT_EQ(ask(nbd::Opt::peek_export).type, rep(nbd::Rep::err_unsup));
  EXPECT_EQ(ask(nbd::Opt::list).type, rep(nbd::Rep::server));
}

TEST_F(HandshakeTest, StartTlsIsRefusedByAServerWithoutTls) {
  EXPECT_EQ(ask(nbd::Opt::starttls).type, rep(nbd::Rep::err_policy));
  EXPECT_EQ(ask(nbd::Opt::starttls, Bytes{std::byte{1}}).type, rep(nbd::Rep::err_invalid));
}

TEST_F(HandshakeTest, StructuredReplyOnceThenErrInvalid) {
  EXPECT_EQ(ask(nbd::Opt::structured_reply).type, rep(nbd::Rep::ack));
  EXPECT_EQ(ask(nbd::Opt::structured_reply).type, rep(nbd::Rep::err_invalid));
  EXPECT_EQ(ask(nbd::Opt::structured_reply, Bytes{std::byte{1}}).type, rep(nbd::Rep::err_invalid));
}

TEST_F(HandshakeTest, StructuredReplyAfterExtendedHeadersIsExtHeaderReqd) {
  EXPECT_EQ(ask(nbd::Opt::extended_headers).type, rep(nbd::Rep::ack));
  EXPECT_EQ(ask(nbd::Opt::structured_reply).type, rep(nbd::Rep::err_ext_header_reqd));
  EXPECT_EQ(ask(nbd::Opt::extended_headers).type, rep(nbd::Rep::err_invalid));
}

TEST_F(HandshakeTest, MetaContextNeedsStructuredReplies) {
  EXPECT_EQ(ask(nbd::Opt::set_meta_context, meta_request("", {"base:allocation"})).type,
            rep(nbd::Rep::err_invalid));
  EXPECT_EQ(ask(nbd::Opt::list_meta_context, meta_request("", {})).type, rep(nbd::Rep::err_invalid));
}

TEST_F(HandshakeTest, SetMetaContextSelectsBaseAllocationWithId1) {
  ask(nbd::Opt::structured_reply);
  auto r = ask(nbd::Opt::set_meta_context, meta_request("disk", {"base:allocation", "qemu:dirty-bitmap:x"}));
  EXPECT_EQ(r.type, rep(nbd::Rep::meta_context));
  EXPECT_EQ(wire::load_u32(r.data.data()), 1u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(r.data.data() + 4), r.data.size() - 4), "base:allocation");
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::ack));
}

TEST_F(HandshakeTest, ListMetaContextWildcardAndEmptyQuery) {
  ask(nbd::Opt::structured_reply);
  auto r = ask(nbd::Opt::list_meta_context, meta_request("", {"base:"}));
  EXPECT_EQ(r.type, rep(nbd::Rep::meta_context));
  EXPECT_EQ(wire::load_u32(r.data.data()), 0u) << "LIST replies carry id 0";
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::ack));
  EXPECT_EQ(ask(nbd::Opt::list_meta_context, meta_request("", {})).type, rep(nbd::Rep::meta_context));
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::ack));
  // SET ignores the wildcard and unknown namespaces: just ACK.
  EXPECT_EQ(ask(nbd::Opt::set_meta_context, meta_request("", {"base:", "x:y"})).type, rep(nbd::Rep::ack));
  EXPECT_EQ(ask(nbd::Opt::set_meta_context, meta_request("nope", {"base:allocation"})).type,
            rep(nbd::Rep::err_unknown));
}

TEST_F(HandshakeTest, OversizedOptionIsDiscardedAndAnsweredTooBig) {
  Bytes big(70000, std::byte{1});
  h.send_via_window(option(nbd::Opt::list, big), 5000);
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::err_too_big));
  EXPECT_EQ(ask(nbd::Opt::list).type, rep(nbd::Rep::server));
}

TEST_F(HandshakeTest, AbsurdOptionLengthIsAHardDisconnect) {
  Bytes b;
  put64(b, nbd::opts_magic);
  put32(b, 3);
  put32(b, 0xffffffffu);
  h.send(b);
  EXPECT_TRUE(h.closed_abort);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::protocol_violation);
}

TEST_F(HandshakeTest, WrongOptionMagicIsAHardDisconnect) {
  Bytes b;
  put64(b, 0x1234);
  put32(b, 3);
  put32(b, 0);
  h.send(b);
  EXPECT_TRUE(h.closed_abort);
  EXPECT_TRUE(h.finished);
}

TEST_F(HandshakeTest, TooManyOptionsIsADoS) {
  for (int i = 0; i < 200 && !h.closed_abort; ++i) h.send(option(nbd::Opt::list));
  EXPECT_TRUE(h.closed_abort);
  EXPECT_EQ(h.conn->stats().options, Limits{}.options_per_handshake_max + 1);
}

TEST_F(HandshakeTest, AbortIsAckedThenClosedGracefully) {
  EXPECT_EQ(ask(nbd::Opt::abort).type, rep(nbd::Rep::ack));
  EXPECT_TRUE(h.closed_flush);
  EXPECT_FALSE(h.closed_abort);
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::client_abort);
  EXPECT_TRUE(h.history.empty()) << "no plugin call without open";
}

TEST_F(HandshakeTest, ExportNameWithNoZeroesSendsTenBytes) {
  h.send(option(nbd::Opt::export_name, [] { Bytes b; put_str(b, "small"); return b; }()));
  h.complete();
  ASSERT_EQ(h.unread(), 10u);
  EXPECT_EQ(h.take64(), 4096u);
  EXPECT_EQ(h.conn->phase(), Phase::transmission);
}

TEST(Handshake, ExportNameWithoutNoZeroesSends134Bytes) {
  Harness h;
  h.read_pos = 18;
  h.send(client_flags(nbd::flag_c_fixed_newstyle));
  h.send(option(nbd::Opt::export_name));
  h.complete();
  EXPECT_EQ(h.unread(), 134u);
}

TEST_F(HandshakeTest, ExportNameForAnUnknownExportIsAHardDisconnect) {
  h.send(option(nbd::Opt::export_name, [] { Bytes b; put_str(b, "nope"); return b; }()));
  EXPECT_TRUE(h.closed_abort);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::export_name_failed);
}

TEST_F(HandshakeTest, OpenFailureIsReportedAndNegotiationContinues) {
  h.send(option(nbd::Opt::go, info_request("")));
  h.complete(0, EPERM);
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::err_policy));
  EXPECT_FALSE(h.conn->stats().opened);
  EXPECT_EQ(ask(nbd::Opt::abort).type, rep(nbd::Rep::ack));
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.history, (std::vector<CallKind>{CallKind::open})) << "no close after a failed open";
}

TEST(Handshake, BlockSizeIsAdvertisedAndRequiredAtGo) {
  auto cat = default_catalog();
  cat.exports[0].block_size = BlockSize{4096, 4096, 1 << 20};
  Harness h(cat);
  h.read_pos = 18;
  h.send(client_flags());
  h.send(option(nbd::Opt::go, info_request("disk")));
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::info));
  auto bs = h.take_opt_reply();
  ASSERT_EQ(bs.data.size(), 14u);
  EXPECT_EQ(wire::load_u32(bs.data.data() + 2), 4096u);
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::err_block_size_reqd));
  h.send(option(nbd::Opt::go, info_request("disk", {nbd::Info::block_size})));
  h.complete();
  h.take_opt_reply();
  h.take_opt_reply();
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::ack));
}

TEST(Handshake, TimesOutWhenTheClientStalls) {
  Harness h;
  auto d = h.conn->deadline();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->ns - h.now.ns, Limits{}.handshake_timeout.ns);
  h.advance(Duration::from_s(5));
  h.input(input::DeadlineReached{});
  EXPECT_FALSE(h.closes) << "an early timer is ignored";
  h.advance(Duration::from_s(5));
  h.input(input::DeadlineReached{});
  EXPECT_TRUE(h.closed_abort);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::handshake_timeout);
}

TEST(Handshake, OptionsArriveInAnyFragmentation) {
  Harness a, b;
  Bytes script = client_flags();
  for (auto& o : {option(nbd::Opt::structured_reply), option(nbd::Opt::list),
                  option(nbd::Opt::info, info_request("small", {nbd::Info::name}))})
    script.insert(script.end(), o.begin(), o.end());
  a.send(script);
  for (std::byte x : script) b.send(Bytes{x});
  EXPECT_EQ(a.out, b.out);
  EXPECT_GT(a.out.size(), 100u);
}

TEST_F(HandshakeTest, ShutdownDuringHandshakeAnswersErrShutdownThenAbortIsAcked) {
  h.input(input::ShutdownRequested{});
  EXPECT_EQ(h.conn->status(), Status::draining);
  EXPECT_EQ(ask(nbd::Opt::list).type, rep(nbd::Rep::err_shutdown));
  EXPECT_EQ(ask(nbd::Opt::go, info_request("")).type, rep(nbd::Rep::err_shutdown));
  EXPECT_TRUE(h.calls.empty()) << "no open once shutting down";
  EXPECT_EQ(ask(nbd::Opt::abort).type, rep(nbd::Rep::ack));
  EXPECT_TRUE(h.finished);
}

TEST_F(HandshakeTest, ShutdownDuringHandshakeEndsWithinTheGracePeriod) {
  h.input(input::ShutdownRequested{});
  auto d = h.conn->deadline();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->ns - h.now.ns, Limits{}.grace_period.ns);
  h.advance(Limits{}.grace_period);
  h.input(input::DeadlineReached{});
  EXPECT_TRUE(h.closed_flush);
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::grace_expired);
}

TEST_F(HandshakeTest, ShutdownWhileOpenRunsRefusesGoAndStillCallsClose) {
  h.send(option(nbd::Opt::go, info_request("")));
  h.input(input::ShutdownRequested{});
  h.complete();
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::err_shutdown));
  EXPECT_EQ(h.conn->phase(), Phase::handshake);
  h.send(option(nbd::Opt::abort));
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::ack));
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::close);
  EXPECT_FALSE(h.finished) << "Finished waits for close";
  h.complete();
  EXPECT_TRUE(h.finished);
}

TEST_F(HandshakeTest, PeerClosingDuringOpenStillClosesThePlugin) {
  h.send(option(nbd::Opt::go, info_request("")));
  h.input(input::PeerClosed{});
  EXPECT_FALSE(h.closes) << "Close waits for the running open";
  h.complete();
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::close);
  h.complete();
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.history, (std::vector<CallKind>{CallKind::open, CallKind::close}));
}

TEST_F(HandshakeTest, DisconnectBeforeOpenIsIgnored) {
  h.input(input::DisconnectRequested{true});
  EXPECT_EQ(h.conn->stats().ignored_disconnects, 1u);
  EXPECT_FALSE(h.closes);
}

}  // namespace
}  // namespace nbdd::test
