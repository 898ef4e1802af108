// The plugin thread models are enforced by when the core emits CallPlugin.
#include "tests/core/harness.hpp"

namespace nbdd::test {
namespace {

TEST(ThreadModel, ParallelRunsEveryRequestAtOnce) {
  Harness h;
  h.handshake();
  for (int i = 0; i < 8; ++i) h.send(request(nbd::Cmd::read, i, 0, 512));
  EXPECT_EQ(h.calls.size(), 8u);
}

TEST(ThreadModel, SerializeRequestsRunsOneCallPerConnection) {
  Harness h(default_catalog(), Limits{}, ThreadModel::serialize_requests);
  h.handshake();
  for (int i = 0; i < 4; ++i) h.send(request(nbd::Cmd::read, i, 0, 512));
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(h.calls.size(), 1u);
    h.complete();
  }
  EXPECT_TRUE(h.calls.empty());
  EXPECT_EQ(h.conn->stats().replies, 4u);
}

// Delivers pending gate handovers to whichever harness they name.
void deliver(TestGate& gate, Harness& a, Harness& b) {
  while (!gate.opened.empty()) {
    const auto id = gate.opened.front();
    gate.opened.erase(gate.opened.begin());
    (id == 1 ? a : b).input(input::GateOpened{});
  }
}

TEST(ThreadModel, SerializeAllRequestsRunsOneCallAcrossConnections) {
  TestGate gate;
  Harness a(default_catalog(), Limits{}, ThreadModel::serialize_all_requests, &gate, 1);
  Harness b(default_catalog(), Limits{}, ThreadModel::serialize_all_requests, &gate, 2);
  a.handshake();
  b.handshake();
  a.send(request(nbd::Cmd::read, 1, 0, 512));
  a.send(request(nbd::Cmd::read, 2, 0, 512));
  b.send(request(nbd::Cmd::read, 3, 0, 512));
  EXPECT_EQ(a.calls.size() + b.calls.size(), 1u);
  int done = 0;
  while (done < 3) {
    ASSERT_EQ(a.calls.size() + b.calls.size(), 1u) << "exactly one call at a time";
    (a.calls.empty() ? b : a).complete();
    deliver(gate, a, b);
    ++done;
  }
  EXPECT_EQ(b.conn->stats().replies, 1u);
  EXPECT_EQ(a.conn->stats().replies, 2u);
}

TEST(ThreadModel, SerializeConnectionsHoldsTheGateFromOpenToClose) {
  TestGate gate;
  Harness a(default_catalog(), Limits{}, ThreadModel::serialize_connections, &gate, 1);
  Harness b(default_catalog(), Limits{}, ThreadModel::serialize_connections, &gate, 2);
  a.handshake();
  b.read_pos = 18;
  Bytes flags;
  put32(flags, 3);
  b.send(flags);
  b.send(option(nbd::Opt::go, info_request("")));
  EXPECT_TRUE(b.calls.empty()) << "b's open waits for a's close";
  EXPECT_FALSE(b.conn->deadline().has_value()) << "no handshake timeout while queued";
  a.send(request(nbd::Cmd::read, 1, 0, 512));
  a.send(request(nbd::Cmd::read, 2, 0, 512));
  EXPECT_EQ(a.calls.size(), 1u) << "one call at a time within the connection too";
  a.complete();
  a.complete();
  a.send(request(nbd::Cmd::disc, 3, 0, 0));
  a.complete();  // close
  EXPECT_TRUE(a.finished);
  deliver(gate, a, b);
  ASSERT_EQ(b.calls.size(), 1u);
  EXPECT_EQ(b.calls[0].call.kind, CallKind::open);
}

TEST(ThreadModel, ShutdownWithdrawsAnOpenQueuedBehindTheGate) {
  TestGate gate;
  Harness a(default_catalog(), Limits{}, ThreadModel::serialize_connections, &gate, 1);
  Harness b(default_catalog(), Limits{}, ThreadModel::serialize_connections, &gate, 2);
  a.handshake();
  b.read_pos = 18;
  Bytes flags;
  put32(flags, 3);
  b.send(flags);
  b.send(option(nbd::Opt::go, info_request("")));
  b.input(input::ShutdownRequested{});
  EXPECT_EQ(b.take_opt_reply().type, static_cast<std::uint32_t>(nbd::Rep::err_shutdown));
  EXPECT_EQ(gate.gate.waiting(), 0u);
  a.send(request(nbd::Cmd::disc, 1, 0, 0));
  a.complete();
  deliver(gate, a, b);
  EXPECT_TRUE(b.calls.empty());
  EXPECT_FALSE(gate.gate.holder().has_value());
}

// Seed 743 of the simulator: a handover raced with a forced close's cancel; the stale
// GateOpened must not be taken for the next handover.
TEST(ThreadModel, AStaleHandoverIsIgnored) {
  TestGate gate;
  Harness a(default_catalog(), Limits{}, ThreadModel::serialize_all_requests, &gate, 1);
  Harness b(default_catalog(), Limits{}, ThreadModel::serialize_all_requests, &gate, 2);
  a.handshake();
  b.handshake();
  a.send(request(nbd::Cmd::read, 1, 0, 512));  // a holds the gate
  b.send(request(nbd::Cmd::read, 2, 0, 512));  // b waits
  a.send(request(nbd::Cmd::read, 3, 0, 512));
  a.complete();  // a releases: handed to b (GateOpened for b pending); a queues behind b
  ASSERT_EQ(gate.opened, std::vector<ConnectionId>{2});
  gate.opened.clear();  // the handover to b is "in flight"
  b.input(input::DisconnectRequested{true});  // b cancels while it already holds the gate
  ASSERT_EQ(gate.opened, std::vector<ConnectionId>{1}) << "the gate passed on to a";
  gate.opened.clear();
  EXPECT_FALSE(b.finished) << "waits for the stale GateOpened and its close";
  a.input(input::GateOpened{});
  ASSERT_EQ(a.calls.size(), 1u);
  b.input(input::GateOpened{});  // the stale one
  EXPECT_TRUE(b.calls.empty()) << "b's close must wait for the gate a holds";
  a.complete();
  deliver(gate, a, b);
  ASSERT_EQ(b.calls.size(), 1u);
  EXPECT_EQ(b.calls[0].call.kind, CallKind::close);
  b.complete();
  EXPECT_TRUE(b.finished);
  EXPECT_FALSE(gate.gate.holder().has_value());
}

TEST(ExclusiveGate, HandsOverInFifoOrderAndCancelOfTheHolderReleases) {
  ExclusiveGate g;
  EXPECT_TRUE(g.try_acquire(1));
  EXPECT_FALSE(g.try_acquire(2));
  EXPECT_FALSE(g.try_acquire(3));
  EXPECT_EQ(g.release(1), std::optional<ConnectionId>(2));
  EXPECT_EQ(g.cancel(2), std::optional<ConnectionId>(3)) << "the holder cancelling is a release";
  EXPECT_EQ(g.cancel(3), std::nullopt);
  EXPECT_FALSE(g.holder().has_value());
}

}  // namespace
}  // namespace nbdd::test
