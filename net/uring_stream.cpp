#include "net/uring_stream.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <boost/asio/error.hpp>
#include <cerrno>
#include <utility>
#include <vector>

#include "core/assert.hpp"

namespace nbdd::net {
namespace asio = boost::asio;

namespace {

boost::system::error_code error_of(int result) {
  if (result == -ECANCELED) return asio::error::operation_aborted;
  return {-result, boost::system::system_category()};
}

// A socket's reads and writes through its shard's ring. At most one read and one write are
// in the ring at a time (the Stream contract). Closing waits for both to leave the ring
// before the descriptor is closed, so no operation still queued can reach a descriptor
// number that a new connection has been given meanwhile.
class UringStream final : public Stream {
 public:
  UringStream(int fd, UringLoop& loop, bool tcp) : fd_(fd), loop_(loop), tcp_(tcp) {
    read_op_.owner = this;
    read_op_.complete = &UringStream::on_read;
    write_op_.owner = this;
    write_op_.complete = &UringStream::on_write;
    gather_.reserve(64);
  }
  ~UringStream() override {
    // Each handler holds its session, which owns this stream, so nothing of it is in a live
    // ring; only a loop being torn down completes one operation before the other.
    loop_.forget(read_op_);
    loop_.forget(write_op_);
    if (fd_ >= 0) ::close(fd_);
  }

  void async_read_some(std::span<std::byte> into, IoHandler handler) override {
    NBDD_ASSERT(!read_op_.in_ring);
    if (closing_) {
      aborted(std::move(handler));
      return;
    }
    read_handler_ = std::move(handler);
    loop_.recv(read_op_, fd_, into.data(), into.size());
  }

  bool set_receive_low_water(std::size_t bytes) override {
    return tcp_ && !closing_ && set_tcp_receive_low_water(fd_, bytes, low_water_);
  }

  void async_write(const std::vector<asio::const_buffer>& buffers, IoHandler handler) override {
    NBDD_ASSERT(!write_op_.in_ring);
    if (closing_) {
      aborted(std::move(handler));
      return;
    }
    gather_.clear();
    written_ = 0;
    for (const auto& b : buffers)
      if (b.size() != 0) gather_.push_back({const_cast<void*>(b.data()), b.size()});
    write_handler_ = std::move(handler);
    next_gather_ = 0;
    send_rest();
  }

  void shutdown_and_close() override {
    if (closing_) return;
    ::shutdown(fd_, SHUT_RDWR);
    close();
  }

  void close() override {
    if (closing_) return;
    closing_ = true;
    loop_.cancel(read_op_);
    loop_.cancel(write_op_);
    close_when_idle();
  }

 private:
  static void on_read(UringOp& op, int result) { static_cast<UringStream*>(op.owner)->read_done(result); }
  static void on_write(UringOp& op, int result) { static_cast<UringStream*>(op.owner)->write_done(result); }

  void read_done(int result) {
    IoHandler handler = std::move(read_handler_);
    read_handler_ = nullptr;
    close_when_idle();
    if (result > 0) handler({}, static_cast<std::size_t>(result));
    else if (result == 0) handler(asio::error::eof, 0);
    else handler(error_of(result), 0);
  }

  void write_done(int result) {
    if (result > 0 && !closing_) {
      written_ += static_cast<std::size_t>(result);
      if (advance(static_cast<std::size_t>(result))) {  // a short send: the rest, from where it stopped
        send_rest();
        return;
      }
    }
    IoHandler handler = std::move(write_handler_);
    write_handler_ = nullptr;
    close_when_idle();
    if (result >= 0 && !closing_) handler({}, written_);
    else handler(result < 0 ? error_of(result) : asio::error::operation_aborted, written_);
  }

  // Drops `sent` bytes from the front of the gather list; whether any are left.
  bool advance(std::size_t sent) {
    while (next_gather_ < gather_.size() && sent >= gather_[next_gather_].iov_len) {
      sent -= gather_[next_gather_].iov_len;
      ++next_gather_;
    }
    if (next_gather_ == gather_.size()) return false;
    auto& first = gather_[next_gather_];
    first.iov_base = static_cast<char*>(first.iov_base) + sent;
    first.iov_len -= sent;
    return true;
  }

  void send_rest() {
    message_ = {};
    message_.msg_iov = gather_.data() + next_gather_;
    // The kernel takes at most IOV_MAX pieces per call; the rest goes after the short send.
    message_.msg_iovlen = std::min<std::size_t>(gather_.size() - next_gather_, IOV_MAX);
    loop_.sendmsg(write_op_, fd_, &message_);
  }

  void aborted(IoHandler handler) { handler(asio::error::operation_aborted, 0); }

  void close_when_idle() {
    if (!closing_ || fd_ < 0 || read_op_.in_ring || write_op_.in_ring) return;
    ::close(fd_);
    fd_ = -1;
  }

  int fd_;
  UringLoop& loop_;
  bool tcp_;
  bool closing_ = false;
  std::size_t low_water_ = 1;
  UringOp read_op_;
  UringOp write_op_;
  IoHandler read_handler_;
  IoHandler write_handler_;
  std::vector<::iovec> gather_;
  std::size_t next_gather_ = 0;
  std::size_t written_ = 0;
  ::msghdr message_{};
};

}  // namespace

std::unique_ptr<Stream> make_uring_stream(int fd, UringLoop& loop) {
  ::sockaddr_storage address{};
  ::socklen_t length = sizeof address;
  const bool tcp = ::getsockname(fd, reinterpret_cast<::sockaddr*>(&address), &length) == 0 &&
                   (address.ss_family == AF_INET || address.ss_family == AF_INET6);
  // The ring waits for readiness itself; a descriptor left non-blocking by Asio would make
  // it report EAGAIN instead.
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0 && (flags & O_NONBLOCK) != 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return std::make_unique<UringStream>(fd, loop, tcp);
}

}  // namespace nbdd::net
