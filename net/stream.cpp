#include "net/stream.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/write.hpp>

namespace nbdd::net {
namespace asio = boost::asio;

namespace {

bool is_tcp(GenericSocket& socket) {
  boost::system::error_code ec;
  const int family = socket.local_endpoint(ec).protocol().family();
  return !ec && (family == AF_INET || family == AF_INET6);
}

// asio::transfer_all() caps every write_some at 64 KiB (detail::default_max_transfer_size),
// so a 1 MiB READ reply took 16 sendmsg calls, each after an epoll wake-up. This condition
// hands the kernel everything still unsent; it takes what the send buffer allows.
struct TransferAllAtOnce {
  std::size_t operator()(const boost::system::error_code& ec, std::size_t) const {
    return ec ? 0 : std::size_t{1} << 30;
  }
};

class SocketStream final : public Stream {
 public:
  explicit SocketStream(GenericSocket socket) : socket_(std::move(socket)), tcp_(is_tcp(socket_)) {}
  void async_read_some(std::span<std::byte> into, IoHandler handler) override {
    socket_.async_read_some(asio::buffer(into.data(), into.size()), std::move(handler));
  }
  bool set_receive_low_water(std::size_t bytes) override {
    return tcp_ && set_tcp_receive_low_water(socket_.native_handle(), bytes, low_water_);
  }
  void async_write(const std::vector<asio::const_buffer>& buffers, IoHandler handler) override {
    asio::async_write(socket_, buffers, TransferAllAtOnce{}, std::move(handler));
  }
  void shutdown_and_close() override {
    boost::system::error_code ignored;
    socket_.shutdown(asio::socket_base::shutdown_both, ignored);
    socket_.close(ignored);
  }
  void close() override {
    boost::system::error_code ignored;
    socket_.cancel(ignored);
    socket_.close(ignored);
  }

 private:
  GenericSocket socket_;
  bool tcp_;
  std::size_t low_water_ = 1;  // the kernel's default
};

using Descriptor = asio::posix::basic_stream_descriptor<Strand>;

class PipeStream final : public Stream {
 public:
  explicit PipeStream(const Strand& strand) : in_(strand), out_(strand) {}
  // Takes ownership of both fds, also on failure (epoll refuses regular files and ttys).
  bool assign(int in_fd, int out_fd, boost::system::error_code& ec) {
    in_.assign(in_fd, ec);
    if (ec) {
      ::close(in_fd);
      ::close(out_fd);
      return false;
    }
    out_.assign(out_fd, ec);
    if (ec) ::close(out_fd);
    return !ec;
  }
  void async_read_some(std::span<std::byte> into, IoHandler handler) override {
    in_.async_read_some(asio::buffer(into.data(), into.size()), std::move(handler));
  }
  void async_write(const std::vector<asio::const_buffer>& buffers, IoHandler handler) override {
    asio::async_write(out_, buffers, TransferAllAtOnce{}, std::move(handler));
  }
  void shutdown_and_close() override { close(); }
  void close() override {
    boost::system::error_code ignored;
    in_.close(ignored);
    out_.close(ignored);
  }

 private:
  Descriptor in_;
  Descriptor out_;
};

}  // namespace

bool set_tcp_receive_low_water(int fd, std::size_t bytes, std::size_t& current) {
  if (bytes == current) return true;
  const int value = static_cast<int>(bytes);
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &value, sizeof value) != 0) return false;  // any byte, as before
  current = bytes;
  return true;
}

void set_no_delay(GenericSocket& socket) {
  boost::system::error_code ignored;
  // A large send buffer lets a 1 MiB READ reply leave in one or two writes instead of
  // many wake-ups (bench/README.md: context switches per 1 MiB read 15.7 -> 2.2). The
  // kernel caps it at net.core.wmem_max; failure is harmless.
  socket.set_option(asio::socket_base::send_buffer_size(4 * 1024 * 1024), ignored);
  if (!is_tcp(socket)) return;
  socket.set_option(asio::ip::tcp::no_delay(true), ignored);
}

std::unique_ptr<Stream> make_socket_stream(GenericSocket socket) {
  return std::make_unique<SocketStream>(std::move(socket));
}

std::unique_ptr<Stream> make_stdio_stream(const Strand& strand, std::string& error) {
  int type = 0;
  socklen_t len = sizeof type;
  const bool is_socket = getsockopt(0, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
  if (is_socket) {
    int domain = 0;
    len = sizeof domain;
    getsockopt(0, SOL_SOCKET, SO_DOMAIN, &domain, &len);
    const int fd = dup(0);
    if (fd < 0) { error = "-s: cannot dup stdin"; return nullptr; }
    GenericSocket socket(strand);
    boost::system::error_code ec;
    const int proto = (domain == AF_INET || domain == AF_INET6) ? IPPROTO_TCP : 0;
    socket.assign(asio::generic::stream_protocol(domain, proto), fd, ec);
    if (ec) { ::close(fd); error = "-s: " + ec.message(); return nullptr; }
    set_no_delay(socket);
    return make_socket_stream(std::move(socket));
  }
  const int in_fd = dup(0);
  const int out_fd = dup(1);
  if (in_fd < 0 || out_fd < 0) { error = "-s: cannot dup stdin/stdout"; return nullptr; }
  auto stream = std::make_unique<PipeStream>(strand);
  boost::system::error_code ec;
  if (!stream->assign(in_fd, out_fd, ec)) {
    error = "-s: stdin/stdout must be a socket or pipes: " + ec.message();
    return nullptr;
  }
  return stream;
}

}  // namespace nbdd::net
