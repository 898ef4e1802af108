// sim::DriverTap: an observation hook on the simulator's driver (World's ServerConn) at the
// core::Connection boundary, for tests of the driver contract (core/connection.hpp):
// tests/sim/driver_contract_test.cpp. World calls it only when one is set
// (World::set_driver_tap); it sees what the driver feeds and drains, and may query the
// Connection's const state (deadline(), wants_read(), status()) but must not change it.
#pragma once
#include "core/action.hpp"
#include "core/connection.hpp"
#include "core/input.hpp"
#include "core/time.hpp"

namespace nbdd::sim {

class DriverTap {
 public:
  virtual ~DriverTap() = default;
  // Just before conn.handle(now, in).
  virtual void before_input(core::ConnectionId id, core::Instant now, const core::Connection& conn,
                            const core::Input& in) = 0;
  // Each action next_action() returned, before the driver executes it.
  virtual void action(core::ConnectionId id, core::Instant now, const core::Action& act) = 0;
  // next_action() returned nullopt: the step is drained to empty.
  virtual void drained(core::ConnectionId id, core::Instant now, const core::Connection& conn) = 0;
};

}  // namespace nbdd::sim
