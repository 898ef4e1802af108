// The adaptive spin window of the I/O threads (net/busy_poll.hpp), and that an io_context
// run with busy polling behaves as run(): runs every handler and returns when work ends.
#include "net/busy_poll.hpp"

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <thread>

namespace nbdd::net {
namespace {

using std::chrono::microseconds;

TEST(PollWindow, StartsClosedAndGrowsWhileSleepsAreShort) {
  PollWindow w(microseconds(100));
  EXPECT_EQ(w.current(), microseconds(0));
  w.after_block(microseconds(40));  // a 40 us sleep: spinning would have caught it
  EXPECT_EQ(w.current(), microseconds(10));
  w.after_block(microseconds(30));
  EXPECT_EQ(w.current(), microseconds(20));
  w.after_block(microseconds(30));
  EXPECT_EQ(w.current(), microseconds(40));
  w.after_block(microseconds(90));
  EXPECT_EQ(w.current(), microseconds(80));
  w.after_block(microseconds(100));
  EXPECT_EQ(w.current(), microseconds(100));  // capped at max
  w.after_block(microseconds(1));
  EXPECT_EQ(w.current(), microseconds(100));
}

TEST(PollWindow, LongSleepsShrinkItToZero) {
  PollWindow w(microseconds(100));
  for (int i = 0; i < 5; ++i) w.after_block(microseconds(50));
  ASSERT_EQ(w.current(), microseconds(100));
  w.after_block(microseconds(5000));  // idle: spinning for that would waste CPU
  EXPECT_EQ(w.current(), microseconds(50));
  w.after_block(microseconds(5000));
  EXPECT_EQ(w.current(), microseconds(25));
  w.after_block(microseconds(5000));
  EXPECT_EQ(w.current(), microseconds(12) + std::chrono::nanoseconds(500));
  w.after_block(microseconds(5000));  // 6.25 us is below the first step: stop spinning
  EXPECT_EQ(w.current(), microseconds(0));
  w.after_block(microseconds(5000));
  EXPECT_EQ(w.current(), microseconds(0));
}

TEST(PollWindow, ZeroMaxNeverSpinsAndSmallMaxCapsTheFirstStep) {
  PollWindow off(microseconds(0));
  off.after_block(microseconds(1));
  EXPECT_EQ(off.current(), microseconds(0));
  PollWindow tiny(microseconds(4));
  tiny.after_block(microseconds(2));
  EXPECT_EQ(tiny.current(), microseconds(4));
  tiny.after_block(microseconds(50));
  EXPECT_EQ(tiny.current(), microseconds(0));
}

// The thread stops spinning only while every read it waits for is a bulk one: a connection
// waiting for its next request keeps the spin even if another one stalls mid-payload.
TEST(ReadWaits, OnlyBulkWhileEveryReadOfTheThreadIsBulk) {
  EXPECT_FALSE(only_bulk_reads_waiting());
  read_wait_begin(true);
  EXPECT_TRUE(only_bulk_reads_waiting());
  read_wait_begin(false);
  EXPECT_FALSE(only_bulk_reads_waiting());
  read_wait_begin(true);
  EXPECT_FALSE(only_bulk_reads_waiting());
  read_wait_end(false);
  EXPECT_TRUE(only_bulk_reads_waiting());
  read_wait_end(true);
  read_wait_end(true);
  EXPECT_FALSE(only_bulk_reads_waiting());
  // Per thread: another thread's bulk read does not stop this one's spin.
  read_wait_begin(false);
  std::thread([] {
    read_wait_begin(true);
    EXPECT_TRUE(only_bulk_reads_waiting());
    read_wait_end(true);
  }).join();
  EXPECT_FALSE(only_bulk_reads_waiting());
  read_wait_end(false);
}

// Handlers posted from the loop and a timer that fires after a sleep all run, and the call
// returns once nothing is left, for both the spinning and the plain path.
TEST(RunWithBusyPoll, RunsEveryHandlerAndReturnsWhenWorkEnds) {
  for (const auto spin : {microseconds(0), microseconds(100)}) {
    boost::asio::io_context ioc{1};
    int posted = 0;
    bool timer_fired = false;
    boost::asio::steady_timer timer(ioc, std::chrono::milliseconds(5));
    timer.async_wait([&](const boost::system::error_code& ec) { timer_fired = !ec; });
    std::function<void()> chain = [&] {
      if (++posted < 1000) boost::asio::post(ioc, chain);
    };
    boost::asio::post(ioc, chain);
    run_with_busy_poll(ioc, spin);
    EXPECT_EQ(posted, 1000) << spin.count();
    EXPECT_TRUE(timer_fired) << spin.count();
    EXPECT_TRUE(ioc.stopped());
  }
}

TEST(RunWithBusyPoll, ReturnsOnStopFromAnotherHandler) {
  boost::asio::io_context ioc{1};
  auto guard = boost::asio::make_work_guard(ioc);  // would keep run() going forever
  boost::asio::steady_timer timer(ioc, std::chrono::milliseconds(2));
  timer.async_wait([&](const boost::system::error_code&) { ioc.stop(); });
  run_with_busy_poll(ioc, microseconds(100));
  EXPECT_TRUE(ioc.stopped());
}

}  // namespace
}  // namespace nbdd::net
