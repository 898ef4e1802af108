// Live sessions by connection id, for inputs that come from outside a session's strand:
// the plugin's disconnect(force) (worker threads), ServerState's EndConnection and the
// CallGate's handover (GateOpened). Unknown ids are ignored: the session already ended.
// The registry owns the sessions (strong references) from accept until action::Finished:
// a session waiting only for an input from outside (GateOpened, say) has no pending
// operation that would keep it alive otherwise.
#pragma once
#include <map>
#include <memory>
#include <mutex>

#include "core/call_gate.hpp"
#include "core/input.hpp"

namespace nbdd::net {

class ConnectionSession;

class SessionRegistry {
 public:
  void add(core::ConnectionId id, const std::shared_ptr<ConnectionSession>& session);
  void remove(core::ConnectionId id);
  // Posts `input` (no BytesReceived: nothing borrowed) to the session's strand.
  void post(core::ConnectionId id, const core::Input& input);
  std::size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::map<core::ConnectionId, std::shared_ptr<ConnectionSession>> sessions_;
};

}  // namespace nbdd::net
