// What the daemon tells the nbdkit ABI about its connections and its own shutdown, so that
// nbdkit_peer_name/pid/uid/gid answer for the calling connection and nbdkit_nanosleep wakes
// early, as nbdkit's do. net/ calls these; every function is cheap, thread-safe, and a no-op
// in effect when no nbdkit plugin is loaded (the table only holds a few bytes per live
// connection). Connection ids are nbdd's (core::ConnectionId, never 0, never reused).
#pragma once
#include <sys/socket.h>

#include "core/call_gate.hpp"

namespace nbdd::plugin::nbdkit_abi {

// Right after accept, before the connection's first plugin call (preconnect): records the
// peer's address (getpeername) and, for a Unix socket, its credentials (SO_PEERCRED). `fd`
// is only read during this call. fd < 0 (e.g. -s on a pipe): the peer stays unknown and
// nbdkit_peer_* fail with an error, as nbdkit's do on a non-socket.
void connection_started(core::ConnectionId id, int fd);
// The connection's TLS handshake (STARTTLS) succeeded: from now on nbdkit_is_tls() answers 1
// for it (issue 24). Forgotten with the connection (connection_finished).
void connection_tls_started(core::ConnectionId id);
// The connection is going away (the client closed or broke it, a forced or graceful
// disconnect was decided, the core closed it): its sleepers wake with ESHUTDOWN.
void connection_ending(core::ConnectionId id);
// After the connection's last plugin call: forgets it and frees the strings plugins interned
// on it (nbdkit_strdup_intern & co).
void connection_finished(core::ConnectionId id);
// The server starts shutting down, whatever the reason (signal, nbdkit_shutdown, -s client
// gone, --run command exited): every nbdkit_nanosleep wakes with ESHUTDOWN, now and later.
void server_shutting_down();

// -s: the NBD connection is on stdin/stdout, so nbdkit_stdio_safe() answers 0 (call before
// the plugin is configured). Declared here for net/; defined with the ABI state.
void set_stdio_in_use(bool in_use);

// For tests: forget every connection and the shutdown flag (a new server in the same process).
void reset_for_tests();

}  // namespace nbdd::plugin::nbdkit_abi
