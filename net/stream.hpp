// The byte stream a ConnectionSession talks over: a socket (TCP, Unix, inherited) or, for
// -s on pipes, a pair of descriptors. Completion handlers run on the session's strand
// (every I/O object is created with it). Not thread-safe: use from that strand only.
#pragma once
#include <boost/asio/buffer.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/system/error_code.hpp>
#include <functional>
#include <memory>
#include <span>
#include <vector>

namespace nbdd::net {

using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;
using GenericSocket = boost::asio::basic_stream_socket<boost::asio::generic::stream_protocol, Strand>;
using IoHandler = std::function<void(const boost::system::error_code&, std::size_t)>;

class Stream {
 public:
  virtual ~Stream() = default;
  virtual void async_read_some(std::span<std::byte> into, IoHandler handler) = 0;
  // Asks the kernel not to report the stream readable until `bytes` are queued (1 restores
  // the default). Returns whether readiness honours it: TCP does (SO_RCVLOWAT); Unix
  // sockets and pipes report any byte, so they return false and read as before.
  virtual bool set_receive_low_water(std::size_t /*bytes*/) { return false; }
  // Writes every byte of every buffer (a gather write), then calls handler.
  virtual void async_write(const std::vector<boost::asio::const_buffer>& buffers, IoHandler handler) = 0;
  // Graceful end: shut down both directions, then close.
  virtual void shutdown_and_close() = 0;
  // Cancel pending operations and close at once.
  virtual void close() = 0;
};

std::unique_ptr<Stream> make_socket_stream(GenericSocket socket);
// -s: fd 0 / fd 1 (a socket on fd 0 is used as one bidirectional socket).
std::unique_ptr<Stream> make_stdio_stream(const Strand& strand, std::string& error);

// Stream::set_receive_low_water for a TCP socket's descriptor: SO_RCVLOWAT, skipped when
// `current` already is `bytes`; updates `current`. False if the kernel refused it.
bool set_tcp_receive_low_water(int fd, std::size_t bytes, std::size_t& current);

// TCP_NODELAY when the socket is TCP; ignored otherwise.
void set_no_delay(GenericSocket& socket);

}  // namespace nbdd::net
