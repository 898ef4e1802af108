// The nbdkit functions about "this connection" and the server: nbdkit_export_name,
// nbdkit_is_tls, nbdkit_peer_*, nbdkit_nanosleep, nbdkit_shutdown, nbdkit_disconnect.
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>

#include "plugins/nbdkit/abi_state.hpp"
#include "plugins/nbdkit/connection_events.hpp"
#include "plugins/nbdkit/connection_table.hpp"
#include "plugins/nbdkit/nbdkit_headers.hpp"

namespace nbdkit_abi = nbdd::plugin::nbdkit_abi;

namespace {

// The calling connection's peer, or an nbdkit_error and false.
bool calling_peer(nbdkit_abi::PeerInfo& peer) {
  const nbdd::core::ConnectionId id = nbdkit_abi::current_connection();
  if (id == 0) {
    nbdkit_error("no connection in this thread");
    return false;
  }
  if (!nbdkit_abi::peer_of(id, peer)) {
    nbdkit_error("socket not open");
    return false;
  }
  return true;
}

// nbdkit's get_peercred: -1 unless SO_PEERCRED worked; a pid below 1 (not a Unix socket)
// stays -1.
int64_t peer_credential(int which) {
  nbdkit_abi::PeerInfo peer;
  if (!calling_peer(peer)) return -1;
  if (peer.credentials_errno != 0) {
    errno = peer.credentials_errno;
    nbdkit_error("getsockopt: SO_PEERCRED: %m");
    return -1;
  }
  switch (which) {
    case 0: return peer.pid >= 1 ? static_cast<int64_t>(peer.pid) : -1;
    case 1: return static_cast<int64_t>(peer.uid);
    default: return static_cast<int64_t>(peer.gid);
  }
}

}  // namespace

extern "C" {

NBDKIT_DLL_PUBLIC const char* nbdkit_export_name(void) {
  if (nbdkit_abi::current_connection() == 0) {
    nbdkit_error("no connection in this thread");
    return nullptr;
  }
  return nbdkit_abi::current_export_name();  // nullptr before open (as nbdkit's)
}

// 1 once the calling connection's STARTTLS handshake succeeded (net/connection_session_tls.cpp).
NBDKIT_DLL_PUBLIC int nbdkit_is_tls(void) {
  const nbdd::core::ConnectionId id = nbdkit_abi::current_connection();
  if (id == 0) {
    nbdkit_error("no connection in this thread");
    return -1;
  }
  return nbdkit_abi::connection_is_tls(id) ? 1 : 0;
}

NBDKIT_DLL_PUBLIC int nbdkit_peer_name(struct sockaddr* addr, socklen_t* addrlen) {
  nbdkit_abi::PeerInfo peer;
  if (!calling_peer(peer)) return -1;
  if (peer.address_errno != 0) {
    errno = peer.address_errno;
    nbdkit_error("peername: %m");
    return -1;
  }
  // getpeername(2)'s contract: copy what fits, report the full length.
  const socklen_t n = *addrlen < peer.address_length ? *addrlen : peer.address_length;
  std::memcpy(addr, &peer.address, n);
  *addrlen = peer.address_length;
  return 0;
}

NBDKIT_DLL_PUBLIC int64_t nbdkit_peer_pid(void) { return peer_credential(0); }
NBDKIT_DLL_PUBLIC int64_t nbdkit_peer_uid(void) { return peer_credential(1); }
NBDKIT_DLL_PUBLIC int64_t nbdkit_peer_gid(void) { return peer_credential(2); }

// Sleeps, but ends early (-1, ESHUTDOWN) when the server shuts down or the calling
// connection goes away, so a slow plugin never holds up either.
NBDKIT_DLL_PUBLIC int nbdkit_nanosleep(unsigned sec, unsigned nsec) {
  if (sec >= INT_MAX - nsec / 1000000000) {
    nbdkit_error("sleep request is too long");
    errno = EINVAL;
    return -1;
  }
  const auto duration = std::chrono::seconds(sec) + std::chrono::nanoseconds(nsec);
  switch (nbdkit_abi::sleep_unless_ending(nbdkit_abi::current_connection(), duration)) {
    case nbdkit_abi::SleepEnd::elapsed: return 0;
    case nbdkit_abi::SleepEnd::server_shutdown:
      nbdkit_error("aborting sleep because of server shut down");
      break;
    case nbdkit_abi::SleepEnd::connection_ended:
      nbdkit_error("aborting sleep because of connection close or error");
      break;
  }
  errno = ESHUTDOWN;
  return -1;
}

// Host::shutdown(): the daemon's own graceful shutdown path. Sleepers wake at once.
NBDKIT_DLL_PUBLIC void nbdkit_shutdown(void) {
  const int saved = errno;
  nbdkit_abi::server_shutting_down();
  if (nbdd::plugin::Host* host = nbdkit_abi::active_host()) host->shutdown();
  errno = saved;
}

// Host::disconnect(force) for the calling connection; ignored (with a debug message) outside
// a connected callback, as the host documents. The connection's sleepers wake.
NBDKIT_DLL_PUBLIC void nbdkit_disconnect(int force) {
  const int saved = errno;
  if (nbdkit_abi::in_connected_callback()) nbdkit_abi::mark_connection_ending(nbdkit_abi::current_connection());
  if (nbdd::plugin::Host* host = nbdkit_abi::active_host()) host->disconnect(force != 0);
  errno = saved;
}

}  // extern "C"
