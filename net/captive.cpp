#include "net/captive.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace nbdd::net {

std::string nbd_uri(const CaptiveEndpoint& ep) {
  if (ep.unix_path) return "nbd+unix:///" + ep.export_name + "?socket=" + *ep.unix_path;
  std::string host = ep.host.value_or("localhost");
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  std::string uri = "nbd://" + host;
  if (ep.port && *ep.port != 10809) uri += ":" + std::to_string(*ep.port);
  if (!ep.export_name.empty()) uri += "/" + ep.export_name;
  return uri;
}

pid_t spawn_captive(const std::string& command, const CaptiveEndpoint& ep, std::string& error) {
  const std::string uri = nbd_uri(ep);
  const std::string port = ep.port ? std::to_string(*ep.port) : std::string{};
  const std::string unix_path = ep.unix_path.value_or(std::string{});
  const pid_t pid = ::fork();
  if (pid < 0) {
    error = std::string("--run: fork: ") + std::strerror(errno);
    return -1;
  }
  if (pid == 0) {
    // Child: only async-signal-safe-ish work from here (single-threaded parent at this point).
    ::setenv("uri", uri.c_str(), 1);
    ::setenv("nbd", uri.c_str(), 1);
    ::setenv("exportname", ep.export_name.c_str(), 1);
    ::setenv("tls", "0", 1);
    ::setenv("port", port.c_str(), 1);
    ::setenv("unixsocket", unix_path.c_str(), 1);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

}  // namespace nbdd::net
