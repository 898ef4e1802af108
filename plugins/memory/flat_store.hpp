// The memory plugin's allocator=malloc[,mlock=true] (nbdkit-memory-plugin's): the whole disk
// as one array, reserved when the plugin is configured. No sparseness: extents report
// everything as data, and trim/zero write zeroes in place. With mlock the array is locked
// into RAM (mlock(2)) at start-up, so it is never swapped out; that fails at start-up (with
// the reason) when RLIMIT_MEMLOCK or the machine's memory does not allow it.
//
// The array is an anonymous mapping (the kernel hands out zeroed pages as they are first
// touched; mlock touches them all). Requests to the same 64 KiB region are serialised by one
// of 256 striped mutexes, so concurrent requests never copy the same bytes at once while
// requests to different regions run in parallel.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>

namespace nbdd::plugin::memory {

class FlatStore {
 public:
  // nullptr and a message in `error` when the array cannot be reserved (or locked).
  static std::unique_ptr<FlatStore> create(std::uint64_t size_bytes, bool lock_in_ram, std::string& error);
  ~FlatStore();
  FlatStore(const FlatStore&) = delete;
  FlatStore& operator=(const FlatStore&) = delete;

  std::uint64_t size() const { return size_bytes_; }
  bool locked() const { return locked_; }
  // Callers keep [offset, offset+len) inside size().
  void read(std::span<std::byte> out, std::uint64_t offset) const;
  void write(std::span<const std::byte> data, std::uint64_t offset);
  void zero(std::uint64_t count, std::uint64_t offset);

 private:
  FlatStore(std::byte* base, std::uint64_t size_bytes, bool locked);
  static constexpr unsigned region_shift = 16;
  static constexpr std::size_t stripe_count = 256;
  struct alignas(64) Stripe {
    std::mutex mutex;
  };
  // fn(offset, length) for each piece of [offset, offset+count) within one region, with that
  // region's stripe locked.
  template <typename Fn>
  void each_region(std::uint64_t count, std::uint64_t offset, Fn&& fn) const;

  std::byte* base_;
  std::uint64_t size_bytes_;
  bool locked_;
  mutable std::unique_ptr<Stripe[]> stripes_;
};

}  // namespace nbdd::plugin::memory
