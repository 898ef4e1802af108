// Adaptive busy polling for an I/O shard's thread. Waking a thread that sleeps in epoll_wait
// costs a context switch and, when its CPU went idle, an inter-processor interrupt; in a VM
// that halts idle vCPUs (this bench machine) it costs tens of microseconds, which dominates a
// depth-1 request. Spinning briefly after each burst of work catches the next request
// without that sleep. The window adapts as the guest kernel's haltpoll does: it grows while
// sleeps turn out short (a longer spin would have caught them) and shrinks when they are
// long, so a quiet or idle daemon stops spinning (docs/daemon.md, "Busy polling").
// On by default (--busy-poll=300; 0 turns it off). Paired A/Bs in the bench found no
// repeatable cost for pipelined clients, 1.5-3x the IOPS at depth 1 with a 100 us limit
// against not spinning, and 1.31-1.65x over TCP with 300 us against 100 us: with 100 the
// window kept collapsing, because a depth-1 TCP client's next request often comes more than
// 100 us after the reply (docs/daemon.md).
#pragma once
#include <boost/asio/io_context.hpp>
#include <algorithm>
#include <chrono>

namespace nbdd::net {

// The daemon's --busy-poll default, and ServerConfig's, so tests that start a Server run the
// I/O threads as the daemon does.
inline constexpr std::chrono::microseconds busy_poll_default{300};

// The policy alone, without clocks or threads, so tests can drive it.
class PollWindow {
 public:
  using Nanoseconds = std::chrono::nanoseconds;
  // max == 0 disables spinning.
  explicit PollWindow(std::chrono::microseconds max) : max_(max) {}
  // How long to keep polling after the last work before blocking.
  Nanoseconds current() const { return current_; }
  // After a blocking wait (that began once the window ran out) which lasted `slept`.
  void after_block(Nanoseconds slept);

  // The first step when growing from zero (or max, if smaller).
  static constexpr Nanoseconds grow_start = std::chrono::microseconds(10);

 private:
  Nanoseconds first_step() const { return std::min(grow_start, max_); }

  Nanoseconds max_;
  Nanoseconds current_{0};
};

// Reads in progress on the calling I/O thread, each counted from ConnectionSession::do_read
// to its on_read. A bulk one waits, with a receive low-water mark, for the rest of a large
// write payload: the kernel wakes the thread once that much has arrived, and spinning
// between the pieces of a payload only burns CPU. So while every read of the thread is a
// bulk one, the thread blocks instead of spinning; a read of any other kind (a connection
// waiting for its next request) keeps the spin, so a client that stalls in the middle of a
// payload does not take it from the others. Each I/O thread runs one io_context, and a
// session's handlers run on its thread, so per-thread counts are exact.
void read_wait_begin(bool bulk);
void read_wait_end(bool bulk);
// Whether the calling thread's reads are all bulk ones (and there is at least one).
bool only_bulk_reads_waiting();

// Runs ioc until it stops or runs out of work, like ioc.run(), but polls for up to the
// adaptive window (at most max_spin) after each handler before blocking.
void run_with_busy_poll(boost::asio::io_context& ioc, std::chrono::microseconds max_spin);

}  // namespace nbdd::net
