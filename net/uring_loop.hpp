// An I/O shard's thread on io_uring (issue 26): the sessions' socket reads and writes go
// through one ring per shard, and the thread sleeps in io_uring_enter instead of epoll_wait.
//
// Why: on epoll every request cost the server a recvfrom, a sendmsg and an epoll_wait (and
// the busy poll an epoll_wait and a sched_yield per turn). With the ring, one io_uring_enter
// hands the kernel every send that is ready and the next receive of every connection, and
// the completions are read from shared memory: while the thread is busy or spinning it makes
// no system call at all, and while it spins it does not wake through the scheduler.
//
// Asio keeps everything else: timers, the strands' posted handlers, TLS's own posts. The
// ring watches the io_context's epoll descriptor (a multishot poll), so a timer or an Asio
// socket of the shard wakes the thread too; handlers posted from another thread (a worker's
// completion, an input from the server strand) are followed by wake(), because Asio only
// signals a thread that sleeps inside Asio. Completions run on the shard's thread, outside
// io_context::poll(), one at a time: a shard is one thread, so its strands stay serial.
#pragma once
#include <liburing.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace nbdd::net {

// One operation in the ring; its owner (a UringStream) is told how it ended. The operation
// lives in its owner, which the operation's completion handler keeps alive.
struct UringOp {
  using Complete = void (*)(UringOp& op, int result);
  Complete complete = nullptr;
  void* owner = nullptr;
  bool in_ring = false;  // submitted (or queued for submission), no completion yet
  // The loop's list of operations in the ring (for teardown).
  UringOp* prev = nullptr;
  UringOp* next = nullptr;
};

class UringLoop {
 public:
  // Null, with the reason in `why`, when this kernel (or a seccomp filter) refuses io_uring
  // or an operation nbdd needs: the shard then runs on Asio's epoll as before.
  static std::unique_ptr<UringLoop> create(boost::asio::io_context& ioc, std::string& why);
  ~UringLoop();
  UringLoop(const UringLoop&) = delete;

  // The loop of an io_context, or null (plain Asio). Set up before any session runs.
  static UringLoop* of(boost::asio::execution_context& context);
  // Wakes the shard's thread for handlers posted to its io_context from another thread
  // (or, from its own thread, posted outside io_context::poll()). Any thread.
  void wake();
  // The shard's thread: runs until the io_context is stopped (or out of work) and nothing is
  // left in the ring. Spins up to max_spin (adaptive, as run_with_busy_poll) before sleeping.
  void run(std::chrono::microseconds max_spin);

  // Shard thread only. The operation completes through op.complete with the kernel's result
  // (bytes, 0 at end of stream, or -errno; -ECANCELED once cancelled).
  void recv(UringOp& op, int fd, void* data, std::size_t size);
  void sendmsg(UringOp& op, int fd, const ::msghdr* message);
  void cancel(UringOp& op);  // completes with -ECANCELED unless it already completed
  // An operation whose owner goes away: allowed only once the ring is torn down (it can
  // then never complete).
  void forget(UringOp& op);

 private:
  explicit UringLoop(boost::asio::io_context& ioc);
  ::io_uring_sqe* next_sqe();
  void add(UringOp& op);
  void remove(UringOp& op);
  bool reap();               // runs every completion ready; whether there was one
  void arm_asio_watch();     // the multishot poll on Asio's epoll descriptor
  void arm_wake_read();      // the read on wake_fd_
  bool run_asio();           // io_context::poll() once Asio has work; whether it did
  bool taskrun_pending() const;
  bool nothing_arrived() const;  // no completion, no bytes waiting (taskrun), no wake()

  boost::asio::io_context& ioc_;
  ::io_uring ring_{};
  bool ring_ready_ = false;
  int asio_fd_ = -1;  // the io_context's epoll descriptor (not ours)
  int wake_fd_ = -1;  // eventfd written by wake() while the thread sleeps
  std::uint64_t wake_buffer_ = 0;
  bool asio_ready_ = true;    // run Asio's handlers at the next turn
  bool asio_watched_ = false;
  bool asio_watch_failed_ = false;
  bool wake_armed_ = false;
  std::size_t in_ring_ = 0;   // UringOps in the ring
  std::size_t unsubmitted_ = 0;
  UringOp* ops_ = nullptr;    // UringOps in the ring, for teardown
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> poked_{false};
};

// Posts handler to executor (a strand of a shard), then wakes that shard's loop, if it runs on
// one (loop is UringLoop::of(the shard), looked up once by the caller): the one way to post to
// a session's strand from another thread, or from a socket completion on a ring shard.
template <class Executor, class Handler>
void post_and_wake(const Executor& executor, UringLoop* loop, Handler&& handler) {
  boost::asio::post(executor, std::forward<Handler>(handler));
  if (loop != nullptr) loop->wake();
}

}  // namespace nbdd::net
