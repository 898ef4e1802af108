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
  // Sends one option, lets the plugin answer the lifecycle calls it asks for (LIST's
  // list_exports, INFO's open and close...), and returns the first reply.
  Harness::OptReply ask(nbd::Opt opt, const Bytes& data = {}) {
    h.send(option(opt, data));
    answer_lifecycle();
    return h.take_opt_reply();
  }
  void answer_lifecycle() {
    while (!h.calls.empty() && is_lifecycle(h.calls[0].call.kind)) h.complete();
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
  EXPECT_EQ(h.calls[0].call.export_name, "");
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
  EXPECT_EQ(h.conn->stats().opens, 1u);
  EXPECT_EQ(h.conn->handle_state(), HandleState::open);
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

// As nbdkit: INFO opens the export for this connection, answers, then closes it again.
TEST_F(HandshakeTest, InfoOpensAnswersThenClosesTheExport) {
  h.send(option(nbd::Opt::info, info_request("disk")));
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::open);
  EXPECT_EQ(h.unread(), 0u) << "nothing is sent before open returns";
  h.complete();
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::info));
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::ack));
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::close);
  EXPECT_EQ(h.conn->handle_state(), HandleState::closing);
  // The client may go on at once; a GO's open waits until INFO's close returned.
  h.send(option(nbd::Opt::go, info_request("small")));
  ASSERT_EQ(h.calls.size(), 1u) << "open waits for close";
  h.complete();
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::open);
  EXPECT_EQ(h.calls[0].call.export_name, "small");
  h.complete();
  EXPECT_EQ(h.conn->phase(), Phase::transmission);
  EXPECT_EQ(h.history, (std::vector<CallKind>{CallKind::open, CallKind::close, CallKind::open}));
  EXPECT_EQ(h.conn->stats().opens, 2u);
  EXPECT_EQ(h.conn->stats().closes, 1u);
}

// Each connection asks the plugin: a size that changed since the last client is what a
// new client sees.
TEST_F(HandshakeTest, SizeAndFlagsComeFromThisConnectionsOpen) {
  h.catalog.exports[0].size_bytes = 12345 * 512;
  h.catalog.exports[0].caps.can_trim = false;
  h.send(option(nbd::Opt::go, info_request("disk")));
  h.complete();
  auto info = h.take_opt_reply();
  EXPECT_EQ(wire::load_u64(info.data.data() + 2), 12345u * 512);
  EXPECT_FALSE(wire::load_u16(info.data.data() + 10) & nbd::flag_send_trim);
}

TEST_F(HandshakeTest, AnEmptyNameIsSentToOpenAndInfoNameGivesTheCanonicalOne) {
  h.send(option(nbd::Opt::go, info_request("", {nbd::Info::name})));
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.export_name, "") << "the driver resolves the default export";
  h.complete();
  h.take_opt_reply();
  auto name = h.take_opt_reply();
  EXPECT_EQ(wire::load_u16(name.data.data()), 1);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(name.data.data() + 2), name.data.size() - 2), "disk");
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
  h.send(option(nbd::Opt::list));
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::list_exports);
  EXPECT_EQ(h.unread(), 0u);
  answer_lifecycle();
  auto a = h.take_opt_reply();
  EXPECT_EQ(a.type, rep(nbd::Rep::server));
  EXPECT_EQ(wire::load_u32(a.data.data()), 4u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(a.data.data() + 4), a.data.size() - 4), "disktest disk");
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::server));
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::ack));
  EXPECT_EQ(ask(nbd::Opt::list, Bytes{std::byte{1}}).type, rep(nbd::Rep::err_invalid));
}

// A LIST reply can be megabytes (names and descriptions up to 4096 bytes each); once it is
// acknowledged its buffer is not kept for the connection's life as a spare.
TEST_F(HandshakeTest, ALargeListReplyIsNotKeptOnceAcknowledged) {
  h.catalog.exports.resize(1, h.catalog.exports[0]);
  for (int i = 0; i < 300; ++i) {
    ExportInfo e = h.catalog.exports[0];
    e.name = "export-" + std::to_string(i);
    e.description = std::string(4000, 'd');
    h.catalog.exports.push_back(e);
  }
  h.send(option(nbd::Opt::list));
  answer_lifecycle();
  for (int i = 0; i < 301; ++i) ASSERT_EQ(h.take_opt_reply().type, rep(nbd::Rep::server));
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::ack));
  EXPECT_LE(h.conn->handshake_bytes_held(), 64u * 1024) << "the 1.2 MB reply's buffer was kept";
  EXPECT_EQ(ask(nbd::Opt::list, Bytes{std::byte{1}}).type, rep(nbd::Rep::err_invalid)) << "still serving options";
}

// Each LIST asks the plugin again (dynamic lists); a failure is ERR_PLATFORM (nbdkit).
TEST_F(HandshakeTest, ListAsksThePluginEachTimeAndAFailureIsErrPlatform) {
  h.send(option(nbd::Opt::list));
  h.complete(0, EIO);
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::err_platform));
  h.catalog.exports.pop_back();
  auto a = ask(nbd::Opt::list);
  EXPECT_EQ(a.type, rep(nbd::Rep::server));
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::ack)) << "only what the plugin lists now";
  EXPECT_EQ(h.history, (std::vector<CallKind>{CallKind::list_exports, CallKind::list_exports}));
}

TEST_F(HandshakeTest, ListSkipsNamesThatAreNotNbdStrings) {
  h.catalog.exports[1].name = std::string(5000, 'x');
  EXPECT_EQ(ask(nbd::Opt::list).type, rep(nbd::Rep::server));
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::ack));
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
  // As nbdkit 1.32, the export name is not checked here: only open can tell.
  EXPECT_EQ(ask(nbd::Opt::set_meta_context, meta_request("nope", {"base:allocation"})).type,
            rep(nbd::Rep::meta_context));
}

TEST_F(HandshakeTest, OversizedOptionIsDiscardedAndAnsweredTooBig) {
  Bytes big(70000, std::byte{1});
  h.send_via_window(option(nbd::Opt::list, big), 5000);
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::err_too_big));
  EXPECT_EQ(ask(nbd::Opt::list).type, rep(nbd::Rep::server));
}

// Spec §3.2.6: a SET_META_CONTEXT replaces the selection even when it fails, also when it
// is too big to read: a later GO has no context selected.
TEST_F(HandshakeTest, SetMetaContextTooBigDropsTheSelection) {
  ask(nbd::Opt::structured_reply);
  EXPECT_EQ(ask(nbd::Opt::set_meta_context, meta_request("disk", {"base:allocation"})).type,
            rep(nbd::Rep::meta_context));
  h.take_opt_reply();  // ACK
  Bytes big = meta_request("disk", {"base:allocation", std::string(70000, 'q')});
  h.send_via_window(option(nbd::Opt::set_meta_context, big), 5000);
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::err_too_big));
  h.send(option(nbd::Opt::go, info_request("disk")));
  answer_lifecycle();
  while (h.unread() > 0) h.take_opt_reply();
  ASSERT_EQ(h.conn->phase(), Phase::transmission);
  h.send(request(nbd::Cmd::block_status, 1, 0, 4096));
  answer_lifecycle();
  auto c = h.take_chunk();
  EXPECT_EQ(c.type, static_cast<std::uint16_t>(nbd::Chunk::error)) << "no context selected: BLOCK_STATUS is refused";
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
  for (int i = 0; i < 200 && !h.closed_abort; ++i) {
    h.send(option(nbd::Opt::list));
    answer_lifecycle();
  }
  EXPECT_TRUE(h.closed_abort);
  EXPECT_EQ(h.conn->stats().options, Limits{}.options_per_handshake_max + 1);
}

TEST_F(HandshakeTest, AbortIsAckedThenClosedGracefully) {
  EXPECT_EQ(ask(nbd::Opt::abort).type, rep(nbd::Rep::ack));
  EXPECT_TRUE(h.closed_flush);
  EXPECT_FALSE(h.closed_abort);
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::client_abort);
  EXPECT_TRUE(h.history.empty()) << "no plugin call after preconnect without an option that needs one";
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
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.export_name, "nope") << "the plugin decides";
  h.complete();
  EXPECT_TRUE(h.closed_abort);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::export_name_failed);
}

// nbdkit 1.32 answers every failed open ERR_UNKNOWN; the client may try another option.
TEST_F(HandshakeTest, OpenFailureIsReportedAndNegotiationContinues) {
  h.send(option(nbd::Opt::go, info_request("")));
  h.complete(0, EPERM);
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::err_unknown));
  EXPECT_EQ(h.conn->stats().opens, 0u);
  EXPECT_EQ(h.conn->handle_state(), HandleState::none);
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
  h.complete();
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::info));
  auto bs = h.take_opt_reply();
  ASSERT_EQ(bs.data.size(), 14u);
  EXPECT_EQ(wire::load_u32(bs.data.data() + 2), 4096u);
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::err_block_size_reqd));
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::close) << "a refused GO closes what it opened";
  h.complete();
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
  // Delivered whole (the core stages what it cannot parse while a call runs) or byte by
  // byte; the plugin answers whenever it is asked.
  a.input(input::BytesReceived{script});
  while (!a.calls.empty()) a.complete();
  for (std::byte x : script) {
    while (!b.conn->wants_read() && !b.calls.empty()) b.complete();
    b.send(Bytes{x});
  }
  while (!b.calls.empty()) b.complete();
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

TEST_F(HandshakeTest, DisconnectWhileInfosHandleIsOpenIsIgnored) {
  h.send(option(nbd::Opt::info, info_request("disk")));
  h.input(input::DisconnectRequested{true});  // from a handshake callback: not connected
  h.complete();
  EXPECT_EQ(h.conn->stats().ignored_disconnects, 1u);
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::info));
  EXPECT_FALSE(h.closes);
}

TEST_F(HandshakeTest, GoQueuedBehindInfosCloseIsWithdrawnByShutdown) {
  h.send(option(nbd::Opt::info, info_request("disk")));
  h.complete();  // open
  h.take_opt_reply();
  h.take_opt_reply();
  ASSERT_EQ(h.calls.size(), 1u);  // INFO's close, still running
  h.send(option(nbd::Opt::go, info_request("disk")));
  h.input(input::ShutdownRequested{});
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::err_shutdown));
  h.complete();  // close
  EXPECT_TRUE(h.calls.empty()) << "the withdrawn GO never opens";
  EXPECT_EQ(h.history, (std::vector<CallKind>{CallKind::open, CallKind::close}));
  EXPECT_EQ(h.conn->handle_state(), HandleState::none);
}

// ---- preconnect -------------------------------------------------------------------------

TEST(Preconnect, RunsBeforeTheGreeting) {
  Harness h(default_catalog(), Limits{}, ThreadModel::parallel, nullptr, 1, /*answer_preconnect=*/false);
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::preconnect);
  EXPECT_TRUE(h.out.empty()) << "no greeting before preconnect returned";
  EXPECT_FALSE(h.conn->wants_read());
  h.complete();
  EXPECT_EQ(h.out.size(), nbd::greeting_bytes);
  EXPECT_TRUE(h.conn->wants_read());
}

TEST(Preconnect, AFailureClosesWithNothingSent) {
  Harness h(default_catalog(), Limits{}, ThreadModel::parallel, nullptr, 1, false);
  h.complete(0, EACCES);
  EXPECT_TRUE(h.out.empty());
  EXPECT_TRUE(h.closed_abort);
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::preconnect_refused);
  EXPECT_EQ(h.history, (std::vector<CallKind>{CallKind::preconnect})) << "no close without an open";
}

TEST(Preconnect, ShutdownWhileItRunsStillGreetsThenRefusesOptions) {
  Harness h(default_catalog(), Limits{}, ThreadModel::parallel, nullptr, 1, false);
  h.input(input::ShutdownRequested{});
  h.complete();
  EXPECT_EQ(h.out.size(), nbd::greeting_bytes);
  h.read_pos = nbd::greeting_bytes;
  h.send(client_flags());
  h.send(option(nbd::Opt::go, info_request("")));
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::err_shutdown));
  EXPECT_TRUE(h.calls.empty()) << "no open after shutdown";
}

TEST(Preconnect, ShutdownWhileItWaitsForTheGateWithdrawsIt) {
  TestGate gate;
  Harness a(default_catalog(), Limits{}, ThreadModel::serialize_all_requests, &gate, 1, false);
  Harness b(default_catalog(), Limits{}, ThreadModel::serialize_all_requests, &gate, 2, false);
  ASSERT_EQ(a.calls.size(), 1u);
  EXPECT_TRUE(b.calls.empty()) << "b waits for the gate";
  b.input(input::ShutdownRequested{});
  EXPECT_TRUE(b.out.empty());
  EXPECT_TRUE(b.closes);
  EXPECT_TRUE(b.finished);
  EXPECT_EQ(b.conn->stats().end_reason, EndReason::shut_down);
  EXPECT_TRUE(b.history.empty()) << "no preconnect starts after shutdown";
}

// ---- shutdown and the handshake's plugin calls ---------------------------------------------

TEST_F(HandshakeTest, ShutdownWhileListRunsAnswersErrShutdown) {
  h.send(option(nbd::Opt::list));
  h.input(input::ShutdownRequested{});
  h.complete();
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::err_shutdown));
}

TEST_F(HandshakeTest, ShutdownWhileInfoOpenRunsRefusesAndCloses) {
  h.send(option(nbd::Opt::info, info_request("disk")));
  h.input(input::ShutdownRequested{});
  h.complete();
  EXPECT_EQ(h.take_opt_reply().type, rep(nbd::Rep::err_shutdown));
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::close);
}

TEST_F(HandshakeTest, ExportNameWhoseOpenRanDuringShutdownIsAHardCloseAndCloses) {
  h.send(option(nbd::Opt::export_name));
  h.input(input::ShutdownRequested{});
  h.complete();
  EXPECT_EQ(h.unread(), 0u) << "never served";
  EXPECT_TRUE(h.closed_abort);
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::close);
  h.complete();
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.conn->stats().opens, h.conn->stats().closes);
}

}  // namespace
}  // namespace nbdd::test
