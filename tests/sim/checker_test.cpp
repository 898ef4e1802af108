// The invariant checker and the wire decoders on hand-made traces (no core::Connection):
// each test feeds a short, deliberately wrong conversation and expects the named invariant.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <new>
#include <vector>

#include "sim/invariants/checker.hpp"
#include "sim/scenario.hpp"
#include "sim/wire.hpp"
#include "tests/sim/checker_harness.hpp"

// The largest single heap allocation while armed (FINDINGS.md C4: nothing proportional to a
// wire length field before the data arrives). Replaces the global operator new of the test
// binary; it only forwards to malloc and records sizes. Not under AddressSanitizer, whose own
// operator new/delete pairs must stay matched (the C4 test is skipped there).
#if defined(__SANITIZE_ADDRESS__)
#define NBDD_TRACK_NEW 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NBDD_TRACK_NEW 0
#endif
#endif
#ifndef NBDD_TRACK_NEW
#define NBDD_TRACK_NEW 1
#endif
namespace {
bool g_track = false;
std::size_t g_largest = 0;
}  // namespace
#if NBDD_TRACK_NEW
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // malloc/free on both sides
#endif
void* operator new(std::size_t n) {
  if (g_track && n > g_largest) g_largest = n;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif  // NBDD_TRACK_NEW

namespace nbdd::sim {
namespace {

using namespace wire;
using namespace checker_test;

TEST(InvariantChecker, AcceptsACleanConversation) {
  Harness h;
  h.handshake();
  h.read(7);
  h.server(simple_reply(0, 7));
  EXPECT_EQ(h.first(), "none");
}

TEST(InvariantChecker, FlagsASendAfterForcedDisconnect) {
  Harness h;
  h.handshake();
  h.read(7);
  h.input(core::input::DisconnectRequested{true});
  h.action(core::action::Close{core::CloseMode::abort});
  h.server(simple_reply(0, 7));
  EXPECT_EQ(h.first(), "INV-FORCE-SILENCE");
}

TEST(InvariantChecker, FlagsAForceWithoutCloseAbort) {
  Harness h;
  h.handshake();
  h.input(core::input::DisconnectRequested{true});
  h.input(core::input::SendDone{});  // next input, and still no Close{abort}
  EXPECT_EQ(h.first(), "INV-FORCE-CLOSES");
}

TEST(InvariantChecker, FlagsARealReplyToARequestParsedAfterGracefulShutdown) {
  Harness h;
  h.handshake();
  h.input(core::input::ShutdownRequested{});
  h.read(9);
  h.server(simple_reply(0, 9));
  EXPECT_EQ(h.first(), "INV-GRACEFUL-ESHUTDOWN");
}

TEST(InvariantChecker, FlagsESHUTDOWNForARequestParsedBeforeGracefulShutdown) {
  Harness h;
  h.handshake();
  h.read(9);
  h.input(core::input::ShutdownRequested{});
  h.server(simple_reply(err::eshutdown, 9));
  EXPECT_EQ(h.first(), "INV-GRACEFUL-INFLIGHT-REAL-REPLY");
}

TEST(InvariantChecker, FlagsAReplyToDISCAndToUnknownCookies) {
  Harness h;
  h.handshake();
  Request disc;
  disc.type = cmd::disc;
  disc.cookie = 3;
  h.client(encode_request(disc, false));
  h.server(simple_reply(err::eshutdown, 3));
  EXPECT_EQ(h.first(), "INV-WIRE-PARSES");
}

TEST(InvariantChecker, FlagsCloseCallWhileDataCallRuns) {
  Harness h;
  h.handshake();
  Request r;
  r.type = cmd::read;
  r.cookie = 1;
  r.length = 512;
  h.client(encode_request(r, false));
  core::PluginCall read{core::CallKind::pread, 0, 512};
  h.action(core::action::CallPlugin{core::SlotId{0}, read});
  h.action(core::action::CallPlugin{core::lifecycle_slot, core::PluginCall{core::CallKind::close}});
  EXPECT_EQ(h.first(), "INV-CLOSE-ONCE-AFTER-LAST");
}

TEST(InvariantChecker, FlagsHandshakeOptionAnsweredNormallyAfterShutdown) {
  Harness h;
  h.server(greeting());
  std::vector<std::byte> flags;
  put32(flags, 1);
  h.client(flags);
  h.input(core::input::ShutdownRequested{});
  h.client(encode_option(opt::structured_reply, {}));
  h.server(option_reply(opt::structured_reply, rep::ack));
  EXPECT_EQ(h.first(), "INV-HANDSHAKE-SHUTDOWN");
}

TEST(InvariantChecker, FlagsAMissedGraceDeadline) {
  Harness h;
  h.handshake();
  h.input(core::input::ShutdownRequested{});
  h.checker.on_time(core::Instant{} + core::Duration::from_s(2));
  EXPECT_EQ(h.first(), "INV-GRACE-DEADLINE");
}

TEST(InvariantChecker, FlagsStatusMovingBackwards) {
  Harness h;
  h.checker.on_status(1, h.t, core::Status::closing);
  h.checker.on_status(1, h.t, core::Status::draining);
  EXPECT_EQ(h.first(), "INV-STATUS-FORWARD");
}

TEST(InvariantChecker, FlagsAReadThatReturnsNeitherTheWrittenDataNorZero) {
  Harness h;
  h.handshake();
  Request w;
  w.type = cmd::write;
  w.cookie = 1;
  w.length = 4;
  w.payload = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  h.client(encode_request(w, false));
  h.server(simple_reply(0, 1));
  Request r;
  r.type = cmd::read;
  r.cookie = 2;
  r.length = 4;
  h.client(encode_request(r, false));
  auto reply = simple_reply(0, 2);
  const std::vector<std::byte> data{std::byte{1}, std::byte{2}, std::byte{9}, std::byte{4}};
  reply.insert(reply.end(), data.begin(), data.end());
  h.server(reply);
  EXPECT_EQ(h.first(), "INV-READ-MODEL");
}

TEST(InvariantChecker, AcceptsAReadRacingAnUnansweredWrite) {
  Harness h;
  h.handshake();
  Request w;
  w.type = cmd::write;
  w.cookie = 1;
  w.length = 2;
  w.payload = {std::byte{7}, std::byte{7}};
  h.client(encode_request(w, false));
  Request r;
  r.type = cmd::read;
  r.cookie = 2;
  r.length = 2;
  h.client(encode_request(r, false));
  auto reply = simple_reply(0, 2);
  reply.push_back(std::byte{7});  // the write may or may not have happened, byte by byte
  reply.push_back(std::byte{0});
  h.server(reply);
  EXPECT_EQ(h.first(), "none");
}

// ---- checker gaps C1-C5 (fuzz/FINDINGS.md): fuzzed clients do what simulated ones never do

// C1: the client MUST NOT send anything after NBD_CMD_DISC, and core stops reading there; a
// READ after DISC (same segment) is not a request core owes a reply.
TEST(CheckerGaps, C1RequestHeadersAfterDiscAreIgnored) {
  Harness h;
  h.handshake();
  auto bytes = Harness::request(cmd::disc, 1, 0, 0);
  const auto read = Harness::request(cmd::read, 87206425264128ull, 0, 512);
  bytes.insert(bytes.end(), read.begin(), read.end());
  h.client(bytes);
  h.client(Harness::request(cmd::write, 9, 0, 4, std::vector<std::byte>(4)));  // later segments too
  h.action(core::action::Close{core::CloseMode::flush_then_close});
  EXPECT_EQ(h.first(), "none");
  EXPECT_EQ(h.checker.marks().count("disc"), 1u);
}

// ...but a request before DISC still has to be answered before the graceful close.
TEST(CheckerGaps, C1RequestsBeforeDiscMustStillBeAnswered) {
  Harness h;
  h.handshake();
  auto bytes = Harness::request(cmd::read, 5, 0, 512);
  const auto disc = Harness::request(cmd::disc, 6, 0, 0);
  bytes.insert(bytes.end(), disc.begin(), disc.end());
  h.client(bytes);
  h.action(core::action::Close{core::CloseMode::flush_then_close});
  EXPECT_EQ(h.first(), "INV-INFLIGHT-ANSWERED");
}

// C2: two requests in flight with one cookie: their replies cannot be attributed, so the
// reply stream stops being checked (like a client framing error), while every data call
// is still matched to a request.
TEST(CheckerGaps, C2DuplicateCookieStopsReplyChecksButNotCallMatching) {
  Harness h;
  h.handshake();
  h.client(Harness::request(cmd::read, 5, 0, 512));
  h.client(Harness::request(cmd::read, 5, 512, 512));
  EXPECT_EQ(h.checker.marks().count("duplicate_cookie"), 1u);
  h.action(core::action::CallPlugin{core::SlotId{0}, core::PluginCall{core::CallKind::pread, 0, 512}});
  h.action(core::action::CallPlugin{core::SlotId{1}, core::PluginCall{core::CallKind::pread, 512, 512}});
  h.input(core::input::PluginDone{core::SlotId{0}, 0});
  h.input(core::input::PluginDone{core::SlotId{1}, 0});
  for (int i = 0; i < 2; ++i) {
    auto reply = simple_reply(0, 5);
    reply.resize(reply.size() + 512);
    h.server(reply);
  }
  h.action(core::action::Close{core::CloseMode::flush_then_close});
  EXPECT_EQ(h.first(), "none");
  // A call for no request at all is still caught.
  h.action(core::action::CallPlugin{core::SlotId{2}, core::PluginCall{core::CallKind::pread, 1024, 512}});
  EXPECT_EQ(h.first(), "INV-CALL-FOR-REQUEST");
}

// C3: the plugin itself returned ESHUTDOWN (core maps it to NBD_ESHUTDOWN, as nbdkit does):
// that reply is not a drain, there was no shutdown at all.
// A WRITE whose plugin call returns `plugin_errno`, answered ESHUTDOWN with no shutdown at
// all: the first violation.
std::string eshutdown_reply_after_plugin_errno(int plugin_errno) {
  Harness h;
  h.handshake();
  h.client(Harness::request(cmd::write, 1, 0, 4, std::vector<std::byte>(4, std::byte{7})));
  h.action(core::action::CallPlugin{core::SlotId{0}, core::PluginCall{core::CallKind::pwrite, 0, 4}});
  h.input(core::input::PluginDone{core::SlotId{0}, plugin_errno});
  h.server(simple_reply(err::eshutdown, 1));
  return h.first();
}

TEST(CheckerGaps, C3PluginEshutdownIsNotJudgedAsDraining) {
  EXPECT_EQ(eshutdown_reply_after_plugin_errno(ESHUTDOWN), "none");
}

// ...while an ESHUTDOWN after a plugin call that returned something else still is.
TEST(CheckerGaps, C3EshutdownAfterAnotherPluginErrnoIsStillJudged) {
  EXPECT_EQ(eshutdown_reply_after_plugin_errno(EIO), "INV-GRACEFUL-INFLIGHT-REAL-REPLY");
}

// C4: a READ's length field alone never sizes an allocation in the checker; its data is
// stored as it arrives.
TEST(CheckerGaps, C4NoAllocationProportionalToAReadLength) {
  if (!NBDD_TRACK_NEW) GTEST_SKIP() << "operator new is not replaced under AddressSanitizer";
  Harness h;
  h.handshake();
  g_largest = 0;
  g_track = true;
  h.client(Harness::request(cmd::read, 1, 0, 64u << 20));  // 64 MiB, refused by core
  h.server(simple_reply(err::einval, 1));
  h.client(Harness::request(cmd::read, 2, 0, 0xffffffffu));
  h.server(simple_reply(err::einval, 2));
  g_track = false;
  EXPECT_LT(g_largest, 64u * 1024) << "largest single allocation: " << g_largest;
  EXPECT_EQ(h.first(), "none");
}

TEST(CheckerGaps, C4ReadDataIsCheckedRunByRun) {
  Harness h;
  h.handshake();
  h.client(Harness::request(cmd::write, 1, 100, 4, {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}}));
  h.server(simple_reply(0, 1));
  h.client(Harness::request(cmd::read, 2, 96, 12));
  auto reply = simple_reply(0, 2);
  const std::vector<std::byte> good{std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{1},
                                    std::byte{2}, std::byte{3}, std::byte{4}, std::byte{0}, std::byte{0},
                                    std::byte{0}, std::byte{0}};
  reply.insert(reply.end(), good.begin(), good.end());
  h.server(reply);
  EXPECT_EQ(h.first(), "none");
  h.client(Harness::request(cmd::read, 3, 96, 12));
  auto bad = simple_reply(0, 3);
  bad.insert(bad.end(), good.begin(), good.end());
  bad[16 + 11] = std::byte{5};  // past the write: only zero is allowed
  h.server(bad);
  ASSERT_EQ(h.first(), "INV-READ-MODEL");
  EXPECT_NE(h.checker.violation()->message.find("offset 107 is 5"), std::string::npos) << h.checker.violation()->message;
}

// C5: with a slot buffer budget that binds before in_flight_max (two 4 KiB READs fill an
// 8 KiB budget), core leaves the third READ's header staged; parsed after a graceful
// disconnect it is answered ESHUTDOWN, which is right.
TEST(CheckerGaps, C5RequestStagedBehindTheBufferBudgetMayGetEshutdown) {
  Harness h(tiny_limits());
  h.handshake();
  h.client(Harness::request(cmd::read, 15, 0, 4096));
  h.client(Harness::request(cmd::read, 16, 0, 4096));
  h.client(Harness::request(cmd::read, 17, 0, 4096));  // buffers: 2 x 4 KiB in use
  h.client(Harness::request(cmd::flush, 18, 0, 0));    // behind the staged one
  h.input(core::input::DisconnectRequested{false});
  h.server(simple_reply(err::eshutdown, 17));
  h.server(simple_reply(err::eshutdown, 18));
  EXPECT_EQ(h.first(), "none");
}

// ...while with room in the budget (here a larger budget) the same conversation is wrong.
TEST(CheckerGaps, C5RequestWithRoomInTheBudgetMustGetItsRealReply) {
  core::Limits l = tiny_limits();
  l.slot_buffer_bytes_max = 3 * 4096;
  Harness h(l);
  h.handshake();
  h.client(Harness::request(cmd::read, 15, 0, 4096));
  h.client(Harness::request(cmd::read, 16, 0, 4096));
  h.client(Harness::request(cmd::read, 17, 0, 4096));
  h.input(core::input::DisconnectRequested{false});
  h.server(simple_reply(err::eshutdown, 17));
  EXPECT_EQ(h.first(), "INV-GRACEFUL-INFLIGHT-REAL-REPLY");
}

// ---- the plugin's lifecycle in the handshake (issue 21) ----------------------------------

TEST(LifecycleChecker, FlagsAGreetingBeforePreconnect) {
  Harness h({}, false);
  h.server(greeting());
  EXPECT_EQ(h.first(), "INV-GREETING-AFTER-PRECONNECT");
}

TEST(LifecycleChecker, FlagsAFailedPreconnectThatDoesNotClose) {
  Harness h({}, false);
  h.action(core::action::CallPlugin{core::lifecycle_slot, core::PluginCall{core::CallKind::preconnect}});
  h.input(core::input::PluginDone{core::lifecycle_slot, EACCES});
  h.input(core::input::PeerClosed{});  // the next input, and still no Close{abort}
  EXPECT_EQ(h.first(), "INV-GREETING-AFTER-PRECONNECT");
  Harness ok({}, false);
  ok.action(core::action::CallPlugin{core::lifecycle_slot, core::PluginCall{core::CallKind::preconnect}});
  ok.input(core::input::PluginDone{core::lifecycle_slot, EACCES});
  ok.action(core::action::Close{core::CloseMode::abort});
  ok.action(core::action::Finished{});
  EXPECT_EQ(ok.first(), "none");
}

TEST(LifecycleChecker, FlagsAnOpenStartedAfterShutdown) {
  Harness h;
  h.options();
  h.input(core::input::ShutdownRequested{});
  h.client(encode_option(opt::go, Harness::info_request()));
  h.action(core::action::CallPlugin{core::lifecycle_slot, Harness::open_call(&h.export_info)});
  EXPECT_EQ(h.first(), "INV-NO-LIFECYCLE-AFTER-SHUTDOWN");
}

TEST(LifecycleChecker, FlagsAGoServedAlthoughShutdownCameWhileItsOpenRan) {
  Harness h;
  h.options();
  h.client(encode_option(opt::go, Harness::info_request()));
  h.action(core::action::CallPlugin{core::lifecycle_slot, Harness::open_call(&h.export_info)});
  h.input(core::input::ShutdownRequested{});
  h.input(core::input::PluginDone{core::lifecycle_slot, 0});
  h.server(option_reply(opt::go, rep::info, Harness::info_export(4096)));
  EXPECT_EQ(h.first(), "INV-SHUTDOWN-DURING-OPEN");
  // The right answer: ERR_SHUTDOWN, then the close of what the open opened.
  Harness ok;
  ok.options();
  ok.client(encode_option(opt::go, Harness::info_request()));
  ok.action(core::action::CallPlugin{core::lifecycle_slot, Harness::open_call(&ok.export_info)});
  ok.input(core::input::ShutdownRequested{});
  ok.input(core::input::PluginDone{core::lifecycle_slot, 0});
  ok.server(option_reply(opt::go, rep::err_shutdown));
  ok.action(core::action::CallPlugin{core::lifecycle_slot, core::PluginCall{core::CallKind::close}});
  ok.input(core::input::PluginDone{core::lifecycle_slot, 0});
  EXPECT_EQ(ok.first(), "none");
}

TEST(LifecycleChecker, FlagsFinishedWithAHandleNeverClosed) {
  Harness h;
  h.handshake();
  h.action(core::action::Close{core::CloseMode::flush_then_close});
  h.action(core::action::Finished{});
  EXPECT_EQ(h.first(), "INV-EVERY-OPEN-CLOSED");
}

TEST(LifecycleChecker, FlagsAnOpenWhileInfosHandleIsStillOpen) {
  Harness h;
  h.options();
  h.client(encode_option(opt::info, Harness::info_request()));
  h.action(core::action::CallPlugin{core::lifecycle_slot, Harness::open_call(&h.export_info)});
  h.input(core::input::PluginDone{core::lifecycle_slot, 0});
  h.server(option_reply(opt::info, rep::info, Harness::info_export(4096)));
  h.server(option_reply(opt::info, rep::ack));
  h.client(encode_option(opt::go, Harness::info_request()));
  h.action(core::action::CallPlugin{core::lifecycle_slot, Harness::open_call(&h.export_info)});
  EXPECT_EQ(h.first(), "INV-ONE-HANDLE");
}

TEST(LifecycleChecker, FlagsACloseWithoutAnOpenHandle) {
  Harness h;
  h.options();
  h.action(core::action::CallPlugin{core::lifecycle_slot, core::PluginCall{core::CallKind::close}});
  EXPECT_EQ(h.first(), "INV-CLOSE-ONCE-AFTER-LAST");
}

TEST(LifecycleChecker, FlagsAnInfoReplyWithAnotherSizeThanTheOpenReported) {
  Harness h;
  h.options();
  h.client(encode_option(opt::go, Harness::info_request()));
  h.action(core::action::CallPlugin{core::lifecycle_slot, Harness::open_call(&h.export_info)});
  h.export_info.size_bytes = 3584;  // the plugin's answer for this connection
  h.input(core::input::PluginDone{core::lifecycle_slot, 0});
  h.server(option_reply(opt::go, rep::info, Harness::info_export(4096)));
  EXPECT_EQ(h.first(), "INV-EXPORT-INFO-MATCHES-OPEN");
  Harness ro;  // flags too: a plugin that cannot write is announced read-only
  ro.options();
  ro.client(encode_option(opt::go, Harness::info_request()));
  ro.action(core::action::CallPlugin{core::lifecycle_slot, Harness::open_call(&ro.export_info)});
  ro.export_info.caps.can_write = false;
  ro.input(core::input::PluginDone{core::lifecycle_slot, 0});
  ro.server(option_reply(opt::go, rep::info, Harness::info_export(4096, 1)));
  EXPECT_EQ(ro.first(), "INV-EXPORT-INFO-MATCHES-OPEN");
}

TEST(LifecycleChecker, FlagsAListThatIsNotWhatThePluginListed) {
  std::vector<std::byte> entry;
  put32(entry, 1);
  put_bytes(entry, "b");
  Harness h;  // no list_exports call at all
  h.options();
  h.client(encode_option(opt::list, {}));
  h.server(option_reply(opt::list, rep::server, entry));
  EXPECT_EQ(h.first(), "INV-LIST-FROM-PLUGIN");
  Harness other;  // the plugin listed "a", the server answered "b"
  other.options();
  other.client(encode_option(opt::list, {}));
  std::vector<core::ExportEntry> listed;
  core::PluginCall call{core::CallKind::list_exports};
  call.exports = &listed;
  other.action(core::action::CallPlugin{core::lifecycle_slot, call});
  listed.push_back(core::ExportEntry{"a", ""});
  other.input(core::input::PluginDone{core::lifecycle_slot, 0});
  other.server(option_reply(opt::list, rep::server, entry));
  EXPECT_EQ(other.first(), "INV-LIST-FROM-PLUGIN");
  Harness failed;  // a failed list_exports must be ERR_PLATFORM, not an empty list
  failed.options();
  failed.client(encode_option(opt::list, {}));
  failed.action(core::action::CallPlugin{core::lifecycle_slot, call});
  failed.input(core::input::PluginDone{core::lifecycle_slot, EIO});
  failed.server(option_reply(opt::list, rep::ack));
  EXPECT_EQ(failed.first(), "INV-LIST-FROM-PLUGIN");
}

TEST(LifecycleChecker, FlagsADisconnectDuringOpenThatCoreActsOn) {
  Harness h;
  h.options();
  h.client(encode_option(opt::go, Harness::info_request()));
  h.action(core::action::CallPlugin{core::lifecycle_slot, Harness::open_call(&h.export_info)});
  h.input(core::input::DisconnectRequested{true});
  h.action(core::action::Close{core::CloseMode::abort});
  EXPECT_EQ(h.first(), "INV-DISCONNECT-ONLY-CONNECTED");
}

TEST(LifecycleChecker, AcceptsADisconnectDuringOpenThatCoreIgnores) {
  Harness h;
  h.options();
  h.client(encode_option(opt::go, Harness::info_request()));
  h.action(core::action::CallPlugin{core::lifecycle_slot, Harness::open_call(&h.export_info)});
  h.input(core::input::DisconnectRequested{true});  // not a connected callback: ignored
  h.input(core::input::PluginDone{core::lifecycle_slot, 0});
  h.server(option_reply(opt::go, rep::info, Harness::info_export(4096)));
  h.server(option_reply(opt::go, rep::ack));
  h.input(core::input::SendDone{});
  EXPECT_EQ(h.first(), "none");
}

TEST(ServerStreamDecoder, RejectsASimpleReplyToAReadWithStructuredReplies) {
  ServerStreamDecoder d = decoder_in_transmission(true, 4096, 1 | eflag::send_df);
  std::vector<ServerStreamDecoder::Event> ev;
  ASSERT_TRUE(d.in_transmission());
  Request r;
  r.type = cmd::read;
  r.cookie = 5;
  r.length = 4;
  d.request_sent(r);
  ev.clear();
  d.feed(simple_reply(err::einval, 5), ev);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, ServerStreamDecoder::Event::Kind::error);
}

TEST(Scenario, TextRoundTrips) {
  Scenario sc;
  sc.thread_model = core::ThreadModel::serialize_requests;
  sc.hold_lifecycle = true;
  sc.steps = {Step{step::ClientConnects{2}}, Step{step::ClientConnects{0, true, true}},
              Step{step::ClientSends{1, cmd::write, 512, 1024, 1}},
              Step{step::PluginFinishes{3}}, Step{step::AdvanceTime{1000}},  Step{step::ServerShutdown{}},
              Step{step::PluginDisconnect{1, true}}, Step{step::PeerCloses{1, true}}};
  const std::string text = to_text(sc);
  std::string err;
  auto back = parse_scenario(text, &err);
  ASSERT_TRUE(back) << err;
  EXPECT_EQ(to_text(*back), text);
}

}  // namespace
}  // namespace nbdd::sim
