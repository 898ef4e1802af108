#include "net/session_registry.hpp"

#include "net/connection_session.hpp"

namespace nbdd::net {

void SessionRegistry::add(core::ConnectionId id, const std::shared_ptr<ConnectionSession>& session) {
  const std::lock_guard lock(mutex_);
  sessions_[id] = session;
}

void SessionRegistry::remove(core::ConnectionId id) {
  std::shared_ptr<ConnectionSession> last;  // destroyed outside the lock
  const std::lock_guard lock(mutex_);
  if (auto it = sessions_.find(id); it != sessions_.end()) {
    last = std::move(it->second);
    sessions_.erase(it);
  }
}

void SessionRegistry::post(core::ConnectionId id, const core::Input& input) {
  std::shared_ptr<ConnectionSession> session;
  {
    const std::lock_guard lock(mutex_);
    const auto it = sessions_.find(id);
    if (it != sessions_.end()) session = it->second;
  }
  if (session) session->post_input(input);
}

std::size_t SessionRegistry::size() const {
  const std::lock_guard lock(mutex_);
  return sessions_.size();
}

}  // namespace nbdd::net
