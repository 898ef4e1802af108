// sim::EventQueue and sim::Clock: virtual time that jumps from event to event.
// Events are ordered by (at, seq); seq is a global counter, so ties are broken by insertion
// order, never by pointer or hash.
#pragma once
#include <cstdint>
#include <functional>
#include <algorithm>
#include <vector>

#include "core/time.hpp"

namespace nbdd::sim {

class Clock {
 public:
  core::Instant now() const { return now_; }
  void advance_to(core::Instant at) {
    if (at > now_) now_ = at;
  }

 private:
  core::Instant now_{};
};

class EventQueue {
 public:
  using Fn = std::function<void()>;
  void at(core::Instant when, Fn fn) {
    heap_.push_back(Item{when, seq_++, std::move(fn)});
    std::push_heap(heap_.begin(), heap_.end(), Later{});
  }
  bool empty() const { return heap_.empty(); }
  std::size_t size() const { return heap_.size(); }
  core::Instant next_at() const { return heap_.front().when; }
  Fn pop(core::Instant& when) {
    std::pop_heap(heap_.begin(), heap_.end(), Later{});
    Item item = std::move(heap_.back());
    heap_.pop_back();
    when = item.when;
    return std::move(item.fn);
  }

 private:
  struct Item {
    core::Instant when;
    std::uint64_t seq;
    Fn fn;
  };
  struct Later {
    bool operator()(const Item& a, const Item& b) const {
      if (a.when != b.when) return a.when > b.when;
      return a.seq > b.seq;
    }
  };
  std::vector<Item> heap_;  // a binary heap ordered by Later
  std::uint64_t seq_ = 0;
};

}  // namespace nbdd::sim
