#include "core/call_gate.hpp"

#include <algorithm>

#include "core/assert.hpp"

namespace nbdd::core {

bool ExclusiveGate::try_acquire(ConnectionId id) {
  NBDD_ASSERT(holder_ != id);
  NBDD_ASSERT(std::find(waiters_.begin(), waiters_.end(), id) == waiters_.end());
  if (!holder_) {
    holder_ = id;
    return true;
  }
  waiters_.push_back(id);
  return false;
}

std::optional<ConnectionId> ExclusiveGate::release(ConnectionId id) {
  NBDD_ASSERT(holder_ == id);
  holder_.reset();
  if (waiters_.empty()) return std::nullopt;
  holder_ = waiters_.front();  // handed over, never raced for: FIFO fairness
  waiters_.pop_front();
  return holder_;
}

std::optional<ConnectionId> ExclusiveGate::cancel(ConnectionId id) {
  if (holder_ == id) return release(id);
  auto it = std::find(waiters_.begin(), waiters_.end(), id);
  if (it != waiters_.end()) waiters_.erase(it);
  return std::nullopt;
}

}  // namespace nbdd::core
