#include "net/net_gate.hpp"

namespace nbdd::net {

bool NetGate::try_acquire(core::ConnectionId id) {
  const std::lock_guard lock(mutex_);
  return gate_.try_acquire(id);
}

void NetGate::release(core::ConnectionId id) {
  std::optional<core::ConnectionId> next;
  {
    const std::lock_guard lock(mutex_);
    next = gate_.release(id);
  }
  // Outside the gate's lock: the registry has its own (no lock-order cycle).
  if (next) registry_.post(*next, core::input::GateOpened{});
}

bool NetGate::cancel(core::ConnectionId id) {
  std::optional<core::ConnectionId> next;
  bool held = false;
  {
    const std::lock_guard lock(mutex_);
    held = gate_.holder() == id;  // a handover raced with the cancel: this is a release
    next = gate_.cancel(id);
  }
  if (next) registry_.post(*next, core::input::GateOpened{});
  return held;
}

}  // namespace nbdd::net
