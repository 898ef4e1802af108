// Family "gate": the liveness side of the strict thread models (INV-GATE-HANDED-ON).
// INV-THREAD-MODEL bounds how many calls run at once; this rule makes sure the gate that
// enforces it moves on: a connection may keep it only while it has a reason to.
//
// The checker follows the gate as the driver granted it: try_acquire returning true, or
// a GateOpened fed (not a stale one: a handover that raced with a cancel), makes a
// connection the holder; release (or a cancel that found it holding) ends that.
#include "sim/invariants/checker_state.hpp"

namespace nbdd::sim {

void InvariantChecker::on_gate(core::ConnectionId id, core::Instant now, GateCall call, bool result) {
  if (!config_.enabled) return;
  ++tick_;
  gate_observed_ = true;
  Conn& c = conn(id);
  switch (call) {
    case GateCall::try_acquire:
      if (result) {
        gate_holder_ = id;
      } else if (!c.gate_waiting) {
        c.gate_waiting = true;
        ++gate_waiters_;
      }
      break;
    case GateCall::release:
      if (gate_holder_ == id) gate_holder_.reset();
      break;
    case GateCall::cancel:
      if (c.gate_waiting) {
        c.gate_waiting = false;
        --gate_waiters_;
      }
      if (result) ++c.gate_stale;  // handed over already: its GateOpened is on its way
      break;
  }
  (void)now;
}

void InvariantChecker::gate_opened(Conn& c) {
  if (!gate_observed_) return;
  if (c.gate_stale > 0) {
    --c.gate_stale;
    return;
  }
  if (c.gate_waiting) {
    c.gate_waiting = false;
    --gate_waiters_;
  }
  gate_holder_ = c.id;
}

// At the end of every step: a connection that holds the gate while another waits for it
// must be using it — a call of its own running, or (serialize_connections) its handle
// between open and the return of close. Otherwise the waiters stall until the holder
// happens to make another call (issue 22: the gate kept after a failed call).
void InvariantChecker::check_gate_handed_on(core::Instant now) {
  if (!gate_observed_ || !gate_holder_ || gate_waiters_ == 0) return;
  const Conn& h = conn(*gate_holder_);
  if (!h.running.empty()) return;
  const bool per_connection = config_.thread_model == core::ThreadModel::serialize_connections;
  if (per_connection && h.handle != Conn::Handle::none) return;
  fail("INV-GATE-HANDED-ON", h.id, now,
       std::string(core::to_string(config_.thread_model)) + ": connection " + std::to_string(h.id) +
           " keeps the gate with no call running" + (per_connection ? " and no handle" : "") + " while " +
           std::to_string(gate_waiters_) + " connection(s) wait for it");
  gate_holder_.reset();  // reported once
}

}  // namespace nbdd::sim
