#include "net/exit_watchdog.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <iterator>
#include <utility>

#include "net/log.hpp"

namespace nbdd::net {
namespace {

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

// What one thread runs. Written only by its thread, read by the watchdog: a sequence
// counter (odd while a write is under way) lets the reader skip a torn record.
struct ThreadSlot {
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::uint64_t> started_ns{0};  // 0: nothing running
  std::atomic<core::ConnectionId> id{0};
  std::atomic<const char*> what{nullptr};
};

// Every thread that ever ran a call, while it lives. The mutex is taken when a thread
// registers or ends, and by the watchdog's report; never by a call.
struct SlotList {
  std::mutex mutex;
  std::vector<ThreadSlot*> slots;
};
SlotList& slot_list() {
  static SlotList* list = new SlotList;  // never destroyed: threads may end after main()
  return *list;
}

struct ThreadRegistration {
  ThreadSlot slot;
  ThreadRegistration() {
    SlotList& list = slot_list();
    const std::lock_guard lock(list.mutex);
    list.slots.push_back(&slot);
  }
  ~ThreadRegistration() {
    SlotList& list = slot_list();
    const std::lock_guard lock(list.mutex);
    list.slots.erase(std::remove(list.slots.begin(), list.slots.end(), &slot), list.slots.end());
  }
};

ThreadSlot& this_thread_slot() {
  thread_local ThreadRegistration registration;
  return registration.slot;
}

void store(ThreadSlot& slot, std::uint64_t started_ns, core::ConnectionId id, const char* what) {
  const std::uint64_t seq = slot.seq.load(std::memory_order_relaxed);
  slot.seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  slot.started_ns.store(started_ns, std::memory_order_relaxed);
  slot.id.store(id, std::memory_order_relaxed);
  slot.what.store(what, std::memory_order_relaxed);
  slot.seq.store(seq + 2, std::memory_order_release);
}

}  // namespace

RunningCall::RunningCall(core::ConnectionId id, core::CallKind kind) {
  ThreadSlot& slot = this_thread_slot();
  saved_ = {slot.started_ns.load(std::memory_order_relaxed), slot.id.load(std::memory_order_relaxed),
            slot.what.load(std::memory_order_relaxed)};
  store(slot, now_ns(), id, core::to_string(kind));
}

RunningCall::RunningCall(const char* what) {
  ThreadSlot& slot = this_thread_slot();
  saved_ = {slot.started_ns.load(std::memory_order_relaxed), slot.id.load(std::memory_order_relaxed),
            slot.what.load(std::memory_order_relaxed)};
  store(slot, now_ns(), 0, what);
}

RunningCall::~RunningCall() { store(this_thread_slot(), saved_.started_ns, saved_.id, saved_.what); }

std::vector<std::string> running_calls() {
  struct Seen {
    std::uint64_t started_ns;
    core::ConnectionId id;
    const char* what;
  };
  std::vector<Seen> seen;
  {
    SlotList& list = slot_list();
    const std::lock_guard lock(list.mutex);
    for (ThreadSlot* slot : list.slots) {
      for (int attempt = 0; attempt < 100; ++attempt) {
        const std::uint64_t before = slot->seq.load(std::memory_order_acquire);
        const Seen s{slot->started_ns.load(std::memory_order_relaxed), slot->id.load(std::memory_order_relaxed),
                     slot->what.load(std::memory_order_relaxed)};
        std::atomic_thread_fence(std::memory_order_acquire);
        if (before % 2 == 1 || slot->seq.load(std::memory_order_relaxed) != before) continue;
        if (s.started_ns != 0) seen.push_back(s);
        break;
      }
    }
  }
  std::sort(seen.begin(), seen.end(), [](const Seen& a, const Seen& b) { return a.started_ns < b.started_ns; });
  const std::uint64_t now = now_ns();
  std::vector<std::string> lines;
  for (const Seen& s : seen) {
    char took[32];
    std::snprintf(took, sizeof took, "%.3f", static_cast<double>(now - s.started_ns) / 1e9);
    std::string line = s.id != 0 ? "conn=" + std::to_string(s.id) + " " : std::string();
    line += s.what ? s.what : "?";
    line += std::string(" for ") + took + " s";
    lines.push_back(std::move(line));
  }
  return lines;
}

namespace {

// The signals the watchdog counts, and the handler it chains in front of Asio's. One pipe
// for the process, never closed (a handler may be writing to it at any time).
constexpr int counted_signals[] = {SIGINT, SIGTERM};
std::atomic<void (*)(int)> next_handler[std::size(counted_signals)];
int signal_pipe[2] = {-1, -1};

void counting_handler(int signo) {
  const int saved_errno = errno;
  if (signal_pipe[1] >= 0) {
    const char one = 's';
    [[maybe_unused]] const ssize_t n = ::write(signal_pipe[1], &one, 1);  // full: enough counted
  }
  for (std::size_t i = 0; i < std::size(counted_signals); ++i)
    if (counted_signals[i] == signo)
      if (auto next = next_handler[i].load(std::memory_order_relaxed)) next(signo);
  errno = saved_errno;
}

// Puts counting_handler in front of the handler Asio's signal_set installed. Signals nobody
// handles (no signal_set: default action) are left alone.
void chain_signals() {
  static const bool pipe_ready = ::pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) == 0;
  if (!pipe_ready) return;
  for (std::size_t i = 0; i < std::size(counted_signals); ++i) {
    struct sigaction old {};
    if (::sigaction(counted_signals[i], nullptr, &old) != 0) continue;
    if ((old.sa_flags & SA_SIGINFO) || old.sa_handler == counting_handler || old.sa_handler == SIG_DFL ||
        old.sa_handler == SIG_IGN)
      continue;
    next_handler[i].store(old.sa_handler, std::memory_order_relaxed);
    struct sigaction chained = old;
    chained.sa_handler = counting_handler;
    ::sigaction(counted_signals[i], &chained, nullptr);
  }
}

using Clock = std::chrono::steady_clock;

int ms_until(Clock::time_point at) {
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(at - Clock::now()).count();
  return static_cast<int>(std::clamp<decltype(ms)>(ms, 0, 60'000));
}

}  // namespace

ExitWatchdog::~ExitWatchdog() { cancel(); }

void ExitWatchdog::start(Config config) {
  const std::lock_guard lock(mutex_);
  if (thread_.joinable() || cancelled_) return;
  config_ = std::move(config);
  chain_signals();
  // Signals that arrived while no watchdog ran (another one's, in tests) are not this one's.
  char scratch[64];
  while (signal_pipe[0] >= 0 && ::read(signal_pipe[0], scratch, sizeof scratch) > 0) {
  }
  if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) pipe_[0] = pipe_[1] = -1;
  thread_ = std::thread([this] { run(); });
}

void ExitWatchdog::arm(std::chrono::milliseconds timeout) {
  {
    const std::lock_guard lock(mutex_);
    if (cancelled_) return;
    const auto at = Clock::now() + timeout;
    if (!deadline_ || at < *deadline_) deadline_ = at;
    if (!thread_.joinable()) {
      if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) pipe_[0] = pipe_[1] = -1;
      thread_ = std::thread([this] { run(); });
    }
  }
  wake('a');
}

std::optional<Clock::time_point> ExitWatchdog::deadline() const {
  const std::lock_guard lock(mutex_);
  return deadline_;
}

void ExitWatchdog::wake(char why) {
  const std::lock_guard lock(mutex_);
  if (pipe_[1] >= 0) {
    [[maybe_unused]] const ssize_t n = ::write(pipe_[1], &why, 1);  // full: it is awake anyway
  }
}

void ExitWatchdog::cancel() {
  std::thread thread;
  {
    const std::lock_guard lock(mutex_);
    cancelled_ = true;
    thread = std::move(thread_);
  }
  wake('c');
  if (thread.joinable()) thread.join();
  const std::lock_guard lock(mutex_);
  for (int& fd : pipe_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

void ExitWatchdog::signal_handled() {
  {
    const std::lock_guard lock(mutex_);
    ++signals_handled_;
  }
  wake('h');
}

// How long the watchdog leaves the server strand to handle a second signal before it stops
// the scripts on its own (the strand may be blocked in an inline plugin call).
constexpr std::chrono::milliseconds second_signal_stop_delay{250};

// The bound is the earliest of arm()'s and, while the server strand has not handled every
// signal the watchdog counted, the one the server's rule gives for those signals: the first
// is graceful for at most the grace period, the second forces.
void ExitWatchdog::run() {
  int signals_seen = 0;
  std::optional<Clock::time_point> signal_bound;
  // The second signal's script stop, when the strand has not handled that signal by then.
  // Not at once: the strand normally handles it within microseconds, and its own forced
  // shutdown tells every connection ShutdownForced before it stops the scripts; a script
  // killed first would end its call with an error that could still be answered.
  std::optional<Clock::time_point> stop_scripts_at;
  for (;;) {
    int timeout_ms = -1;
    bool stop_scripts = false;
    {
      const std::lock_guard lock(mutex_);
      if (cancelled_) return;
      auto bound = deadline_;
      if (signal_bound && signals_handled_ < signals_seen && (!bound || *signal_bound < *bound)) bound = signal_bound;
      if (bound && Clock::now() >= *bound) break;
      if (stop_scripts_at && signals_handled_ >= 2) stop_scripts_at.reset();  // the strand did it
      if (stop_scripts_at && Clock::now() >= *stop_scripts_at) {
        stop_scripts_at.reset();
        stop_scripts = true;
      }
      if (stop_scripts_at && (!bound || *stop_scripts_at < *bound)) bound = stop_scripts_at;
      if (bound) timeout_ms = ms_until(*bound);
      if (pipe_[0] < 0 && (timeout_ms < 0 || timeout_ms > 100)) timeout_ms = 100;  // no wake-ups: look often
    }
    if (stop_scripts && config_.on_second_signal) {
      config_.on_second_signal();
      continue;
    }
    pollfd fds[2] = {{pipe_[0], POLLIN, 0}, {signal_pipe[0], POLLIN, 0}};
    ::poll(fds, 2, timeout_ms);
    char scratch[64];
    while (pipe_[0] >= 0 && ::read(pipe_[0], scratch, sizeof scratch) > 0) {
    }
    ssize_t n = 0;
    while (signal_pipe[0] >= 0 && (n = ::read(signal_pipe[0], scratch, sizeof scratch)) > 0) {
      for (ssize_t i = 0; i < n; ++i) {
        ++signals_seen;
        const auto now = Clock::now();
        if (signals_seen == 1) signal_bound = now + config_.grace_period + config_.exit_timeout;
        if (signals_seen == 2) {
          signal_bound = std::min(*signal_bound, now + config_.exit_timeout);
          stop_scripts_at = now + second_signal_stop_delay;
        }
      }
    }
  }
  expire();
}

void ExitWatchdog::expire() {
  const auto calls = running_calls();
  log::error("forced shutdown: nbdd did not exit within --exit-timeout (" +
             std::to_string(config_.exit_timeout.count()) + " ms) of the force; exiting with status " +
             std::to_string(exit_status_stuck) + " without unloading the plugin");
  for (const auto& line : calls) log::error("stuck plugin call: " + line);
  if (calls.empty()) log::error("no tracked plugin call is running: the exit itself is stuck");
  std::fflush(nullptr);
  ::_exit(exit_status_stuck);
}

}  // namespace nbdd::net
