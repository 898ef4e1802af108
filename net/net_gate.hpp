// core::CallGate for the daemon: core::ExclusiveGate behind a mutex. The connection that
// release() hands the gate to learns it through input::GateOpened on its own strand.
#pragma once
#include <mutex>

#include "core/call_gate.hpp"
#include "net/session_registry.hpp"

namespace nbdd::net {

class NetGate final : public core::CallGate {
 public:
  explicit NetGate(SessionRegistry& registry) : registry_(registry) {}
  bool try_acquire(core::ConnectionId id) override;
  void release(core::ConnectionId id) override;
  bool cancel(core::ConnectionId id) override;

 private:
  SessionRegistry& registry_;
  std::mutex mutex_;
  core::ExclusiveGate gate_;
};

}  // namespace nbdd::net
