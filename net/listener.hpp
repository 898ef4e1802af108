// Accepting sockets: TCP (IPv4 and IPv6), Unix, and descriptors inherited through systemd
// socket activation. Every acceptor runs on the server's strand; each accepted socket gets
// a fresh strand of its own (the session's), on the I/O shard the server picks.
#pragma once
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/stream.hpp"

namespace nbdd::net {

using Acceptor = boost::asio::basic_socket_acceptor<boost::asio::generic::stream_protocol, Strand>;
using AcceptHandler = std::function<void(GenericSocket)>;  // on the server's strand
// Which io_context the next accepted socket (and so its session) lives on.
using IoPicker = std::function<boost::asio::io_context&()>;

class Listener {
 public:
  Listener(Acceptor acceptor, std::string unlink_path, std::string what);
  ~Listener();  // removes the Unix socket file it created
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // On the server strand. Each accepted socket gets a fresh strand on pick()'s io_context.
  void start(AcceptHandler handler, IoPicker pick);
  void close();                       // on the server strand; idempotent
  const std::string& what() const { return what_; }
  std::optional<std::uint16_t> tcp_port() const;
  bool is_unix() const;  // a Unix-domain socket (else TCP)

 private:
  void do_accept();
  void on_accept(const boost::system::error_code& ec, GenericSocket socket);

  Acceptor acceptor_;
  boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                    boost::asio::wait_traits<std::chrono::steady_clock>, Strand>
      retry_timer_;
  std::string unlink_path_;
  std::string what_;
  AcceptHandler handler_;
  IoPicker pick_;
  bool closed_ = false;
};

using Listeners = std::vector<std::unique_ptr<Listener>>;

// Each returns an error message ("" on success) and appends to `out`.
// host empty: every local address (IPv4 and IPv6, v6-only sockets).
std::string listen_tcp(boost::asio::io_context& ioc, const Strand& strand, const std::string& host,
                       const std::string& port, Listeners& out);
std::string listen_unix(const Strand& strand, const std::string& path,
                        Listeners& out);
// systemd socket activation: LISTEN_PID == getpid() and LISTEN_FDS=N (fds 3..3+N-1).
// Returns true when activation was present (then `error` tells whether it worked).
bool listen_systemd(const Strand& strand, Listeners& out, std::string& error);
// Whether this process was started by socket activation (LISTEN_PID is ours, LISTEN_FDS set),
// without taking the sockets: nbdd then never forks, and refuses -s (as nbdkit).
bool socket_activated();

}  // namespace nbdd::net
