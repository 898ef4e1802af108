// When connections run on io_uring (--io-uring=unix|on|off; issue 26).
//
// Why not always: on the bench VM io_uring halved the system calls per request on both
// transports, served Unix-socket clients as fast as epoll or faster, and served TCP clients
// 10-20% slower at up to 1.2x the CPU per GiB (bench/README.md, "Which transport serves
// which socket"). The loss is in the kernel's TCP send path under the ring (more of the
// loopback's receive work lands inside the ring's sendmsg), not in nbdd's code, so the
// default keeps TCP on epoll.
#pragma once

namespace nbdd::net {

enum class IoUringUse {
  off,        // every connection on Asio's epoll
  unix_only,  // the default: io_uring when every listener is a Unix socket, else epoll
  on,         // io_uring for every listener (TCP too)
};

// Whether the I/O shards run rings. all_unix: there is at least one listener and all are
// Unix sockets (false for -s, whose client is always on epoll). The kernel may still refuse.
constexpr bool io_uring_wanted(IoUringUse use, bool all_unix) {
  return use == IoUringUse::on || (use == IoUringUse::unix_only && all_unix);
}

}  // namespace nbdd::net
