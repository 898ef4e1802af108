// A sparse byte array for the memory plugin: 64 KiB pages allocated on first write, freed
// by zero/trim, found through a three-level radix table (root sized from the disk size,
// 4096-entry node and leaf tables created on demand and kept until destruction). An empty
// disk costs 8 bytes of root table per TiB of size (1 PiB: 8 KiB); data costs 64 KiB pages
// plus 32 KiB of table per 256 MiB region touched.
//
// Concurrency: page tables are published with compare-and-swap and never freed while the
// store lives, so lookups take no lock. A page's contents and its slot are guarded by one of
// 1024 striped mutexes (stripe = hash of the page index), so requests to different pages
// rarely contend, and a page is never freed while someone copies it. No heap allocation
// on the read/write path except the first write to a page, and that allocation (with its
// page faults) happens outside any lock.
//
// Lending (zero-copy reads): lend() hands out pointers into the pages themselves. Each page
// counts its references (one for the table, one per outstanding loan), so a zero/trim that
// drops a lent page from the table frees it only when the last loan comes back.
#pragma once
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>

#include "plugins/plugin_api.hpp"

namespace nbdd::plugin::memory {

class SparseStore {
 public:
  static constexpr unsigned page_shift = 16;
  static constexpr std::uint64_t page_bytes = 1ull << page_shift;

  explicit SparseStore(std::uint64_t size_bytes);
  ~SparseStore();
  SparseStore(const SparseStore&) = delete;
  SparseStore& operator=(const SparseStore&) = delete;

  std::uint64_t size() const { return size_bytes_; }
  // Callers keep [offset, offset+len) inside size().
  void read(std::span<std::byte> out, std::uint64_t offset) const;
  // Fills `loan` with pieces covering [offset, offset+count): allocated pages are lent in
  // place (referenced until give_back), holes point at a shared block of zeroes. false
  // (loan untouched) when the range needs more than ReadLoan::pieces_max pieces.
  bool lend(std::uint64_t count, std::uint64_t offset, ReadLoan& loan) const;
  // Returns what lend() took. Any thread, lock-free unless it frees a dropped page.
  static void give_back(const ReadLoan& loan);
  int write(std::span<const std::byte> data, std::uint64_t offset);  // 0 or ENOMEM
  // Whole pages in the range are released, partial ones zeroed in place.
  void zero(std::uint64_t count, std::uint64_t offset);
  // Reports unallocated pages as hole|zero and allocated ones as data, contiguous from
  // offset; stops when the sink says so.
  void extents(std::uint64_t count, std::uint64_t offset, ExtentSink& sink) const;

  std::uint64_t allocated_pages() const { return allocated_pages_.load(std::memory_order_relaxed); }

 private:
  static constexpr unsigned table_shift = 12;  // 4096 entries per node/leaf
  static constexpr std::size_t table_entries = std::size_t{1} << table_shift;
  static constexpr unsigned stripe_bits = 10;
  static constexpr std::size_t stripe_count = std::size_t{1} << stripe_bits;

  struct Page {
    std::atomic<std::uint32_t> refs{1};  // the table's reference, plus one per loan
    alignas(64) std::byte data[page_bytes];
  };
  static void unref(Page* page);
  struct Leaf {  // 4096 pages = 256 MiB
    std::array<std::atomic<Page*>, table_entries> pages{};
  };
  struct Node {  // 4096 leaves = 1 TiB
    std::array<std::atomic<Leaf*>, table_entries> leaves{};
  };
  struct alignas(64) Stripe {  // one cache line each: no false sharing between stripes
    std::mutex mutex;
  };

  Leaf* find_leaf(std::uint64_t page_index) const;
  // fn(page) with the page's stripe locked, or fn(nullptr) when the page is not allocated.
  template <typename Fn>
  void with_page(std::uint64_t page_index, Fn&& fn) const;
  Leaf* get_leaf(std::uint64_t page_index);  // creates tables; nullptr on ENOMEM
  // Fibonacci hashing: pages a power of two apart (e.g. two clients writing regions 1 GiB
  // apart in step) land on different stripes, which plain `index % 1024` would not do.
  std::mutex& stripe(std::uint64_t page_index) const {
    return stripes_[(page_index * 0x9E3779B97F4A7C15ull) >> (64 - stripe_bits)].mutex;
  }
  int write_new_page(std::atomic<Page*>& slot, std::uint64_t index, std::size_t in_page, const std::byte* src,
                     std::size_t n);

  std::uint64_t size_bytes_;
  std::size_t root_count_;
  std::unique_ptr<std::atomic<Node*>[]> roots_;
  mutable std::unique_ptr<Stripe[]> stripes_;
  std::atomic<std::uint64_t> allocated_pages_{0};
};

}  // namespace nbdd::plugin::memory
