// A socket Stream whose reads and writes go through its I/O shard's io_uring (UringLoop).
#pragma once
#include <memory>

#include "net/stream.hpp"
#include "net/uring_loop.hpp"

namespace nbdd::net {

// Takes ownership of fd (a connected stream socket, released from its Asio socket). Use it
// only on the loop's thread (the session's strand on that shard).
std::unique_ptr<Stream> make_uring_stream(int fd, UringLoop& loop);

}  // namespace nbdd::net
