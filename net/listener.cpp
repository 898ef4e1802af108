#include "net/listener.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <cstdlib>

#include "net/log.hpp"

namespace nbdd::net {
namespace asio = boost::asio;
using generic_protocol = asio::generic::stream_protocol;

Listener::Listener(Acceptor acceptor, std::string unlink_path, std::string what)
    : acceptor_(std::move(acceptor)),
      retry_timer_(acceptor_.get_executor()),
      unlink_path_(std::move(unlink_path)),
      what_(std::move(what)) {}

Listener::~Listener() {
  if (!unlink_path_.empty()) ::unlink(unlink_path_.c_str());
}

void Listener::start(AcceptHandler handler, IoPicker pick) {
  handler_ = std::move(handler);
  pick_ = std::move(pick);
  do_accept();
}

void Listener::close() {
  if (closed_) return;
  closed_ = true;
  retry_timer_.cancel();
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

std::optional<std::uint16_t> Listener::tcp_port() const {
  boost::system::error_code ec;
  const auto ep = acceptor_.local_endpoint(ec);
  if (ec) return std::nullopt;
  const auto* sa = ep.data();
  if (sa->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port);
  if (sa->sa_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
  return std::nullopt;
}

bool Listener::is_unix() const {
  boost::system::error_code ec;
  const auto ep = acceptor_.local_endpoint(ec);
  return !ec && ep.data()->sa_family == AF_UNIX;
}

void Listener::do_accept() {
  if (closed_) return;
  acceptor_.async_accept(asio::make_strand(pick_()),
                         [this](const boost::system::error_code& ec, GenericSocket socket) {
                           on_accept(ec, std::move(socket));
                         });
}

void Listener::on_accept(const boost::system::error_code& ec, GenericSocket socket) {
  if (closed_ || ec == asio::error::operation_aborted) return;
  if (ec) {
    // EMFILE, ENFILE, ENOBUFS...: back off instead of spinning; the daemon keeps serving.
    log::error(what_ + ": accept failed: " + ec.message());
    retry_timer_.expires_after(std::chrono::milliseconds(100));
    retry_timer_.async_wait([this](const boost::system::error_code& wait_ec) {
      if (!wait_ec) do_accept();
    });
    return;
  }
  ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);  // not for plugin scripts or --run
  set_no_delay(socket);
  handler_(std::move(socket));
  do_accept();
}

namespace {

// Whether something accepts connections on the Unix socket at `path` (a blocking connect:
// on a local socket it answers at once, or fails with ECONNREFUSED when no one listens).
bool unix_socket_answers(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  const bool answers = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return answers;
}

std::string bind_listen(Acceptor& acceptor, const generic_protocol::endpoint& ep, bool v6_only) {
  boost::system::error_code ec;
  acceptor.open(ep.protocol(), ec);
  if (ec) return ec.message();
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (v6_only) acceptor.set_option(asio::ip::v6_only(true), ec);
  ::fcntl(acceptor.native_handle(), F_SETFD, FD_CLOEXEC);
  acceptor.bind(ep, ec);
  if (ec) return ec.message();
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return ec.message();
  return {};
}

}  // namespace

std::string listen_tcp(asio::io_context& ioc, const Strand& strand, const std::string& host,
                       const std::string& port, Listeners& out) {
  asio::ip::tcp::resolver resolver(ioc);
  boost::system::error_code ec;
  const auto results = resolver.resolve(host, port,
                                        asio::ip::resolver_base::passive |
                                            asio::ip::resolver_base::numeric_service |
                                            asio::ip::resolver_base::address_configured,
                                        ec);
  if (ec) return "cannot resolve '" + host + "' port " + port + ": " + ec.message();
  std::string last_error;
  std::size_t bound = 0;
  for (const auto& entry : results) {
    const auto tcp_ep = entry.endpoint();
    Acceptor acceptor(strand);
    const generic_protocol::endpoint ep(tcp_ep);
    const std::string what = "tcp " + tcp_ep.address().to_string() + " port " + port;
    if (auto err = bind_listen(acceptor, ep, tcp_ep.address().is_v6()); !err.empty()) {
      last_error = what + ": " + err;
      continue;
    }
    out.push_back(std::make_unique<Listener>(std::move(acceptor), std::string{}, what));
    ++bound;
  }
  if (bound == 0) return last_error.empty() ? "no address to listen on for port " + port : last_error;
  return {};
}

std::string listen_unix(const Strand& strand, const std::string& path,
                        Listeners& out) {
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    return "unix socket " + path + ": path too long (max " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) + ")";
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    // A server still answering there keeps its socket (nbdkit refuses too); only a stale
    // one, left by a server that is gone, is replaced.
    if (unix_socket_answers(path)) return "unix socket " + path + ": Address already in use (a server is listening there)";
    ::unlink(path.c_str());
  }
  Acceptor acceptor(strand);
  const generic_protocol::endpoint ep{asio::local::stream_protocol::endpoint(path)};
  if (auto err = bind_listen(acceptor, ep, false); !err.empty()) return "unix socket " + path + ": " + err;
  out.push_back(std::make_unique<Listener>(std::move(acceptor), path, "unix " + path));
  return {};
}

bool socket_activated() {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  return pid && fds && std::strtol(pid, nullptr, 10) == static_cast<long>(::getpid());
}

bool listen_systemd(const Strand& strand, Listeners& out, std::string& error) {
  if (!socket_activated()) return false;
  const char* fds = std::getenv("LISTEN_FDS");
  const long n = std::strtol(fds, nullptr, 10);
  ::unsetenv("LISTEN_PID");  // not for children (--run, sh plugin scripts)
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (n <= 0 || n > 64) {
    error = "LISTEN_FDS: bad value '" + std::string(fds) + "'";
    return true;
  }
  for (int fd = 3; fd < 3 + static_cast<int>(n); ++fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      error = "LISTEN_FDS: fd " + std::to_string(fd) + " is not a socket";
      return true;
    }
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    const int family = ss.ss_family;
    const int proto = (family == AF_INET || family == AF_INET6) ? IPPROTO_TCP : 0;
    Acceptor acceptor(strand);
    boost::system::error_code ec;
    acceptor.assign(generic_protocol(family, proto), fd, ec);
    if (ec) {
      error = "LISTEN_FDS: fd " + std::to_string(fd) + ": " + ec.message();
      return true;
    }
    out.push_back(std::make_unique<Listener>(std::move(acceptor), std::string{},
                                             "systemd fd " + std::to_string(fd)));
  }
  return true;
}

}  // namespace nbdd::net
