// Black-box helpers: start the real nbdd binary (NBDD_BINARY), or nbdkit for a side-by-side
// comparison, in the foreground on a temporary Unix socket or a free TCP port, wait until it
// accepts, and always clean up.
// Everything waits with generous timeouts: these tests run on a loaded 2-core machine and
// under ThreadSanitizer.
#pragma once
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/net/raw_client.hpp"

namespace nbdd::itest {
using nbdd::testing::free_tcp_port;  // the daemon retries on a clash via Daemon::start_tcp
using namespace std::chrono_literals;

inline const char* nbdd_binary() { return NBDD_BINARY; }
// nbdkit (1.32 on Debian 12, from scripts/install-deps.sh) for tests that compare; "" if
// it is not installed (those comparisons are then skipped).
inline std::string nbdkit_binary() {
  for (const char* path : {"/usr/bin/nbdkit", "/usr/sbin/nbdkit", "/usr/local/bin/nbdkit"})
    if (::access(path, X_OK) == 0) return path;
  return {};
}

struct TempDir {
  std::string path;
  TempDir() {
    char templ[] = "/tmp/nbdd-itest-XXXXXX";
    if (::mkdtemp(templ)) path = templ;
  }
  ~TempDir() {
    if (!path.empty()) std::system(("rm -rf '" + path + "'").c_str());
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// O_CLOEXEC: tests that start daemons from several threads (tests/nbdkit's daemon table)
// fork while another thread writes a script; a child that inherited the descriptor open for
// writing would make every exec of that script fail with ETXTBSY ("Text file busy").
inline void write_file(const std::string& path, const std::string& text, bool executable = false) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, executable ? 0755 : 0644);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  for (std::size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (executable) ::chmod(path.c_str(), 0755);
}

inline bool can_connect_unix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return ok;
}

inline bool can_connect_tcp(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return ok;
}

// Exit status of a waited child as the shell reports it.
inline int decode_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Spawns argv with stdout/stderr to files; stdin from `stdin_text` (or /dev/null).
inline pid_t spawn(const std::vector<std::string>& argv, const std::string& out_path, const std::string& err_path,
                   const std::string& extra_env = {}) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a killed test run leaves no daemon behind
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    if (!extra_env.empty()) ::putenv(const_cast<char*>(extra_env.c_str()));
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

// Waits for a child; nullopt on timeout (the child keeps running).
inline std::optional<int> wait_child(pid_t pid, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode_status(status);
    if (r < 0) return std::nullopt;
    if (std::chrono::steady_clock::now() >= end) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

class Daemon {
 public:
  // `args`: options and plugin, without -f and the listening options (added here).
  static std::unique_ptr<Daemon> start_unix(const TempDir& dir, std::vector<std::string> args) {
    return start_unix_as(nbdd_binary(), "nbdd", dir, std::move(args));
  }
  // nbdkit with the same arguments, on its own socket in `dir` (nbdkit.sock, nbdkit.stderr).
  // Null (and no failure) if nbdkit is not installed.
  static std::unique_ptr<Daemon> start_nbdkit_unix(const TempDir& dir, std::vector<std::string> args) {
    const std::string binary = nbdkit_binary();
    if (binary.empty()) return nullptr;
    return start_unix_as(binary, "nbdkit", dir, std::move(args));
  }
  static std::unique_ptr<Daemon> start_unix_as(const std::string& binary, const std::string& tag,
                                               const TempDir& dir, std::vector<std::string> args) {
    auto d = std::unique_ptr<Daemon>(new Daemon(dir, binary, tag));
    d->socket_ = dir.file(tag == "nbdd" ? "nbd.sock" : tag + ".sock");
    args.insert(args.begin(), {"-f", "-U", d->socket_});
    if (!d->launch(args, [&] { return can_connect_unix(d->socket_); })) return nullptr;
    return d;
  }
  static std::unique_ptr<Daemon> start_tcp(const TempDir& dir, std::vector<std::string> args) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto d = std::unique_ptr<Daemon>(new Daemon(dir, nbdd_binary(), "nbdd"));
      d->port_ = free_tcp_port();
      auto full = args;
      full.insert(full.begin(), {"-f", "-i", "127.0.0.1", "-p", std::to_string(d->port_)});
      if (d->launch(full, [&] { return can_connect_tcp(d->port_); })) return d;
    }
    return nullptr;
  }
  // Every daemon must end cleanly: SIGTERM, exit 0 in time, no sanitizer report.
  ~Daemon() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGTERM);
      const auto status = wait_exit(30s);
      if (!status) {
        ADD_FAILURE() << tag_ << " did not exit within 30 s of SIGTERM";
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
      } else if (*status != 0) {
        ADD_FAILURE() << tag_ << " exited with " << *status << " after SIGTERM: " << stderr_text();
      }
    }
    const std::string err = stderr_text();
    for (const char* bad : {"ThreadSanitizer", "AddressSanitizer", "runtime error:", "assertion failed",
                            "nbdd-checked: VIOLATION"})
      if (err.find(bad) != std::string::npos) ADD_FAILURE() << tag_ << " reported: " << err;
  }

  std::string uri(const std::string& export_name = "") const {
    if (!socket_.empty()) return "nbd+unix:///" + export_name + "?socket=" + socket_;
    return "nbd://127.0.0.1:" + std::to_string(port_) + "/" + export_name;
  }
  const std::string& socket() const { return socket_; }
  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }
  std::optional<int> wait_exit(std::chrono::milliseconds limit) {
    auto status = wait_child(pid_, limit);
    if (status) exited_ = true;
    return status;
  }
  std::string stderr_text() const { return read_file(err_path_); }
  // Waits until the daemon's log (stderr; -v for debug lines) contains `text`, at least
  // `times` times.
  bool wait_log(const std::string& text, std::chrono::milliseconds limit = 30s, int times = 1) const {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      const std::string log = stderr_text();
      int seen = 0;
      for (auto at = log.find(text); at != std::string::npos && seen < times; at = log.find(text, at + text.size()))
        ++seen;
      if (seen >= times) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

 private:
  Daemon(const TempDir& dir, std::string binary, std::string tag)
      : binary_(std::move(binary)),
        tag_(std::move(tag)),
        err_path_(dir.file(tag_ + ".stderr")),
        out_path_(dir.file(tag_ + ".stdout")) {}

  template <class Ready>
  bool launch(const std::vector<std::string>& args, Ready ready) {
    std::vector<std::string> argv{binary_};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = spawn(argv, out_path_, err_path_);
    const auto end = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < end) {
      if (ready()) return true;
      if (auto st = wait_child(pid_, 0ms)) {
        exited_ = true;
        ADD_FAILURE() << tag_ << " exited with " << *st << " before listening: " << stderr_text();
        return false;
      }
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << tag_ << " did not listen within 60 s";
    return false;
  }

  pid_t pid_ = -1;
  bool exited_ = false;
  std::string socket_;
  std::uint16_t port_ = 0;
  std::string binary_, tag_;
  std::string err_path_, out_path_;
};

// Runs a shell command line with a time limit; returns exit status and output (stdout+stderr).
struct CommandResult {
  int status = -1;
  std::string output;
};
inline CommandResult run_shell(const std::string& command, int timeout_s = 120) {
  const std::string line = "PATH=/usr/bin:/bin:$PATH timeout -k 5 " + std::to_string(timeout_s) + " sh -c '" +
                           [&] {
                             std::string quoted;
                             for (char c : command) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
                             return quoted;
                           }() +
                           "' 2>&1";
  CommandResult r;
  FILE* p = ::popen(line.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  r.status = decode_status(::pclose(p));
  return r;
}

}  // namespace nbdd::itest
