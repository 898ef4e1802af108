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
  s.shutdown_requested();
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
  s.shutdown_requested();
  EXPECT_TRUE(drain(s).empty()) << "nothing after unload";
}

TEST(ServerState, SecondShutdownForces) {
  ServerState s;
  auto a = s.admit();
  s.shutdown_requested();
  drain(s);
  s.shutdown_requested();
  EXPECT_EQ(drain(s), std::vector<std::string>{"EndConnection{conn=1 force=true}"});
  s.shutdown_requested();
  EXPECT_TRUE(drain(s).empty());
  s.finished(*a);
  EXPECT_EQ(drain(s), std::vector<std::string>{"Unload"});
}

TEST(ServerState, IdleServerUnloadsAtOnce) {
  ServerState s;
  s.shutdown_requested();
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

}  // namespace
}  // namespace nbdd::core
