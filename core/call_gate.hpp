// Cross-connection admission for the strict thread models (serialize_connections,
// serialize_all_requests). Each Connection sees only this interface; the logic of who
// holds the gate and who is next is ExclusiveGate below, shared by every driver.
//
// Protocol: a Connection calls try_acquire(id). true: it holds the gate now. false: it is
// queued, and the driver later feeds it input::GateOpened, meaning it now holds the gate
// (ownership is handed over, never raced for). It calls release(id) when done, or
// cancel(id) if it no longer wants the gate it is queued for. A cancel can race with a
// handover: the gate was already handed to `id` and its GateOpened is on its way. cancel()
// then returns true, the gate passes on at once, and the Connection ignores that one
// stale GateOpened when it arrives (delivering exactly one GateOpened per handover is
// the driver's part of the contract).
#pragma once
#include <cstdint>
#include <deque>
#include <optional>

namespace nbdd::core {

using ConnectionId = std::uint64_t;

class CallGate {
 public:
  virtual ~CallGate() = default;
  virtual bool try_acquire(ConnectionId id) = 0;
  virtual void release(ConnectionId id) = 0;
  // true: `id` already held the gate (see above); false: it was only queued.
  virtual bool cancel(ConnectionId id) = 0;
};

// Single-threaded FIFO mutex-by-handover. Drivers wrap it (a lock in net/, nothing in sim/)
// and deliver input::GateOpened to whichever id release() returns.
class ExclusiveGate {
 public:
  bool try_acquire(ConnectionId id);
  // Returns the waiter that now holds the gate, if any.
  std::optional<ConnectionId> release(ConnectionId id);
  // Withdraws a waiter; if `id` already holds the gate (a handover raced with the
  // cancel), this is a release and returns the next holder.
  std::optional<ConnectionId> cancel(ConnectionId id);
  std::optional<ConnectionId> holder() const { return holder_; }
  std::size_t waiting() const { return waiters_.size(); }

 private:
  std::optional<ConnectionId> holder_;
  std::deque<ConnectionId> waiters_;
};

}  // namespace nbdd::core
