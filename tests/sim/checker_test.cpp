// The invariant checker and the wire decoders on hand-made traces (no core::Connection):
// each test feeds a short, deliberately wrong conversation and expects the named invariant.
#include <gtest/gtest.h>

#include <vector>

#include "sim/invariants/checker.hpp"
#include "sim/scenario.hpp"
#include "sim/wire.hpp"

namespace nbdd::sim {
namespace {

using namespace wire;

std::vector<std::byte> greeting() {
  std::vector<std::byte> g;
  put64(g, nbdmagic);
  put64(g, ihaveopt);
  put16(g, 3);
  return g;
}

std::vector<std::byte> option_reply(std::uint32_t option, std::uint32_t type, std::vector<std::byte> data = {}) {
  std::vector<std::byte> r;
  put64(r, rep_magic);
  put32(r, option);
  put32(r, type);
  put32(r, static_cast<std::uint32_t>(data.size()));
  r.insert(r.end(), data.begin(), data.end());
  return r;
}

std::vector<std::byte> simple_reply(std::uint32_t error, std::uint64_t cookie) {
  std::vector<std::byte> r;
  put32(r, simple_magic);
  put32(r, error);
  put64(r, cookie);
  return r;
}

struct Harness {
  core::ExportCatalog catalog;
  InvariantChecker checker;
  core::Instant t{};
  static CheckerConfig config(const core::ExportCatalog& cat) {
    CheckerConfig c;
    c.catalog = &cat;
    return c;
  }
  Harness() : catalog(make_catalog()), checker(config(catalog)) { checker.on_connection(1, t); }
  static core::ExportCatalog make_catalog() {
    core::ExportCatalog c;
    c.exports.push_back(core::ExportInfo{"d", "", 4096, {}, {}});
    c.default_export = "d";
    return c;
  }
  void client(const std::vector<std::byte>& b) { checker.on_input(1, t, core::input::BytesReceived{b}); }
  void server(const std::vector<std::byte>& b) { checker.on_action(1, t, core::action::Send{b, {}}); }
  void input(const core::Input& in) { checker.on_input(1, t, in); }
  void action(const core::Action& a) { checker.on_action(1, t, a); }
  std::string first() const { return checker.violation() ? checker.violation()->invariant : "none"; }

  // Greeting, client flags, GO "" -> open -> INFO_EXPORT + ACK: transmission with simple replies.
  void handshake() {
    server(greeting());
    input(core::input::SendDone{});
    std::vector<std::byte> flags;
    put32(flags, 1);
    client(flags);
    std::vector<std::byte> go;
    put32(go, 0);
    put16(go, 0);
    client(encode_option(opt::go, go));
    action(core::action::CallPlugin{core::lifecycle_slot, core::PluginCall{core::CallKind::open}});
    input(core::input::PluginDone{core::lifecycle_slot, 0});
    std::vector<std::byte> info;
    put16(info, 0);
    put64(info, 4096);
    put16(info, 1);
    server(option_reply(opt::go, rep::info, info));
    server(option_reply(opt::go, rep::ack));
    input(core::input::SendDone{});
    input(core::input::SendDone{});
  }
  void read(std::uint64_t cookie) {
    Request r;
    r.type = cmd::read;
    r.cookie = cookie;
    r.length = 0;
    client(encode_request(r, false));
  }
};

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

TEST(ServerStreamDecoder, RejectsASimpleReplyToAReadWithStructuredReplies) {
  ServerStreamDecoder d;
  std::vector<ServerStreamDecoder::Event> ev;
  d.feed(greeting(), ev);
  d.client_flags(1);
  d.option_sent(opt::structured_reply, {});
  d.feed(option_reply(opt::structured_reply, rep::ack), ev);
  std::vector<std::byte> go;
  put32(go, 0);
  put16(go, 0);
  d.option_sent(opt::go, go);
  std::vector<std::byte> info;
  put16(info, 0);
  put64(info, 4096);
  put16(info, 1 | eflag::send_df);
  d.feed(option_reply(opt::go, rep::info, info), ev);
  d.feed(option_reply(opt::go, rep::ack), ev);
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
  sc.steps = {Step{step::ClientConnects{2}}, Step{step::ClientSends{1, cmd::write, 512, 1024, 1}},
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
