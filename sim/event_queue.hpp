// sim::EventQueue and sim::Clock: virtual time that jumps from event to event.
// Events are ordered by (at, seq); seq is a global counter, so ties are broken by insertion
// order, never by pointer or hash.
//
// Speed: an event is a trivially copyable callable (a lambda capturing pointers, ids and
// plain values) stored inline in a reusable slot — no std::function, no allocation per
// event once the pool has grown. The heap itself (4-ary) holds 16-byte (at, seq|slot) keys.
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
  // Plugin calls are parked and events hold an index; the largest capture is feed_later()'s
  // (world, id, Input). Small slots: an event is copied once when it runs.
  static constexpr std::size_t inline_bytes = 40;

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
    const Key k{(static_cast<unsigned __int128>(when.ns) << 64) | ((seq_++ << 24) | slot)};
    if (root_taken_) {  // the popped root's place: one sift instead of a removal and a push
      root_taken_ = false;
      sift_down(k);
    } else {
      push(k);
    }
  }
  bool empty() const { return size() == 0; }
  std::size_t size() const { return heap_.size() - (root_taken_ ? 1 : 0); }
  core::Instant next_at() {
    settle();
    return core::Instant{static_cast<std::uint64_t>(heap_.front() >> 64)};
  }
  // The popped event's key stays at the root until the next operation: an event usually
  // schedules another, which then takes the root's place (Fn runs after pop returns).
  Fn pop(core::Instant& when) {
    settle();
    const Key k = heap_.front();
    root_taken_ = true;
    when = core::Instant{static_cast<std::uint64_t>(k >> 64)};
    const auto slot = static_cast<std::uint32_t>(static_cast<std::uint64_t>(k) & slot_mask);
    free_.push_back(slot);
    return pool_[slot];
  }
  void clear() {
    heap_.clear();
    pool_.clear();
    free_.clear();
    seq_ = 0;
    root_taken_ = false;
  }

 private:
  static constexpr std::uint64_t slot_mask = (1u << 24) - 1;  // at most 16M events pending at once
  // (when << 64) | (seq << 24) | slot: ordering keys orders by (when, seq); seq is unique.
  using Key = unsigned __int128;
  // A 4-ary min-heap (half the levels of a binary one; the four children share a cache line).
  void push(Key k) {
    std::size_t i = heap_.size();
    heap_.push_back(k);
    while (i > 0) {
      const std::size_t parent = (i - 1) / 4;
      if (heap_[parent] <= k) break;
      heap_[i] = heap_[parent];
      i = parent;
    }
    heap_[i] = k;
  }
  void settle() {  // remove a popped root no push has replaced
    if (!root_taken_) return;
    root_taken_ = false;
    const Key last = heap_.back();
    heap_.pop_back();
    if (!heap_.empty()) sift_down(last);
  }
  void sift_down(Key k) {  // k replaces the root
    const std::size_t n = heap_.size();
    std::size_t i = 0;
    for (;;) {
      const std::size_t first = 4 * i + 1;
      if (first >= n) break;
      std::size_t best = first;
      const std::size_t end = first + 4 < n ? first + 4 : n;
      for (std::size_t c = first + 1; c < end; ++c)
        if (heap_[c] < heap_[best]) best = c;
      if (k <= heap_[best]) break;
      heap_[i] = heap_[best];
      i = best;
    }
    heap_[i] = k;
  }
  std::vector<Key> heap_;
  std::vector<Fn> pool_;
  std::vector<std::uint32_t> free_;
  std::uint64_t seq_ = 0;
  bool root_taken_ = false;  // heap_[0] was popped; the next push or settle() replaces it
};

}  // namespace nbdd::sim
