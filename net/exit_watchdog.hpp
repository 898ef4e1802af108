// The bound on a forced shutdown. Once shutdown is forced (a second signal, or the grace
// period ran out), every connection is closed at once and nbdd must exit within
// --exit-timeout whatever the plugin does. Calls that never return would keep the server
// waiting for their connections forever; after the timeout the watchdog logs each call still
// running (connection, call, how long) and ends the process with _exit(exit_status_stuck),
// without the plugin's unload (a call is still inside the plugin).
//
// It runs on a thread of its own, not on an io_context: the I/O threads may all be blocked
// in inline plugin calls (then the server strand does not even see the signals: the
// watchdog counts them itself, see start()).
//
// RunningCall marks what a thread is running, for that report: a few relaxed stores into a
// slot of the calling thread (no lock, no allocation), so it is cheap enough for every call.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/call_gate.hpp"
#include "core/plugin_call.hpp"

namespace nbdd::net {

// The process's exit status when the watchdog ended it (docs/daemon.md, "Shutdown").
inline constexpr int exit_status_stuck = 3;

// On the thread that runs a plugin call, for the call's duration. Nests (the outer call
// is shown again once the inner one ends).
class RunningCall {
 public:
  RunningCall(core::ConnectionId id, core::CallKind kind);
  // A call with no connection (the plugin's unload), or a job whose call is unknown here.
  // `what` must be a string literal (kept by pointer).
  explicit RunningCall(const char* what);
  ~RunningCall();
  RunningCall(const RunningCall&) = delete;
  RunningCall& operator=(const RunningCall&) = delete;

 private:
  struct Saved {
    std::uint64_t started_ns;
    core::ConnectionId id;
    const char* what;
  };
  Saved saved_;
};

// One line per call running now on any thread: "conn=3 pread for 2.104 s" (longest first).
std::vector<std::string> running_calls();

class ExitWatchdog {
 public:
  struct Config {
    std::chrono::milliseconds exit_timeout{2000};
    std::chrono::milliseconds grace_period{1000};
    // Called on the watchdog's thread when it counts a second signal that the server strand
    // has not handled 250 ms later (the strand may be blocked): what the forced shutdown
    // does that needs no I/O thread (stop scripts).
    std::function<void()> on_second_signal;
  };
  ExitWatchdog() = default;
  ~ExitWatchdog();  // cancel()
  ExitWatchdog(const ExitWatchdog&) = delete;
  ExitWatchdog& operator=(const ExitWatchdog&) = delete;

  // Starts the thread (call after daemonize()'s fork). From now on it also counts SIGINT and
  // SIGTERM itself, through a handler chained in front of Asio's signal_set handler (which
  // still runs): if the server's I/O threads are all blocked in plugin calls, the strand
  // never sees the signals, so the watchdog applies the server's rule on its own to those
  // the strand has not handled (signal_handled()): a first signal bounds the exit at
  // grace_period + exit_timeout, a second one at exit_timeout. One per process.
  // Without start(), arm() starts the thread (and counts no signals).
  void start(Config config);
  // Shutdown was forced: exit within `timeout` from now (or earlier, if already bounded).
  // When the bound runs out before cancel(): logs why and every running call, then
  // _exit(exit_status_stuck).
  void arm(std::chrono::milliseconds timeout);
  // The server strand handled one more SIGINT/SIGTERM: from then on the server's own rule
  // (ServerState, then arm()) bounds the exit for it, not the watchdog's count.
  void signal_handled();
  // The process is exiting normally: stop the countdown, join the thread. Final.
  void cancel();
  // When the exit is bounded (steady_clock), if it is; for tests.
  std::optional<std::chrono::steady_clock::time_point> deadline() const;

 private:
  void run();
  void wake(char why);
  [[noreturn]] void expire();
  mutable std::mutex mutex_;
  Config config_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  int signals_handled_ = 0;
  bool cancelled_ = false;
  int pipe_[2] = {-1, -1};  // signals, arm() and cancel() wake the thread through it
  std::thread thread_;
};

}  // namespace nbdd::net
