// One mutex-protected table of live connections, and one condition variable that every
// nbdkit_nanosleep waits on. Both are touched per connection and per sleep, never per
// request, so a single lock is plenty.
#include "plugins/nbdkit/connection_table.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "plugins/nbdkit/abi_state.hpp"
#include "plugins/nbdkit/connection_events.hpp"

namespace nbdd::plugin::nbdkit_abi {
namespace {

struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};
using OwnedString = std::unique_ptr<char, FreeDeleter>;

struct ConnectionEntry {
  bool peer_known = false;
  PeerInfo peer;
  bool ending = false;
  bool tls = false;  // connection_tls_started
  std::vector<OwnedString> interns;
};

struct Table {
  std::mutex mutex;
  std::condition_variable wake;  // notified on shutdown and on any connection's end
  bool shutting_down = false;
  std::unordered_map<core::ConnectionId, ConnectionEntry> connections;
  std::vector<OwnedString> global_interns;
};

Table& table() {
  static Table* t = new Table;  // never destroyed: plugin threads may call in during exit
  return *t;
}

}  // namespace

void connection_started(core::ConnectionId id, int fd) {
  PeerInfo peer;
  if (fd >= 0) {
    peer.address_length = sizeof peer.address;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer.address), &peer.address_length) != 0) {
      peer.address_errno = errno;
      peer.address_length = 0;
    }
    ucred cred{};
    socklen_t n = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &n) != 0) {
      peer.credentials_errno = errno;
    } else {
      peer.pid = cred.pid;
      peer.uid = cred.uid;
      peer.gid = cred.gid;
    }
  } else {
    peer.address_errno = ENOTSOCK;
    peer.credentials_errno = ENOTSOCK;
  }
  Table& t = table();
  std::lock_guard lock(t.mutex);
  ConnectionEntry& entry = t.connections[id];
  entry.peer_known = true;
  entry.peer = peer;
}

void connection_ending(core::ConnectionId id) { mark_connection_ending(id); }

void connection_tls_started(core::ConnectionId id) {
  if (id == 0) return;
  Table& t = table();
  std::lock_guard lock(t.mutex);
  t.connections[id].tls = true;
}

bool connection_is_tls(core::ConnectionId id) {
  Table& t = table();
  std::lock_guard lock(t.mutex);
  auto it = t.connections.find(id);
  return it != t.connections.end() && it->second.tls;
}

int calling_is_tls() { return connection_is_tls(current_connection()) ? 1 : 0; }

void mark_connection_ending(core::ConnectionId id) {
  if (id == 0) return;
  Table& t = table();
  {
    std::lock_guard lock(t.mutex);
    t.connections[id].ending = true;
  }
  t.wake.notify_all();
}

void connection_finished(core::ConnectionId id) {
  Table& t = table();
  ConnectionEntry gone;
  {
    std::lock_guard lock(t.mutex);
    auto it = t.connections.find(id);
    if (it == t.connections.end()) return;
    gone = std::move(it->second);
    t.connections.erase(it);
  }
  // gone's interned strings are freed here, outside the lock.
}

void server_shutting_down() {
  Table& t = table();
  {
    std::lock_guard lock(t.mutex);
    t.shutting_down = true;
  }
  t.wake.notify_all();
}

void reset_for_tests() {
  Table& t = table();
  std::lock_guard lock(t.mutex);
  t.shutting_down = false;
  t.connections.clear();
  t.global_interns.clear();
}

bool peer_of(core::ConnectionId id, PeerInfo& out) {
  Table& t = table();
  std::lock_guard lock(t.mutex);
  auto it = t.connections.find(id);
  if (it == t.connections.end() || !it->second.peer_known) return false;
  out = it->second.peer;
  return true;
}

SleepEnd sleep_unless_ending(core::ConnectionId id, std::chrono::nanoseconds duration) {
  const auto deadline = std::chrono::steady_clock::now() + duration;
  Table& t = table();
  std::unique_lock lock(t.mutex);
  for (;;) {
    if (t.shutting_down) return SleepEnd::server_shutdown;
    if (id != 0) {
      auto it = t.connections.find(id);
      if (it != t.connections.end() && it->second.ending) return SleepEnd::connection_ended;
    }
    if (t.wake.wait_until(lock, deadline) == std::cv_status::timeout) {
      // One last look: an end that raced with the timeout still counts as elapsed.
      return SleepEnd::elapsed;
    }
  }
}

const char* keep_interned(core::ConnectionId id, char* owned) {
  OwnedString s(owned);
  Table& t = table();
  std::lock_guard lock(t.mutex);
  try {
    std::vector<OwnedString>& list = id == 0 ? t.global_interns : t.connections[id].interns;
    list.push_back(std::move(s));
  } catch (const std::bad_alloc&) {
    return nullptr;  // s still owns the string and frees it
  }
  return owned;
}

void free_all_interns() {
  Table& t = table();
  std::vector<OwnedString> globals;  // freed outside the lock
  {
    std::lock_guard lock(t.mutex);
    globals = std::move(t.global_interns);
    t.global_interns.clear();
    for (auto& [id, entry] : t.connections) entry.interns.clear();
  }
}

}  // namespace nbdd::plugin::nbdkit_abi
