#include "plugins/sh/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>

namespace nbdd::plugin::sh {
namespace {

constexpr std::size_t error_text_max = 64 * 1024;

using Clock = std::chrono::steady_clock;

// stop_all_scripts()'s state. The pipe's read end becomes readable when it is called and
// stays so (nobody reads it but resume_scripts()), so every run_process() blocked in
// poll() wakes, however many there are.
struct StopState {
  int fd[2] = {-1, -1};
  std::atomic<bool> stopping{false};
  std::atomic<Clock::rep> stopped_at{0};   // Clock ticks
  std::atomic<Clock::rep> kill_after{0};   // Clock ticks
  StopState() {
    if (::pipe2(fd, O_CLOEXEC | O_NONBLOCK) != 0) fd[0] = fd[1] = -1;  // then only new scripts see it
  }
};

StopState& stop_state() {
  static StopState state;  // no destructor: its descriptors stay valid until the process ends
  return state;
}

// One child's side of stop_all_scripts(): when to signal its group, and when to stop
// waiting for its output.
class ChildStopper {
 public:
  ChildStopper(pid_t pid, Clock::time_point started) : pid_(pid), started_(started) {}

  // The poll() timeout in ms until the next step (-1: not stopping), after sending
  // whatever signal is due.
  int step() {
    StopState& st = stop_state();
    if (!st.stopping.load(std::memory_order_acquire)) return -1;
    const Clock::duration kill_after{st.kill_after.load()};
    const Clock::time_point stopped_at{Clock::duration{st.stopped_at.load()}};
    // Running when the stop came: SIGTERM now; started later: once it ran for kill_after.
    const Clock::time_point term_at = started_ < stopped_at ? stopped_at : started_ + kill_after;
    const Clock::time_point kill_at = term_at + kill_after;
    const Clock::time_point give_up_at = kill_at + kill_after;
    const auto now = Clock::now();
    if (!term_sent_ && now >= term_at) {
      ::killpg(pid_, SIGTERM);
      term_sent_ = true;
    }
    if (!kill_sent_ && now >= kill_at) {
      ::killpg(pid_, SIGKILL);
      kill_sent_ = true;
    }
    if (now >= give_up_at) {
      gave_up_ = true;
      return 0;
    }
    const Clock::time_point next = !term_sent_ ? term_at : !kill_sent_ ? kill_at : give_up_at;
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
    return static_cast<int>(std::clamp<decltype(ms)>(ms, 0, 60'000));
  }
  // Output still open after SIGKILL and another kill_after: a grandchild that left the
  // process group holds it. Stop reading; the child itself is dead, waitpid() returns.
  bool gave_up() const { return gave_up_; }

 private:
  pid_t pid_;
  Clock::time_point started_;
  bool term_sent_ = false;
  bool kill_sent_ = false;
  bool gave_up_ = false;
};

struct Pipe {
  int fd[2] = {-1, -1};
  int open() { return ::pipe2(fd, O_CLOEXEC) == 0 ? 0 : errno; }
  void close_end(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
  ~Pipe() {
    close_end(0);
    close_end(1);
  }
};

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// write() that cannot kill the process with SIGPIPE: block it on this thread for the call
// and discard the one the kernel queued if the reader was gone. Process-wide SIG_IGN would
// work too, but a library must not change the daemon's signal dispositions.
ssize_t write_no_sigpipe(int fd, const void* data, std::size_t len) {
  sigset_t pipe_set, saved;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &saved);
  const ssize_t n = ::write(fd, data, len);
  const int err = errno;
  if (n < 0 && err == EPIPE) {
    const timespec zero{0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  errno = err;
  return n;
}

// Reads what is available; returns false at EOF or on error.
bool drain_stdout(int fd, OutputSink& out) {
  char scratch[16384];
  for (;;) {
    const std::size_t fixed_room = out.total < out.fixed.size() ? out.fixed.size() - out.total : 0;
    void* dst = fixed_room > 0 ? static_cast<void*>(out.fixed.data() + out.total) : scratch;
    const std::size_t len = fixed_room > 0 ? fixed_room : sizeof scratch;
    const ssize_t n = ::read(fd, dst, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EAGAIN;
    if (n == 0) return false;
    if (fixed_room == 0 && out.text.size() < out.text_max && out.fixed.empty())
      out.text.append(scratch, std::min<std::size_t>(static_cast<std::size_t>(n), out.text_max - out.text.size()));
    out.total += static_cast<std::size_t>(n);
  }
}

bool drain_stderr(int fd, std::string& text) {
  char scratch[4096];
  for (;;) {
    const ssize_t n = ::read(fd, scratch, sizeof scratch);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EAGAIN;
    if (n == 0) return false;
    if (text.size() < error_text_max)
      text.append(scratch, std::min<std::size_t>(static_cast<std::size_t>(n), error_text_max - text.size()));
  }
}

int spawn(const std::vector<std::string>& argv, char* const* envp, Pipe& in, Pipe& out, Pipe& err, pid_t& pid) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.fd[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err.fd[1], 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // Descriptors other code opened without O_CLOEXEC (client sockets, say) must not live
  // on in the script: a backgrounded child would keep a closed connection half-open.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif
  // The child starts with no blocked signals and default SIGPIPE, whatever the worker
  // thread that spawned it had (Asio threads block signals; daemons ignore SIGPIPE).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  // Its own process group (pgid = its pid): stop_all_scripts() signals the script and
  // whatever it started (a `sleep` in a pipeline) at once.
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  const int r = posix_spawn(&pid, args[0], &actions, &attr, args.data(), envp);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  return r;
}

}  // namespace

int run_process(const std::vector<std::string>& argv, char* const* envp, std::span<const std::byte> input,
                OutputSink& out, ProcessResult& result) {
  Pipe in, outp, errp;
  for (Pipe* p : {&in, &outp, &errp})
    if (int r = p->open(); r != 0) return r;
  pid_t pid = -1;
  const auto spawned_at = Clock::now();
  int r = spawn(argv, envp, in, outp, errp, pid);
  if (r == ENOEXEC) {
    // A script without a "#!" line: run it with /bin/sh, as execvp() and nbdkit do.
    std::vector<std::string> with_shell;
    with_shell.reserve(argv.size() + 1);
    with_shell.push_back("/bin/sh");
    with_shell.insert(with_shell.end(), argv.begin(), argv.end());
    r = spawn(with_shell, envp, in, outp, errp, pid);
  }
  if (r != 0) return r;
  in.close_end(0);
  outp.close_end(1);
  errp.close_end(1);
  for (int fd : {in.fd[1], outp.fd[0], errp.fd[0]}) set_nonblocking(fd);

  std::size_t written = 0;
  if (input.empty()) in.close_end(1);  // EOF at once for methods without data
  bool out_open = true, err_open = true;
  ChildStopper stopper(pid, spawned_at);
  while (out_open || err_open || in.fd[1] >= 0) {
    const int timeout_ms = stopper.step();
    if (stopper.gave_up()) break;
    pollfd fds[4] = {{outp.fd[0], POLLIN, 0}, {errp.fd[0], POLLIN, 0}, {in.fd[1], POLLOUT, 0},
                     {stop_state().fd[0], POLLIN, 0}};
    if (!out_open) fds[0].fd = -1;
    if (!err_open) fds[1].fd = -1;
    if (timeout_ms >= 0) fds[3].fd = -1;  // already stopping: the timeout drives the steps
    if (::poll(fds, 4, timeout_ms) < 0) {
      if (errno == EINTR) continue;
      break;  // cannot happen with valid fds; fall through to reaping
    }
    if (out_open && fds[0].revents) out_open = drain_stdout(outp.fd[0], out);
    if (err_open && fds[1].revents) err_open = drain_stderr(errp.fd[0], result.error_text);
    if (in.fd[1] >= 0 && fds[2].revents) {
      const ssize_t n = write_no_sigpipe(in.fd[1], input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<std::size_t>(n);
      // Done, or the child stopped reading (EPIPE): its exit status tells the story.
      if (written == input.size() || (n < 0 && errno != EAGAIN && errno != EINTR)) in.close_end(1);
    }
  }
  // Normally the child has exited (its output is closed). One that closed its output and
  // runs on is waited for through a pidfd, next to the stop pipe, so stop_all_scripts()
  // still reaches it (a blocking waitpid() where pidfds are missing).
  int status = 0;
  int pidfd = -1;
  for (;;) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      if (pidfd >= 0) ::close(pidfd);
      return errno;
    }
    if (pidfd < 0) pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) {
      while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return errno;
      break;
    }
    int timeout_ms = stopper.step();
    const bool stopping = timeout_ms >= 0;
    if (stopper.gave_up()) timeout_ms = -1;  // SIGKILL sent: the pidfd says when it is gone
    pollfd fds[2] = {{pidfd, POLLIN, 0}, {stopping ? -1 : stop_state().fd[0], POLLIN, 0}};
    ::poll(fds, 2, timeout_ms);
  }
  if (pidfd >= 0) ::close(pidfd);
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else {
    result.exit_code = -1;
    result.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }
  return 0;
}

void stop_all_scripts(std::chrono::milliseconds kill_after) {
  StopState& st = stop_state();
  if (st.stopping.load()) return;
  st.kill_after.store(std::chrono::duration_cast<Clock::duration>(kill_after).count());
  st.stopped_at.store(Clock::now().time_since_epoch().count());
  st.stopping.store(true, std::memory_order_release);
  if (st.fd[1] >= 0) {
    const char wake = 1;
    [[maybe_unused]] const ssize_t n = ::write(st.fd[1], &wake, 1);  // nothing to do if full
  }
}

bool scripts_stopping() { return stop_state().stopping.load(); }

void resume_scripts() {
  StopState& st = stop_state();
  st.stopping.store(false);
  char scratch[64];
  while (st.fd[0] >= 0 && ::read(st.fd[0], scratch, sizeof scratch) > 0) {
  }
}

}  // namespace nbdd::plugin::sh
