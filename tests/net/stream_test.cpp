// Stream's receive low-water mark: TCP honours it (SO_RCVLOWAT, which epoll respects), Unix
// sockets do not (they report any byte readable), so only TCP sessions wait for large
// pieces of a write payload (ConnectionSession::do_read).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "net/stream.hpp"

namespace nbdd::net {
namespace {
namespace asio = boost::asio;

int low_water_of(int fd) {
  int value = -1;
  socklen_t len = sizeof value;
  EXPECT_EQ(::getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &value, &len), 0);
  return value;
}

TEST(SocketStream, TcpTakesALowWaterMarkAndGoesBackToOne) {
  asio::io_context ioc;
  asio::ip::tcp::acceptor acceptor(ioc, {asio::ip::address_v4::loopback(), 0});
  asio::ip::tcp::socket client(ioc);
  client.connect(acceptor.local_endpoint());
  asio::ip::tcp::socket accepted = acceptor.accept();
  const int fd = accepted.native_handle();
  GenericSocket socket(asio::make_strand(ioc));
  socket.assign(asio::generic::stream_protocol(AF_INET, IPPROTO_TCP), accepted.release());
  auto stream = make_socket_stream(std::move(socket));
  EXPECT_TRUE(stream->set_receive_low_water(128 * 1024));
  EXPECT_EQ(low_water_of(fd), 128 * 1024);
  EXPECT_TRUE(stream->set_receive_low_water(1));
  EXPECT_EQ(low_water_of(fd), 1);
}

TEST(SocketStream, UnixSocketsDeclineALowWaterMark) {
  asio::io_context ioc;
  asio::local::stream_protocol::socket a(ioc), b(ioc);
  asio::local::connect_pair(a, b);
  const int fd = a.native_handle();
  GenericSocket socket(asio::make_strand(ioc));
  socket.assign(asio::generic::stream_protocol(AF_UNIX, 0), a.release());
  auto stream = make_socket_stream(std::move(socket));
  EXPECT_FALSE(stream->set_receive_low_water(128 * 1024));
  EXPECT_EQ(low_water_of(fd), 1);  // untouched
}

}  // namespace
}  // namespace nbdd::net
