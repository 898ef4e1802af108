// The io_uring transport (net/uring_loop.hpp, net/uring_stream.hpp) on a socketpair: a
// write larger than the socket's buffer arrives whole and in order (short sends resumed);
// a read cancelled by close() reports operation_aborted and the descriptor is closed only
// then; a handler posted from another thread runs while the loop sleeps (wake()); the loop
// ends once its io_context is stopped, cancelling what is still in the ring.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "net/uring_loop.hpp"
#include "net/uring_stream.hpp"

namespace nbdd::net {
namespace {
namespace asio = boost::asio;
using namespace std::chrono_literals;

// A loop on its own thread, and a socketpair whose first end it serves.
class UringFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    loop_ = UringLoop::create(ioc_, why);
    if (!loop_) GTEST_SKIP() << "io_uring refused here: " << why;
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    peer_ = fds[1];
    stream_fd_ = fds[0];
    stream_ = make_uring_stream(fds[0], *loop_);
    thread_ = std::thread([this] { loop_->run(std::chrono::microseconds(0)); });  // sleeps: wake() matters
  }
  void TearDown() override {
    if (!loop_) return;
    stop();
    on_loop([this] { stream_.reset(); });
    loop_.reset();
    if (peer_ >= 0) ::close(peer_);
  }
  // Runs f on the loop's thread and waits for it.
  template <class F>
  void on_loop(F f) {
    if (!thread_.joinable()) {
      f();
      return;
    }
    std::promise<void> done;
    asio::post(ioc_, [&] {
      f();
      done.set_value();
    });
    loop_->wake();
    ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  }
  void stop() {
    if (!thread_.joinable()) return;
    guard_.reset();
    ioc_.stop();
    loop_->wake();
    thread_.join();
  }

  asio::io_context ioc_{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard_ = asio::make_work_guard(ioc_);
  std::unique_ptr<UringLoop> loop_;
  std::unique_ptr<Stream> stream_;
  std::thread thread_;
  int peer_ = -1;
  int stream_fd_ = -1;
};

TEST_F(UringFixture, AWriteLargerThanTheSocketBufferArrivesWholeAndInOrder) {
  const int small = 16 * 1024;
  ASSERT_EQ(::setsockopt(stream_fd_, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  // Three pieces, 4 MiB in all, so the kernel takes them in many short sends.
  std::vector<std::uint8_t> a(1 << 20), b(3 << 20), c(1000);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<std::uint8_t>(i * 7);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(i * 13 + 1);
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = static_cast<std::uint8_t>(i + 5);
  std::vector<asio::const_buffer> gather{asio::buffer(a), asio::buffer(b), asio::buffer(c)};
  std::promise<std::pair<boost::system::error_code, std::size_t>> written;
  on_loop([&] {
    stream_->async_write(gather, [&](const boost::system::error_code& ec, std::size_t n) { written.set_value({ec, n}); });
  });
  std::vector<std::uint8_t> got;
  std::uint8_t chunk[7000];
  while (got.size() < a.size() + b.size() + c.size()) {
    const ssize_t n = ::read(peer_, chunk, sizeof chunk);
    ASSERT_GT(n, 0);
    got.insert(got.end(), chunk, chunk + n);
    if (got.size() % 5 == 0) std::this_thread::sleep_for(50us);  // a slow reader now and then
  }
  auto future = written.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  const auto [ec, n] = future.get();
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(n, a.size() + b.size() + c.size());
  std::vector<std::uint8_t> want(a);
  want.insert(want.end(), b.begin(), b.end());
  want.insert(want.end(), c.begin(), c.end());
  EXPECT_TRUE(got == want);
}

TEST_F(UringFixture, ReadsWhatArrivesThenEndOfStream) {
  std::byte buffer[64];
  std::promise<std::pair<boost::system::error_code, std::size_t>> first, second;
  on_loop([&] {
    stream_->async_read_some(buffer, [&](const boost::system::error_code& ec, std::size_t n) { first.set_value({ec, n}); });
  });
  ASSERT_EQ(::write(peer_, "hello", 5), 5);
  auto f1 = first.get_future();
  ASSERT_EQ(f1.wait_for(5s), std::future_status::ready);
  const auto [ec1, n1] = f1.get();
  EXPECT_FALSE(ec1);
  ASSERT_EQ(n1, 5u);
  EXPECT_EQ(std::memcmp(buffer, "hello", 5), 0);
  on_loop([&] {
    stream_->async_read_some(buffer, [&](const boost::system::error_code& ec, std::size_t n) { second.set_value({ec, n}); });
  });
  ::shutdown(peer_, SHUT_WR);
  auto f2 = second.get_future();
  ASSERT_EQ(f2.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f2.get().first, asio::error::eof);
}

TEST_F(UringFixture, CloseCancelsAPendingReadAndThenClosesTheDescriptor) {
  std::byte buffer[64];
  std::promise<boost::system::error_code> read;
  on_loop([&] {
    stream_->async_read_some(buffer, [&](const boost::system::error_code& ec, std::size_t) { read.set_value(ec); });
    stream_->close();
  });
  auto f = read.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), asio::error::operation_aborted);
  // The peer sees the end of the stream: the descriptor was closed after the cancel.
  char c;
  EXPECT_EQ(::read(peer_, &c, 1), 0);
  // A read after close is refused at once, not queued.
  std::promise<boost::system::error_code> late;
  on_loop([&] {
    stream_->async_read_some(buffer, [&](const boost::system::error_code& ec, std::size_t) { late.set_value(ec); });
  });
  EXPECT_EQ(late.get_future().get(), asio::error::operation_aborted);
}

TEST_F(UringFixture, APostFromAnotherThreadRunsWhileTheLoopSleeps) {
  std::this_thread::sleep_for(20ms);  // the loop is asleep in io_uring_enter by now
  for (int i = 0; i < 50; ++i) {
    std::promise<std::thread::id> ran;
    asio::post(ioc_, [&] { ran.set_value(std::this_thread::get_id()); });
    loop_->wake();
    auto f = ran.get_future();
    ASSERT_EQ(f.wait_for(2s), std::future_status::ready) << "round " << i;
    EXPECT_EQ(f.get(), thread_.get_id());
  }
}

TEST_F(UringFixture, StoppingTheContextEndsTheLoopAndCancelsWhatIsInTheRing) {
  std::byte buffer[64];
  std::atomic<bool> aborted{false};
  on_loop([&] {
    stream_->async_read_some(buffer, [&](const boost::system::error_code& ec, std::size_t) {
      aborted = ec == asio::error::operation_aborted;
    });
  });
  const auto t0 = std::chrono::steady_clock::now();
  stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_TRUE(aborted);
}

TEST(UringLoopRegistry, KnowsItsContextOnly) {
  asio::io_context ioc{1}, other{1};
  std::string why;
  auto loop = UringLoop::create(ioc, why);
  if (!loop) GTEST_SKIP() << "io_uring refused here: " << why;
  EXPECT_EQ(UringLoop::of(ioc), loop.get());
  EXPECT_EQ(UringLoop::of(other), nullptr);
  loop.reset();
  EXPECT_EQ(UringLoop::of(ioc), nullptr);
}

}  // namespace
}  // namespace nbdd::net
