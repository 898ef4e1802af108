// sim::EventQueue and sim::Clock: virtual time that jumps from event to event.
// Events are ordered by (at, seq); seq is a global counter, so ties are broken by insertion
// order, never by pointer or hash.
//
// Speed: an event is a trivially copyable callable (a lambda capturing pointers, ids and
// plain values) stored inline in a reusable slot — no std::function, no allocation per
// event once the pool has grown. The heap itself holds 16-byte (at, seq|slot) keys.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>
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
  static constexpr std::size_t inline_bytes = 112;  // plugin calls are parked, events hold an index

  // A type-erased, trivially copyable callable of at most inline_bytes.
  class Fn {
   public:
    Fn() = default;
    template <typename F>
    explicit Fn(F&& f) {
      using D = std::decay_t<F>;
      static_assert(std::is_trivially_copyable_v<D> && std::is_trivially_destructible_v<D>,
                    "sim events capture only plain values and pointers");
      static_assert(sizeof(D) <= inline_bytes && alignof(D) <= alignof(std::max_align_t));
      ::new (static_cast<void*>(buf_)) D(std::forward<F>(f));
      call_ = [](void* p) { (*std::launder(static_cast<D*>(p)))(); };
    }
    void operator()() { call_(buf_); }
    explicit operator bool() const { return call_ != nullptr; }

   private:
    void (*call_)(void*) = nullptr;
    alignas(std::max_align_t) unsigned char buf_[inline_bytes];
  };

  template <typename F>
  void at(core::Instant when, F&& fn) {
    std::uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
      pool_[slot] = Fn(std::forward<F>(fn));
    } else {
      slot = static_cast<std::uint32_t>(pool_.size());
      pool_.emplace_back(std::forward<F>(fn));
    }
    heap_.push_back(Key{when.ns, (seq_++ << 24) | slot});
    std::push_heap(heap_.begin(), heap_.end(), Later{});
  }
  bool empty() const { return heap_.empty(); }
  std::size_t size() const { return heap_.size(); }
  core::Instant next_at() const { return core::Instant{heap_.front().when}; }
  Fn pop(core::Instant& when) {
    std::pop_heap(heap_.begin(), heap_.end(), Later{});
    const Key k = heap_.back();
    heap_.pop_back();
    when = core::Instant{k.when};
    const auto slot = static_cast<std::uint32_t>(k.seq_slot & slot_mask);
    free_.push_back(slot);
    return pool_[slot];
  }
  void clear() {
    heap_.clear();
    pool_.clear();
    free_.clear();
    seq_ = 0;
  }

 private:
  static constexpr std::uint64_t slot_mask = (1u << 24) - 1;  // at most 16M events pending at once
  struct Key {
    std::uint64_t when;
    std::uint64_t seq_slot;  // seq in the high 40 bits: (when, seq_slot) orders like (when, seq)
  };
  struct Later {
    bool operator()(const Key& a, const Key& b) const {
      if (a.when != b.when) return a.when > b.when;
      return a.seq_slot > b.seq_slot;
    }
  };
  std::vector<Key> heap_;  // a binary heap ordered by Later
  std::vector<Fn> pool_;
  std::vector<std::uint32_t> free_;
  std::uint64_t seq_ = 0;
};

}  // namespace nbdd::sim
