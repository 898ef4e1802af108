// The per-connection facts behind nbdkit_peer_*, nbdkit_nanosleep and the string interning
// helpers, filled by connection_events.hpp. Internal to plugins/nbdkit.
#pragma once
#include <sys/socket.h>
#include <sys/types.h>

#include <chrono>
#include <cstdlib>

#include "core/call_gate.hpp"

namespace nbdd::plugin::nbdkit_abi {

struct PeerInfo {
  sockaddr_storage address{};
  socklen_t address_length = 0;
  int address_errno = 0;  // getpeername's errno when it failed (address unknown)
  // SO_PEERCRED as read at accept; credentials_errno != 0 when it failed.
  int credentials_errno = 0;
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// false when net/ never told about this connection (no connection_started).
bool peer_of(core::ConnectionId id, PeerInfo& out);

// Whether the connection's TLS is up (connection_tls_started); false for unknown ids.
bool connection_is_tls(core::ConnectionId id);
// The is_tls argument nbdkit passes to .list_exports, .default_export and a filter's .open:
// 1 when the connection of the call running on this thread has TLS up.
int calling_is_tls();

enum class SleepEnd { elapsed, server_shutdown, connection_ended };
// Sleeps `duration`, ending early on server shutdown or, when id != 0, on the end of that
// connection (also if either happened before the call).
SleepEnd sleep_unless_ending(core::ConnectionId id, std::chrono::nanoseconds duration);

// Marks the connection of a connected callback as ending (nbdkit_disconnect).
void mark_connection_ending(core::ConnectionId id);

// Keeps a malloc'ed string until the connection finishes (id != 0) or until
// free_global_interns() (id == 0), and returns it. Frees it and returns nullptr when the
// bookkeeping cannot grow.
const char* keep_interned(core::ConnectionId id, char* owned);
// At unload: frees the strings interned outside connections, and those of connections the
// daemon never reported finished.
void free_all_interns();

}  // namespace nbdd::plugin::nbdkit_abi
