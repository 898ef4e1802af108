// The two early endings, DISC and peer close, with requests in flight in every order.
#include "tests/core/harness.hpp"

namespace nbdd::test {
namespace {

constexpr auto err(nbd::Error e) { return static_cast<std::uint32_t>(e); }

struct Endings : ::testing::Test {
  Harness h;
  void SetUp() override { h.handshake(); }
  std::vector<Status> statuses;
  void note() { statuses.push_back(h.conn->status()); }
};

TEST_F(Endings, GracefulDisconnectLetsInFlightFinishAndRefusesNewWithEshutdown) {
  h.send(request(nbd::Cmd::read, 1, 0, 512));
  h.input(input::DisconnectRequested{false});
  EXPECT_EQ(h.conn->status(), Status::draining);
  h.send(request(nbd::Cmd::read, 2, 0, 512));
  auto refused = h.take_simple_reply();
  EXPECT_EQ(refused.cookie, 2u);
  EXPECT_EQ(refused.error, err(nbd::Error::eshutdown));
  ASSERT_EQ(h.calls.size(), 1u) << "no new command reaches the plugin";
  h.complete();
  auto real = h.take_simple_reply();
  EXPECT_EQ(real.cookie, 1u);
  EXPECT_EQ(real.error, 0u);
  h.send(request(nbd::Cmd::disc, 3, 0, 0));
  EXPECT_TRUE(h.closed_flush);
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::close);
  h.complete();
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.conn->status(), Status::dead);
  EXPECT_EQ(h.conn->stats().eshutdown_replies, 1u);
}

TEST_F(Endings, RefusedWritePayloadIsConsumedWhileDraining) {
  h.input(input::ShutdownRequested{});
  Bytes w = request(nbd::Cmd::write, 1, 0, 4096);
  w.resize(w.size() + 4096, std::byte{7});
  Bytes r = request(nbd::Cmd::read, 2, 0, 512);
  w.insert(w.end(), r.begin(), r.end());
  h.send(w);
  EXPECT_EQ(h.take_simple_reply().error, err(nbd::Error::eshutdown));
  auto second = h.take_simple_reply();
  EXPECT_EQ(second.cookie, 2u);
  EXPECT_EQ(second.error, err(nbd::Error::eshutdown));
  EXPECT_TRUE(h.calls.empty());
}

// Issue 22: ESHUTDOWN for a WRITE went out before its payload had arrived, and libnbd
// then dropped the connection with every request in flight.
TEST_F(Endings, EshutdownForAWriteComesOnlyAfterItsLastPayloadByte) {
  h.input(input::ShutdownRequested{});
  const std::size_t before = h.out.size();
  h.send(request(nbd::Cmd::write, 1, 0, 4096));
  for (int i = 0; i < 4095; ++i) {
    h.send(Bytes(1, std::byte{7}));
    ASSERT_EQ(h.out.size(), before) << "reply bytes before payload byte " << i + 1;
  }
  h.send(Bytes(1, std::byte{7}));
  ASSERT_EQ(h.out.size(), before + 16);
  auto r = h.take_simple_reply();
  EXPECT_EQ(r.cookie, 1u);
  EXPECT_EQ(r.error, err(nbd::Error::eshutdown));
  EXPECT_TRUE(h.calls.empty());
}

TEST_F(Endings, PeerGoneMidDiscardFreesTheSlotWithoutAReply) {
  h.input(input::ShutdownRequested{});
  const std::size_t before = h.out.size();
  h.send(request(nbd::Cmd::write, 1, 0, 4096));
  h.send(Bytes(1000, std::byte{7}));
  EXPECT_EQ(h.conn->stats().in_flight, 1u);
  h.input(input::PeerClosed{});
  EXPECT_EQ(h.out.size(), before) << "nobody is left to read a reply";
  EXPECT_EQ(h.conn->stats().in_flight, 0u) << "the discarding slot was freed";
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::close);
  h.complete();
  EXPECT_TRUE(h.finished);
}

TEST_F(Endings, GraceExpiringMidDiscardIsAHardDisconnect) {
  h.input(input::ShutdownRequested{});
  h.send(request(nbd::Cmd::write, 1, 0, 4096));
  h.send(Bytes(100, std::byte{1}));
  ASSERT_TRUE(h.conn->deadline().has_value());
  h.advance(Limits{}.grace_period);
  h.input(input::DeadlineReached{});
  EXPECT_TRUE(h.closed_abort) << "the refused WRITE can never be answered now";
  EXPECT_FALSE(h.closed_flush);
  EXPECT_EQ(h.unread(), 0u);
  h.complete();  // close
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::grace_expired);
  EXPECT_EQ(h.conn->stats().in_flight, 0u);
}

TEST_F(Endings, WriteWhoseHeaderCameBeforeTheDisconnectStillRuns) {
  Bytes w = request(nbd::Cmd::write, 1, 0, 4096);
  h.send(w);
  h.input(input::DisconnectRequested{false});
  h.send(Bytes(4096, std::byte{1}));
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::pwrite);
  h.complete();
  EXPECT_EQ(h.take_simple_reply().error, 0u);
}

TEST_F(Endings, GracePeriodStartsOnceNothingIsInFlight) {
  h.send(request(nbd::Cmd::read, 1, 0, 512));
  h.input(input::ShutdownRequested{});
  h.advance(Duration::from_s(30));
  EXPECT_FALSE(h.conn->deadline().has_value()) << "no grace while a command runs";
  h.complete();
  auto d = h.conn->deadline();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->ns, h.now.ns + Limits{}.grace_period.ns);
  h.advance(Limits{}.grace_period);
  h.input(input::DeadlineReached{});
  EXPECT_TRUE(h.closed_flush);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::grace_expired);
  h.complete();  // close
  EXPECT_TRUE(h.finished);
}

// Fuzz finding F1: the grace period expires while a WRITE accepted before the graceful
// moment is still missing payload bytes. That request can never be answered: abort.
TEST_F(Endings, GraceExpiringMidWritePayloadIsAHardDisconnect) {
  h.send(request(nbd::Cmd::write, 1, 0, 4096));
  h.send(Bytes(100, std::byte{1}));
  h.input(input::DisconnectRequested{false});
  h.advance(Limits{}.grace_period);
  h.input(input::DeadlineReached{});
  EXPECT_TRUE(h.closed_abort);
  EXPECT_FALSE(h.closed_flush);
  h.complete();  // close
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::grace_expired);
}

// Fuzz finding F2: replies not read hold every slot, so a request header waits staged;
// when the grace period expires it can never be answered: abort.
TEST(EndingsBackPressure, GraceExpiringWithAStagedRequestIsAHardDisconnect) {
  Limits lim;
  lim.in_flight_max = 2;
  Harness h(default_catalog(), lim);
  h.handshake();
  h.auto_ack = false;
  h.send(request(nbd::Cmd::flush, 1, 0, 0));
  h.send(request(nbd::Cmd::flush, 2, 0, 0));
  h.complete_all();
  EXPECT_FALSE(h.conn->wants_read());
  h.input(input::BytesReceived{request(nbd::Cmd::read, 3, 0, 512)});  // a driver read it anyway
  h.input(input::DisconnectRequested{false});
  h.advance(Limits{}.grace_period);
  h.input(input::DeadlineReached{});
  EXPECT_TRUE(h.closed_abort);
  EXPECT_FALSE(h.closed_flush);
}

TEST_F(Endings, AClientThatNeverReadsCannotPinTheConnection) {
  h.auto_ack = false;
  h.send(request(nbd::Cmd::read, 1, 0, 512));
  h.complete();
  h.input(input::ShutdownRequested{});
  h.advance(Limits{}.grace_period);
  h.input(input::DeadlineReached{});
  EXPECT_TRUE(h.closed_flush);
  h.complete();  // close
  EXPECT_FALSE(h.finished) << "waits for the flush";
  h.advance(Limits{}.grace_period);
  h.input(input::DeadlineReached{});
  EXPECT_TRUE(h.closed_abort);
  EXPECT_TRUE(h.finished);
}

TEST_F(Endings, ForcedDisconnectSendsNothingMoreAndWaitsForRunningCalls) {
  h.send(request(nbd::Cmd::read, 1, 0, 512));
  h.send(request(nbd::Cmd::write, 2, 0, 512));
  h.send(Bytes(512, std::byte{3}));
  const auto sent = h.out.size();
  h.input(input::DisconnectRequested{true});
  EXPECT_TRUE(h.closed_abort);
  EXPECT_EQ(h.conn->status(), Status::closing);
  EXPECT_FALSE(h.finished);
  EXPECT_FALSE(h.conn->wants_read());
  h.complete();
  h.complete();
  EXPECT_EQ(h.out.size(), sent) << "not one byte after Close{abort}";
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::close);
  h.complete();
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::forced);
}

TEST_F(Endings, ForcedAfterGracefulStillForces) {
  h.send(request(nbd::Cmd::read, 1, 0, 512));
  h.input(input::DisconnectRequested{false});
  h.input(input::DisconnectRequested{true});
  const auto sent = h.out.size();
  h.complete();
  EXPECT_EQ(h.out.size(), sent);
  h.complete();
  EXPECT_TRUE(h.finished);
}

TEST_F(Endings, DiscFinishesInFlightRepliesThenCloses) {
  h.send(request(nbd::Cmd::read, 1, 0, 512));
  h.send(request(nbd::Cmd::flush, 2, 0, 0));
  h.send(request(nbd::Cmd::disc, 3, 0, 0));
  EXPECT_FALSE(h.conn->wants_read());
  EXPECT_FALSE(h.closes);
  h.complete(1);
  h.complete(0);
  EXPECT_EQ(h.take_simple_reply().cookie, 2u);
  EXPECT_EQ(h.take_simple_reply().cookie, 1u);
  EXPECT_TRUE(h.closed_flush);
  h.complete();
  EXPECT_TRUE(h.finished);
  EXPECT_EQ(h.history.back(), CallKind::close);
}

TEST_F(Endings, PeerCloseDropsQueuedWorkButWaitsForRunningCalls) {
  Harness s(default_catalog(), Limits{}, ThreadModel::serialize_requests);
  s.handshake();
  s.send(request(nbd::Cmd::read, 1, 0, 512));
  s.send(request(nbd::Cmd::read, 2, 0, 512));
  ASSERT_EQ(s.calls.size(), 1u) << "serialize_requests: one at a time";
  s.input(input::PeerClosed{});
  s.complete();
  ASSERT_EQ(s.calls.size(), 1u);
  EXPECT_EQ(s.calls[0].call.kind, CallKind::close) << "the queued read was dropped";
  s.complete();
  EXPECT_TRUE(s.finished);
}

TEST_F(Endings, SendFailureAborts) {
  h.auto_ack = false;
  h.send(request(nbd::Cmd::flush, 1, 0, 0));
  h.complete();
  h.input(input::SendFailed{});
  EXPECT_TRUE(h.closed_abort);
  h.complete();
  EXPECT_TRUE(h.finished);
}

TEST_F(Endings, StatusOnlyMovesForward) {
  note();
  h.send(request(nbd::Cmd::read, 1, 0, 512));
  h.input(input::ShutdownRequested{});
  note();
  h.input(input::DisconnectRequested{false});  // already draining: no change
  note();
  h.input(input::PeerClosed{});
  note();
  h.input(input::ShutdownRequested{});
  note();
  h.complete();
  h.complete();
  note();
  EXPECT_TRUE(std::is_sorted(statuses.begin(), statuses.end()));
  EXPECT_EQ(statuses.front(), Status::active);
  EXPECT_EQ(statuses.back(), Status::dead);
}

TEST_F(Endings, DisconnectFromCloseIsIgnored) {
  h.send(request(nbd::Cmd::disc, 1, 0, 0));
  ASSERT_EQ(h.calls[0].call.kind, CallKind::close);
  h.input(input::DisconnectRequested{true});
  EXPECT_EQ(h.conn->stats().ignored_disconnects, 1u);
  EXPECT_FALSE(h.closed_abort);
  h.complete();
  EXPECT_TRUE(h.finished);
}

// Every order of {completion, graceful, forced} around one in-flight read.
TEST(EndingsOrder, EveryInterleavingEndsCleanly) {
  enum Ev { done, graceful, forced, disc, peer };
  std::vector<Ev> evs = {done, graceful, forced, disc, peer};
  std::sort(evs.begin(), evs.end());
  int runs = 0;
  do {
    Harness h;
    h.handshake();
    h.send(request(nbd::Cmd::read, 1, 0, 512));
    bool forced_seen = false;
    std::size_t sent_at_force = 0;
    for (Ev e : evs) {
      if (h.finished) break;
      switch (e) {
        case done:
          if (!h.calls.empty() && h.calls[0].call.kind == CallKind::pread) h.complete();
          break;
        case graceful: h.input(input::DisconnectRequested{false}); break;
        case forced:
          h.input(input::DisconnectRequested{true});
          if (!forced_seen) sent_at_force = h.out.size();
          forced_seen = true;
          break;
        case disc:
          if (h.conn->wants_read()) h.send(request(nbd::Cmd::disc, 9, 0, 0));
          break;
        case peer: h.input(input::PeerClosed{}); break;
      }
    }
    h.complete_all();
    h.complete_all();
    EXPECT_TRUE(h.finished);
    if (forced_seen) {
      EXPECT_EQ(h.out.size(), sent_at_force);
    }
    EXPECT_EQ(std::count(h.history.begin(), h.history.end(), CallKind::close), 1);
    ++runs;
  } while (std::next_permutation(evs.begin(), evs.end()));
  EXPECT_EQ(runs, 120);
}

}  // namespace
}  // namespace nbdd::test
