// sim::Fifo: a queue kept in one vector (push at the back, pop from a moving front), for the
// simulator's short queues (segments in flight, options awaiting their reply). Unlike
// std::deque it allocates nothing until the first push (a deque allocates its map and a
// node when constructed, per pipe and per decoder of every world), and once empty it starts
// over at the front, so a queue that drains keeps reusing the same storage.
#pragma once
#include <cstddef>
#include <utility>
#include <vector>

namespace nbdd::sim {

template <typename T>
class Fifo {
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
    if (++head_ == items_.size()) clear();
  }
  void clear() {
    items_.clear();
    head_ = 0;
  }

 private:
  std::vector<T> items_;
  std::size_t head_ = 0;  // items_[0, head_) are popped
};

}  // namespace nbdd::sim
