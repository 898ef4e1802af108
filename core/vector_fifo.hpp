// A FIFO kept in one vector: push at the back, pop from a moving front. Unlike std::deque it
// allocates nothing until the first push (a deque allocates a map and a node as soon as it
// is constructed: per connection in core, per pipe and decoder of every simulated world).
//
// The popped front is given back in two ways: a queue that drains starts over at the
// front of the same storage, and a queue that never drains (a busy connection always has a
// Send unacknowledged) moves its live entries down once the popped ones are at least half
// of the vector. So the storage stays within about twice the most entries ever live at
// once, whatever the number pushed over the queue's life, at O(1) amortized per pop.
#pragma once
#include <cstddef>
#include <utility>
#include <vector>

namespace nbdd::core {

template <typename T>
class VectorFifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  void push_back(T item) { items_.push_back(std::move(item)); }
  template <typename... Args>
  T& emplace_back(Args&&... args) {
    return items_.emplace_back(std::forward<Args>(args)...);
  }
  void pop_front() {
    if (++head_ == items_.size()) return clear();
    if (head_ >= compact_after && head_ * 2 >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void clear() {
    items_.clear();
    head_ = 0;
  }
  // Entries held, popped ones included (tests: the storage stays bounded).
  std::size_t stored() const { return items_.size(); }

 private:
  // Below this many popped entries they are left in place: moving a few live entries down
  // often would cost more than the space.
  static constexpr std::size_t compact_after = 32;
  std::vector<T> items_;
  std::size_t head_ = 0;  // items_[0, head_) are popped
};

}  // namespace nbdd::core
