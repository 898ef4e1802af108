#include "net/captive.hpp"

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace nbdd::net {

namespace {

// RFC 3986 percent-encoding of everything but unreserved characters and `keep`.
std::string uri_quote(const std::string& text, std::string_view keep) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || keep.find(ch) != std::string_view::npos) {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

std::string nbd_uri(const CaptiveEndpoint& ep) {
  const std::string scheme = ep.tls == 2 ? "nbds" : "nbd";
  if (ep.unix_path)
    return scheme + "+unix:///" + uri_quote(ep.export_name, "") + "?socket=" + uri_quote(*ep.unix_path, "/");
  std::string host = ep.host.value_or("localhost");
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  std::string uri = scheme + "://" + host;
  if (ep.port && *ep.port != 10809) uri += ":" + std::to_string(*ep.port);
  if (!ep.export_name.empty()) uri += "/" + uri_quote(ep.export_name, "");
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
    if (ep.tls > 0) ::setenv("tls", ep.tls == 2 ? "2" : "1", 1);
    else ::unsetenv("tls");
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
