// net::ExitWatchdog and RunningCall: the report of running calls, the bound after arm(),
// cancel(), and the signals it counts itself when no I/O thread handles them (the
// io_context holding the signal_set is never run here, as if every I/O thread were blocked
// in a plugin call). The exits are death tests (each in a fresh process).
#include "net/exit_watchdog.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <atomic>
#include <chrono>
#include <thread>

namespace nbdd::net {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

bool mentions(const std::vector<std::string>& lines, const std::string& text) {
  for (const auto& l : lines)
    if (l.find(text) != std::string::npos) return true;
  return false;
}

// A thread "stuck" in a call until released.
class StuckCall {
 public:
  StuckCall(core::ConnectionId id, core::CallKind kind) {
    thread_ = std::thread([this, id, kind] {
      const RunningCall running(id, kind);
      started_ = true;
      while (!release_) std::this_thread::sleep_for(1ms);
    });
    while (!started_) std::this_thread::sleep_for(1ms);
  }
  ~StuckCall() {
    release_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> started_{false}, release_{false};
  std::thread thread_;
};

TEST(RunningCalls, ListsEveryThreadsCallAndNests) {
  EXPECT_FALSE(mentions(running_calls(), "conn=7"));
  {
    StuckCall stuck(7, core::CallKind::pread);
    const auto lines = running_calls();
    EXPECT_TRUE(mentions(lines, "conn=7 pread for ")) << (lines.empty() ? "" : lines.front());
    {
      const RunningCall outer("a plugin call on a worker");
      {
        const RunningCall inner(9, core::CallKind::flush);
        EXPECT_TRUE(mentions(running_calls(), "conn=9 flush"));
        EXPECT_FALSE(mentions(running_calls(), "a plugin call on a worker"));
      }
      EXPECT_TRUE(mentions(running_calls(), "a plugin call on a worker")) << "the outer one again";
      EXPECT_FALSE(mentions(running_calls(), "conn=9"));
    }
  }
  EXPECT_FALSE(mentions(running_calls(), "conn=7"));
  EXPECT_FALSE(mentions(running_calls(), "a plugin call on a worker"));
}

TEST(ExitWatchdog, CancelledBeforeTheBoundNothingHappens) {
  ExitWatchdog w;
  w.arm(200ms);
  EXPECT_TRUE(w.deadline());
  w.cancel();
  std::this_thread::sleep_for(300ms);
  SUCCEED() << "still alive";
}

TEST(ExitWatchdogDeathTest, ArmedBoundRunsOutExitsThreeListingTheStuckCall) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        StuckCall stuck(7, core::CallKind::pread);
        ExitWatchdog w;
        w.arm(200ms);
        std::this_thread::sleep_for(5s);
      },
      ::testing::ExitedWithCode(exit_status_stuck), "stuck plugin call: conn=7 pread for 0\\.[0-9]+ s");
}

// Every I/O thread blocked: the signal_set's io_context never runs its handler.
void blocked_server(std::chrono::milliseconds exit_timeout, std::chrono::milliseconds grace, int signals) {
  boost::asio::io_context ioc;
  boost::asio::signal_set set(ioc, SIGINT, SIGTERM);
  set.async_wait([](const boost::system::error_code&, int) {});
  std::atomic<bool> second{false};
  ExitWatchdog w;
  w.start({exit_timeout, grace, [&] { second = true; }});
  StuckCall stuck(3, core::CallKind::pread);
  const auto t0 = Clock::now();
  for (int i = 0; i < signals; ++i) {
    ::kill(::getpid(), SIGTERM);
    std::this_thread::sleep_for(50ms);
  }
  std::this_thread::sleep_for(10s);
  std::fprintf(stderr, "still alive after %ld ms\n",
               static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count()));
  std::exit(second ? 10 : 11);
}

TEST(ExitWatchdogDeathTest, TwoSignalsNobodyHandledStillEndTheProcessAfterExitTimeout) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(blocked_server(300ms, 60s, 2), ::testing::ExitedWithCode(exit_status_stuck),
              "stuck plugin call: conn=3 pread");
}

TEST(ExitWatchdogDeathTest, OneSignalEndsTheProcessAfterGracePlusExitTimeout) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(blocked_server(300ms, 300ms, 1), ::testing::ExitedWithCode(exit_status_stuck),
              "conn=3 pread for 0\\.[5-9]");
}

TEST(ExitWatchdog, SignalTheServerHandledLeavesTheBoundToTheServer) {
  boost::asio::io_context ioc;
  boost::asio::signal_set set(ioc, SIGINT, SIGTERM);
  set.async_wait([](const boost::system::error_code&, int) {});
  ExitWatchdog w;
  w.start({100ms, 100ms, {}});
  ::kill(::getpid(), SIGTERM);
  w.signal_handled();  // as Server::on_signal does
  std::this_thread::sleep_for(500ms);
  SUCCEED() << "still alive: a graceful shutdown the server handles is not bounded by the count";
  w.cancel();
}

TEST(ExitWatchdog, ChainedHandlerStillReachesAsio) {
  boost::asio::io_context ioc;
  boost::asio::signal_set set(ioc, SIGUSR1, SIGTERM);
  int seen = 0;
  set.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (!ec) seen = signo;
  });
  ExitWatchdog w;
  w.start({60s, 60s, {}});
  ::kill(::getpid(), SIGTERM);
  ioc.run_for(2s);
  EXPECT_EQ(seen, SIGTERM);
  w.cancel();  // before the first signal's bound (2 minutes away)
}

}  // namespace
}  // namespace nbdd::net
