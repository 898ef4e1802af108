#include <gtest/gtest.h>

#include "core/server_state.hpp"

namespace nbdd::core {
namespace {

std::vector<std::string> drain(ServerState& s) {
  std::vector<std::string> out;
  while (auto a = s.next_action()) out.push_back(describe(*a));
  return out;
}

TEST(ServerState, ShutdownEndsEveryConnectionThenUnloadsOnceThenExits) {
  ServerState s;
  auto a = s.admit(), b = s.admit();
  ASSERT_TRUE(a && b);
  s.shutdown_requested(Instant{});
  EXPECT_EQ(drain(s), (std::vector<std::string>{"StopAccepting", "EndConnection{conn=1 force=false}",
                                                "EndConnection{conn=2 force=false}"}));
  EXPECT_FALSE(s.admit().has_value()) << "nothing is admitted after shutdown";
  s.finished(*a);
  EXPECT_TRUE(drain(s).empty());
  s.finished(*b);
  EXPECT_EQ(drain(s), std::vector<std::string>{"Unload"});
  EXPECT_EQ(s.phase(), ServerPhase::unloading);
  s.unload_done();
  EXPECT_EQ(drain(s), std::vector<std::string>{"Exit"});
  s.shutdown_requested(Instant{});
  EXPECT_TRUE(drain(s).empty()) << "nothing after unload";
}

TEST(ServerState, SecondShutdownForces) {
  ServerState s;
  auto a = s.admit();
  s.shutdown_requested(Instant{});
  drain(s);
  s.shutdown_requested(Instant{});
  EXPECT_EQ(drain(s), std::vector<std::string>{"EndConnection{conn=1 force=true}"});
  s.shutdown_requested(Instant{});
  EXPECT_TRUE(drain(s).empty());
  s.finished(*a);
  EXPECT_EQ(drain(s), std::vector<std::string>{"Unload"});
}

TEST(ServerState, IdleServerUnloadsAtOnce) {
  ServerState s;
  s.shutdown_requested(Instant{});
  EXPECT_EQ(drain(s), (std::vector<std::string>{"StopAccepting", "Unload"}));
}

TEST(ServerState, MaxConnectionsRefusesTheExtraClient) {
  ServerState s;
  s.set_max_connections(1);
  auto a = s.admit();
  EXPECT_TRUE(a);
  EXPECT_FALSE(s.admit());
  s.finished(*a);
  EXPECT_TRUE(s.admit());
}

constexpr Instant t0{1'000'000'000};
constexpr Duration grace = Duration::from_s(1);

TEST(ServerState, GracePeriodRunningOutForcesTheConnectionsStillLive) {
  ServerState s;
  s.set_grace_period(grace);
  auto a = s.admit(), b = s.admit();
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(s.deadline()) << "no deadline before shutdown";
  s.shutdown_requested(t0);
  drain(s);
  ASSERT_EQ(s.deadline(), t0 + grace);
  s.on_deadline(Instant{t0.ns + grace.ns - 1});  // early (a timer may fire early): nothing
  EXPECT_TRUE(drain(s).empty());
  EXPECT_FALSE(s.forced());
  s.finished(*a);
  s.on_deadline(t0 + grace);
  EXPECT_EQ(drain(s), std::vector<std::string>{"EndConnection{conn=2 force=true}"}) << "only the live one";
  EXPECT_TRUE(s.forced());
  EXPECT_FALSE(s.deadline()) << "forced once: no deadline left";
  s.on_deadline(t0 + grace + grace);
  s.shutdown_requested(t0 + grace + grace);
  EXPECT_TRUE(drain(s).empty()) << "forcing happens once";
  s.finished(*b);
  EXPECT_EQ(drain(s), std::vector<std::string>{"Unload"});
}

TEST(ServerState, NoDeadlineOnceEveryConnectionFinished) {
  ServerState s;
  s.set_grace_period(grace);
  auto a = s.admit();
  s.shutdown_requested(t0);
  s.finished(*a);
  EXPECT_FALSE(s.deadline());
  s.on_deadline(t0 + grace);
  EXPECT_FALSE(s.forced());
  EXPECT_EQ(drain(s), (std::vector<std::string>{"StopAccepting", "EndConnection{conn=1 force=false}", "Unload"}));
}

TEST(ServerState, SecondRequestDoesNotMoveTheGraceDeadline) {
  ServerState s;
  s.set_grace_period(grace);
  s.admit();
  s.shutdown_requested(t0);
  EXPECT_EQ(s.deadline(), t0 + grace);
  s.shutdown_requested(t0 + Duration::from_ms(500));
  EXPECT_TRUE(s.forced());
  EXPECT_FALSE(s.deadline()) << "already forced";
}

}  // namespace
}  // namespace nbdd::core
