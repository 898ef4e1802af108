#include "net/daemonize.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace nbdd::net {
namespace {
using group_t = struct group;

bool parse_id(const std::string& text, std::uint64_t& out) {
  if (text.empty() || text[0] == '-') return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoull(text.c_str(), &end, 10);
  return errno == 0 && *end == '\0' && out < 0xffffffffu;
}
}  // namespace

std::string daemonize(boost::asio::io_context& ioc, int& ready_fd) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
  ioc.notify_fork(boost::asio::io_context::fork_prepare);
  const pid_t pid = ::fork();
  if (pid < 0) return std::string("fork: ") + std::strerror(errno);
  if (pid > 0) {  // the parent: wait for the child's "ready" (or its death: EOF)
    ::close(fds[1]);
    char byte = 0;
    ssize_t n;
    do n = ::read(fds[0], &byte, 1);
    while (n < 0 && errno == EINTR);
    ::_exit(n == 1 ? 0 : 1);
  }
  ::close(fds[0]);
  ready_fd = fds[1];
  ioc.notify_fork(boost::asio::io_context::fork_child);
  ::setsid();
  if (::chdir("/") != 0) return std::string("chdir: ") + std::strerror(errno);
  const int null_fd = ::open("/dev/null", O_RDWR);
  if (null_fd < 0) return std::string("/dev/null: ") + std::strerror(errno);
  ::dup2(null_fd, 0);
  ::dup2(null_fd, 1);
  ::dup2(null_fd, 2);
  if (null_fd > 2) ::close(null_fd);
  return {};
}

void daemon_ready(int& ready_fd) {
  if (ready_fd < 0) return;
  const char byte = 1;
  [[maybe_unused]] const auto n = ::write(ready_fd, &byte, 1);
  ::close(ready_fd);
  ready_fd = -1;
}

std::string check_pidfile_writable(const std::string& path) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return "pidfile " + tmp + ": " + std::strerror(errno);
  std::fclose(f);
  std::remove(tmp.c_str());
  return {};
}

std::string write_pidfile(const std::string& path) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return "pidfile " + tmp + ": " + std::strerror(errno);
  std::fprintf(f, "%d\n", static_cast<int>(::getpid()));
  if (std::fclose(f) != 0 || std::rename(tmp.c_str(), path.c_str()) != 0)
    return "pidfile " + path + ": " + std::strerror(errno);
  return {};
}

std::string exit_with_parent() {
  if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) return std::string("prctl: ") + std::strerror(errno);
  if (::getppid() == 1) ::raise(SIGTERM);  // the parent is already gone
  return {};
}

std::string change_user(const std::optional<std::string>& user, const std::optional<std::string>& group) {
  if (!user && !group) return {};
  // Names first, then numbers (nbdkit's rule), resolved before anything changes.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<gid_t> user_gid;
  if (user) {
    errno = 0;
    if (const passwd* pw = ::getpwnam(user->c_str())) {
      uid = pw->pw_uid;
      user_gid = pw->pw_gid;
    } else {
      std::uint64_t n = 0;
      if (!parse_id(*user, n)) return "-u: " + *user + " is not a valid user name or uid";
      uid = static_cast<uid_t>(n);
    }
  }
  if (group) {
    if (const group_t* gr = ::getgrnam(group->c_str())) {
      gid = gr->gr_gid;
    } else {
      std::uint64_t n = 0;
      if (!parse_id(*group, n)) return "-g: " + *group + " is not a valid group name or gid";
      gid = static_cast<gid_t>(n);
    }
  }
  // Without -g, a user's own primary group replaces root's (nbdkit keeps the old group; a
  // daemon that gives up root should not keep gid 0). Only root may change groups at all.
  if (!gid && user_gid && ::geteuid() == 0) gid = user_gid;
  if (gid) {
    if (::setgid(*gid) != 0) return "-g: setgid(" + std::to_string(*gid) + "): " + std::strerror(errno);
    if (::setgroups(1, &*gid) != 0) return "-g: setgroups: " + std::string(std::strerror(errno));
  }
  if (uid && ::setuid(*uid) != 0) return "-u: setuid(" + std::to_string(*uid) + "): " + std::strerror(errno);
  return {};
}

}  // namespace nbdd::net
