#include "net/uring_loop.hpp"

#include <sys/eventfd.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <boost/asio/detail/epoll_reactor.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/assert.hpp"
#include "net/busy_poll.hpp"

namespace nbdd::net {
namespace asio = boost::asio;

// Asio 1.18 keeps its epoll descriptor private and offers no way to ask for it. An explicit
// instantiation may name a private member (access is not checked there), which is how this
// reads it without patching Boost. Only for the poll below: nothing is ever registered in it.
namespace {
int asio_epoll_fd(asio::detail::epoll_reactor& reactor);
template <int asio::detail::epoll_reactor::*Member>
struct EpollFdOf {
  friend int asio_epoll_fd(asio::detail::epoll_reactor& reactor) { return reactor.*Member; }
};
template struct EpollFdOf<&asio::detail::epoll_reactor::epoll_fd_>;

// Tags for the loop's own operations (user_data); a cancel's own completion has none.
char asio_watch_tag;
char wake_tag;

constexpr unsigned ring_entries = 512;
constexpr std::size_t reap_batch = 64;
// How long a spin checks for completions before yielding the CPU once (see run()). Measured
// on the 2-CPU VM: yielding at every check cost a sched_yield per request at depth 16;
// never yielding starved the client when the machine was busy (18k instead of 46k IOPS at
// depth 1).
constexpr auto spin_before_yield = std::chrono::microseconds(5);

std::mutex registry_mutex;
std::vector<std::pair<asio::execution_context*, UringLoop*>> registry;

void cpu_relax() { __builtin_ia32_pause(); }

// Multishot poll (5.13) and MSG_WAITALL on sends (5.18) are used; the probe below cannot
// see either, so the release is checked too.
bool kernel_at_least(int major, int minor) {
  ::utsname u{};
  if (::uname(&u) != 0) return false;
  int a = 0, b = 0;
  if (std::sscanf(u.release, "%d.%d", &a, &b) != 2) return false;
  return a > major || (a == major && b >= minor);
}
}  // namespace

std::unique_ptr<UringLoop> UringLoop::create(asio::io_context& ioc, std::string& why) {
  if (!kernel_at_least(5, 19)) {
    why = "kernel older than 5.19";
    return nullptr;
  }
  std::unique_ptr<UringLoop> loop(new UringLoop(ioc));
  ::io_uring_params params{};
  // A receive's bytes are taken (task work) when the thread next enters the kernel, and the
  // ring's IORING_SQ_TASKRUN flag says there is some: a spinning thread sees it in shared
  // memory. Without these flags the kernel interrupts the thread for it instead, which on
  // the bench VM gave 22-33k IOPS at depth 1 against 40-48k (alternating 3 s runs).
  params.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
  const int r = ::io_uring_queue_init_params(ring_entries, &loop->ring_, &params);
  if (r < 0) {
    why = std::string("io_uring_setup: ") + std::strerror(-r);
    return nullptr;
  }
  loop->ring_ready_ = true;
  // A seccomp filter or a kernel built without some operations: probe them.
  if ((params.features & IORING_FEAT_NODROP) == 0) {
    why = "io_uring without IORING_FEAT_NODROP (kernel too old)";
    return nullptr;
  }
  if (::io_uring_probe* probe = ::io_uring_get_probe_ring(&loop->ring_)) {
    const bool ok = ::io_uring_opcode_supported(probe, IORING_OP_RECV) &&
                    ::io_uring_opcode_supported(probe, IORING_OP_SENDMSG) &&
                    ::io_uring_opcode_supported(probe, IORING_OP_POLL_ADD) &&
                    ::io_uring_opcode_supported(probe, IORING_OP_READ) &&
                    ::io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL);
    ::io_uring_free_probe(probe);
    if (!ok) {
      why = "io_uring lacks recv, sendmsg, poll, read or cancel (kernel too old)";
      return nullptr;
    }
  } else {
    why = "io_uring: cannot probe the operations";
    return nullptr;
  }
  loop->wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (loop->wake_fd_ < 0) {
    why = std::string("eventfd: ") + std::strerror(errno);
    return nullptr;
  }
  loop->asio_fd_ = asio_epoll_fd(asio::use_service<asio::detail::epoll_reactor>(ioc));
  {
    const std::lock_guard lock(registry_mutex);
    registry.emplace_back(static_cast<asio::execution_context*>(&ioc), loop.get());
  }
  return loop;
}

UringLoop::UringLoop(asio::io_context& ioc) : ioc_(ioc) {}

UringLoop::~UringLoop() {
  {
    const std::lock_guard lock(registry_mutex);
    std::erase_if(registry, [this](const auto& entry) { return entry.second == this; });
  }
  // The kernel cancels what is still in the ring and waits for it: nothing writes into a
  // buffer after this.
  if (ring_ready_) ::io_uring_queue_exit(&ring_);
  ring_ready_ = false;
  // Operations still listed never complete now; their owners are told they were cancelled
  // (their handlers hold the sessions, which would otherwise never be freed).
  while (ops_ != nullptr) {
    UringOp& op = *ops_;
    remove(op);
    op.complete(op, -ECANCELED);
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

UringLoop* UringLoop::of(asio::execution_context& ioc) {
  const std::lock_guard lock(registry_mutex);
  for (const auto& [context, loop] : registry)
    if (context == &ioc) return loop;
  return nullptr;
}

void UringLoop::wake() {
  poked_.store(true);
  if (sleeping_.load()) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
  }
}

::io_uring_sqe* UringLoop::next_sqe() {
  ::io_uring_sqe* sqe = ::io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {  // the submission queue is full: hand it to the kernel now
    ::io_uring_submit(&ring_);
    sqe = ::io_uring_get_sqe(&ring_);
  }
  NBDD_ASSERT(sqe != nullptr);
  return sqe;
}

void UringLoop::add(UringOp& op) {
  NBDD_ASSERT(!op.in_ring);
  op.in_ring = true;
  op.prev = nullptr;
  op.next = ops_;
  if (ops_ != nullptr) ops_->prev = &op;
  ops_ = &op;
  ++in_ring_;
}

void UringLoop::remove(UringOp& op) {
  NBDD_ASSERT(op.in_ring);
  op.in_ring = false;
  if (op.prev != nullptr) op.prev->next = op.next;
  else ops_ = op.next;
  if (op.next != nullptr) op.next->prev = op.prev;
  op.prev = op.next = nullptr;
  --in_ring_;
}

void UringLoop::recv(UringOp& op, int fd, void* data, std::size_t size) {
  ::io_uring_sqe* sqe = next_sqe();
  ::io_uring_prep_recv(sqe, fd, data, size, 0);
  ::io_uring_sqe_set_data(sqe, &op);
  add(op);
}

void UringLoop::sendmsg(UringOp& op, int fd, const ::msghdr* message) {
  ::io_uring_sqe* sqe = next_sqe();
  // MSG_WAITALL: the kernel itself goes on after a short send (stream sockets, 5.18 and later),
  // so a large reply costs one completion; a reset peer is an error, not SIGPIPE.
  ::io_uring_prep_sendmsg(sqe, fd, message, MSG_NOSIGNAL | MSG_WAITALL);
  ::io_uring_sqe_set_data(sqe, &op);
  add(op);
}

void UringLoop::cancel(UringOp& op) {
  if (!op.in_ring) return;
  ::io_uring_sqe* sqe = next_sqe();
  ::io_uring_prep_cancel(sqe, &op, 0);
  ::io_uring_sqe_set_data(sqe, nullptr);
}

void UringLoop::forget(UringOp& op) {
  if (!op.in_ring) return;
  NBDD_ASSERT(!ring_ready_);
  remove(op);
}

void UringLoop::arm_asio_watch() {
  if (asio_watched_ || asio_watch_failed_) return;
  ::io_uring_sqe* sqe = next_sqe();
  ::io_uring_prep_poll_multishot(sqe, asio_fd_, POLLIN);
  ::io_uring_sqe_set_data(sqe, &asio_watch_tag);
  asio_watched_ = true;
}

void UringLoop::arm_wake_read() {
  if (wake_armed_) return;
  ::io_uring_sqe* sqe = next_sqe();
  ::io_uring_prep_read(sqe, wake_fd_, &wake_buffer_, sizeof wake_buffer_, 0);
  ::io_uring_sqe_set_data(sqe, &wake_tag);
  wake_armed_ = true;
}

bool UringLoop::reap() {
  struct Done {
    void* data;
    int result;
    unsigned flags;
  };
  Done batch[reap_batch];
  bool any = false;
  for (;;) {
    std::size_t n = 0;
    unsigned head = 0;
    ::io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      if (n == reap_batch) break;
      batch[n++] = {::io_uring_cqe_get_data(cqe), cqe->res, cqe->flags};
    }
    if (n == 0) return any;
    ::io_uring_cq_advance(&ring_, static_cast<unsigned>(n));
    // Completions run after the queue is advanced: they may submit, which may post more.
    for (std::size_t i = 0; i < n; ++i) {
      const Done& d = batch[i];
      if (d.data == nullptr) continue;  // a cancel's own result
      if (d.data == &asio_watch_tag) {
        asio_ready_ = true;
        if ((d.flags & IORING_CQE_F_MORE) == 0) asio_watched_ = false;
        // Refused (it should not be, past the checks in create()): Asio is then polled at
        // every turn and the loop never sleeps longer than a millisecond.
        if (d.result < 0 && d.result != -ECANCELED) asio_watch_failed_ = true;
        continue;
      }
      if (d.data == &wake_tag) {
        wake_armed_ = false;
        continue;
      }
      any = true;
      UringOp& op = *static_cast<UringOp*>(d.data);
      remove(op);
      op.complete(op, d.result);
    }
  }
}

bool UringLoop::nothing_arrived() const {
  return ::io_uring_cq_ready(&ring_) == 0 && !taskrun_pending() && !poked_.load(std::memory_order_relaxed);
}

bool UringLoop::taskrun_pending() const {
  return (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) != 0;
}

bool UringLoop::run_asio() {
  asio_ready_ = false;
  return ioc_.poll() != 0;
}

void UringLoop::run(std::chrono::microseconds max_spin) {
  using Clock = std::chrono::steady_clock;
  PollWindow window(max_spin);
  auto last_work = Clock::now();
  bool cancelled_all = false;
  for (;;) {
    bool worked = reap();
    if (poked_.exchange(false) || asio_watch_failed_) asio_ready_ = true;
    if (asio_ready_ && run_asio()) worked = true;
    if (ioc_.stopped()) {
      if (in_ring_ == 0) return;
      if (!cancelled_all) {  // the server is done: nothing may keep the thread
        for (UringOp* op = ops_; op != nullptr; op = op->next) cancel(*op);
        cancelled_all = true;
      }
    }
    // Every send made ready above and every receive asked for, in one system call, which
    // also takes the bytes of receives that became ready meanwhile (a receive whose bytes
    // are already there completes inside it). With nothing to submit, a system call is
    // made only when the kernel has bytes for us (IORING_SQ_TASKRUN).
    if (::io_uring_sq_ready(&ring_) > 0) ::io_uring_submit(&ring_);
    else if (taskrun_pending()) ::io_uring_get_events(&ring_);
    if (worked) {
      last_work = Clock::now();
      continue;
    }
    if (::io_uring_cq_ready(&ring_) > 0) continue;
    const bool bulk = only_bulk_reads_waiting();
    if (!bulk && Clock::now() - last_work < window.current()) {
      // Completions appear in shared memory: waiting for one makes no system call. But on
      // 2 CPUs the client may need this one, so after a few microseconds of nothing the
      // thread gives it up once (sched_yield) before looking again.
      const auto until = Clock::now() + spin_before_yield;
      while (nothing_arrived() && Clock::now() < until) cpu_relax();
      if (nothing_arrived()) std::this_thread::yield();
      continue;
    }
    arm_asio_watch();
    arm_wake_read();
    sleeping_.store(true);
    if (poked_.load()) {  // wake() may have seen sleeping_ false: do not sleep past its post
      sleeping_.store(false);
      continue;
    }
    const auto blocked_at = Clock::now();
    if (asio_watch_failed_) {
      ::__kernel_timespec at_most{0, 1'000'000};
      ::io_uring_cqe* ignored = nullptr;
      ::io_uring_submit_and_wait_timeout(&ring_, &ignored, 1, &at_most, nullptr);
    } else {
      ::io_uring_submit_and_wait(&ring_, 1);
    }
    sleeping_.store(false);
    last_work = Clock::now();
    if (!bulk) window.after_block(last_work - blocked_at);
  }
}

}  // namespace nbdd::net
