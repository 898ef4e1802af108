#include "plugins/memory/sparse_store.hpp"

#include "plugins/memory/cold_copy.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <new>

namespace nbdd::plugin::memory {
namespace {

constexpr unsigned leaf_span_shift = SparseStore::page_shift + 12;  // bytes under one leaf
constexpr unsigned node_span_shift = leaf_span_shift + 12;          // bytes under one node

// Calls fn(page_index, offset_in_page, length) for each page piece of [offset, offset+count).
template <typename Fn>
void for_each_page_piece(std::uint64_t count, std::uint64_t offset, Fn&& fn) {
  while (count > 0) {
    const std::uint64_t in_page = offset & (SparseStore::page_bytes - 1);
    const std::uint64_t n = std::min(count, SparseStore::page_bytes - in_page);
    fn(offset >> SparseStore::page_shift, static_cast<std::size_t>(in_page), static_cast<std::size_t>(n));
    offset += n;
    count -= n;
  }
}

}  // namespace

SparseStore::SparseStore(std::uint64_t size_bytes)
    : size_bytes_(size_bytes),
      root_count_(static_cast<std::size_t>((size_bytes >> node_span_shift) + 1)),
      roots_(new std::atomic<Node*>[root_count_]()),
      stripes_(new Stripe[stripe_count]) {}

SparseStore::~SparseStore() {
  for (std::size_t r = 0; r < root_count_; ++r) {
    Node* node = roots_[r].load(std::memory_order_relaxed);
    if (!node) continue;
    for (auto& leaf_slot : node->leaves) {
      Leaf* leaf = leaf_slot.load(std::memory_order_relaxed);
      if (!leaf) continue;
      for (auto& slot : leaf->pages)
        if (Page* page = slot.load(std::memory_order_relaxed)) unref(page);  // loans are back by now
      delete leaf;
    }
    delete node;
  }
}

SparseStore::Leaf* SparseStore::find_leaf(std::uint64_t page_index) const {
  const std::uint64_t root = page_index >> (2 * table_shift);
  if (root >= root_count_) return nullptr;
  Node* node = roots_[root].load(std::memory_order_acquire);
  if (!node) return nullptr;
  return node->leaves[(page_index >> table_shift) & (table_entries - 1)].load(std::memory_order_acquire);
}

// Publishes a table with CAS; the loser of a race frees its copy and uses the winner's.
template <typename T>
static T* get_or_create(std::atomic<T*>& slot) {
  T* existing = slot.load(std::memory_order_acquire);
  if (existing) return existing;
  T* fresh = new (std::nothrow) T();
  if (!fresh) return nullptr;
  if (slot.compare_exchange_strong(existing, fresh, std::memory_order_acq_rel, std::memory_order_acquire))
    return fresh;
  delete fresh;
  return existing;
}

SparseStore::Leaf* SparseStore::get_leaf(std::uint64_t page_index) {
  const std::uint64_t root = page_index >> (2 * table_shift);
  if (root >= root_count_) return nullptr;
  Node* node = get_or_create(roots_[root]);
  if (!node) return nullptr;
  return get_or_create(node->leaves[(page_index >> table_shift) & (table_entries - 1)]);
}

template <typename Fn>
void SparseStore::with_page(std::uint64_t page_index, Fn&& fn) const {
  const Leaf* leaf = find_leaf(page_index);
  const auto* slot = leaf ? &leaf->pages[page_index & (table_entries - 1)] : nullptr;
  // Unwritten pages are seen without the lock: "not yet allocated" while a write races is
  // a valid result of a concurrent read and write, and nothing is dereferenced.
  if (!slot || !slot->load(std::memory_order_acquire)) return fn(static_cast<Page*>(nullptr));
  std::lock_guard lock(stripe(page_index));
  fn(slot->load(std::memory_order_relaxed));  // may have been freed since we looked
}

void SparseStore::read(std::span<std::byte> out, std::uint64_t offset) const {
  std::byte* dst = out.data();
  for_each_page_piece(out.size(), offset, [&](std::uint64_t index, std::size_t in_page, std::size_t n) {
    with_page(index, [&](const Page* page) {
      if (page) std::memcpy(dst, page->data + in_page, n);
      else std::memset(dst, 0, n);
    });
    dst += n;
  });
}

namespace {
// What lent holes point at. Never written, so every thread shares it.
const std::array<std::byte, SparseStore::page_bytes> zero_page{};
}  // namespace

bool SparseStore::lend(std::uint64_t count, std::uint64_t offset, ReadLoan& loan) const {
  if (count == 0) return true;
  const std::uint64_t pieces = ((offset + count - 1) >> page_shift) - (offset >> page_shift) + 1;
  if (pieces > ReadLoan::pieces_max - loan.pieces().size()) return false;
  for_each_page_piece(count, offset, [&](std::uint64_t index, std::size_t in_page, std::size_t n) {
    // The reference is taken under the stripe lock, so zero() cannot drop the page
    // between our load and our increment.
    with_page(index, [&](Page* page) {
      if (!page) {
        loan.add(zero_page.data(), n, nullptr);
        return;
      }
      page->refs.fetch_add(1, std::memory_order_relaxed);
      loan.add(page->data + in_page, n, page);
    });
  });
  return true;
}

void SparseStore::give_back(const ReadLoan& loan) {
  for (const ReadLoan::Piece& piece : loan.pieces())
    if (piece.token) unref(static_cast<Page*>(piece.token));
}

void SparseStore::unref(Page* page) {
  // acq_rel: every use of the page by other holders happens before the delete.
  if (page->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete page;
}

int SparseStore::write(std::span<const std::byte> data, std::uint64_t offset) {
  const std::byte* src = data.data();
  int result = 0;
  for_each_page_piece(data.size(), offset, [&](std::uint64_t index, std::size_t in_page, std::size_t n) {
    if (result != 0) return;
    Leaf* leaf = get_leaf(index);
    if (!leaf) {
      result = ENOMEM;
      return;
    }
    auto& slot = leaf->pages[index & (table_entries - 1)];
    for (bool done = false; !done;) {
      if (!slot.load(std::memory_order_acquire)) {
        result = write_new_page(slot, index, in_page, src, n);
        break;
      }
      std::lock_guard lock(stripe(index));
      if (Page* page = slot.load(std::memory_order_relaxed)) {
        copy_to_cold(page->data + in_page, src, n);
        done = true;
      }  // else: freed by a trim since we looked; go round and allocate outside the lock
    }
    src += n;
  });
  return result;
}

// Fills a private page outside the lock (malloc may take the kernel's mmap lock and the
// first touch page-faults: both slow, neither should stall other writers of the stripe),
// then publishes it. If another writer published one first, ours is dropped and the data
// goes into theirs, under the lock, so the later writer still wins.
// Called without the stripe lock held.
int SparseStore::write_new_page(std::atomic<Page*>& slot, std::uint64_t index, std::size_t in_page,
                                const std::byte* src, std::size_t n) {
  Page* fresh = new (std::nothrow) Page;
  if (!fresh) return ENOMEM;
  if (n != page_bytes) {
    std::memset(fresh->data, 0, in_page);
    std::memset(fresh->data + in_page + n, 0, page_bytes - in_page - n);
  }
  std::memcpy(fresh->data + in_page, src, n);
  {
    std::lock_guard lock(stripe(index));
    Page* existing = slot.load(std::memory_order_relaxed);
    if (!existing) {
      slot.store(fresh, std::memory_order_release);
      allocated_pages_.fetch_add(1, std::memory_order_relaxed);
      return 0;
    }
    std::memcpy(existing->data + in_page, src, n);
  }
  delete fresh;
  return 0;
}

void SparseStore::zero(std::uint64_t count, std::uint64_t offset) {
  for_each_page_piece(count, offset, [&](std::uint64_t index, std::size_t in_page, std::size_t n) {
    Leaf* leaf = find_leaf(index);
    if (!leaf) return;
    Page* released = nullptr;
    {
      std::lock_guard lock(stripe(index));
      auto& slot = leaf->pages[index & (table_entries - 1)];
      Page* page = slot.load(std::memory_order_relaxed);
      if (!page) return;
      if (n == page_bytes) {
        slot.store(nullptr, std::memory_order_release);
        released = page;
      } else {
        std::memset(page->data + in_page, 0, n);
      }
    }
    if (released) {  // freed outside the lock: other pages of the stripe need not wait
      unref(released);  // a lent page lives on until its last loan comes back
      allocated_pages_.fetch_sub(1, std::memory_order_relaxed);
    }
  });
}

void SparseStore::extents(std::uint64_t count, std::uint64_t offset, ExtentSink& sink) const {
  const std::uint64_t end = offset + count;
  std::uint64_t pos = offset;
  std::uint64_t run_start = offset;
  std::uint32_t run_type = 0;
  bool have_run = false;
  auto emit = [&](std::uint64_t until, std::uint32_t type) {
    until = std::min(until, end);
    if (have_run && type == run_type) {
      pos = until;
      return true;
    }
    if (have_run && !sink.add(run_start, pos - run_start, run_type)) return false;
    run_start = pos;
    run_type = type;
    have_run = true;
    pos = until;
    return true;
  };
  constexpr std::uint32_t hole = extent_hole | extent_zero;
  while (pos < end) {
    const std::uint64_t index = pos >> page_shift;
    const std::uint64_t root = pos >> node_span_shift;
    const Node* node = root < root_count_ ? roots_[root].load(std::memory_order_acquire) : nullptr;
    bool ok;
    if (!node) {
      ok = emit(((pos >> node_span_shift) + 1) << node_span_shift, hole);
    } else if (const Leaf* leaf = node->leaves[(index >> table_shift) & (table_entries - 1)].load(
                   std::memory_order_acquire);
               !leaf) {
      ok = emit(((pos >> leaf_span_shift) + 1) << leaf_span_shift, hole);
    } else {
      // An unlocked look at the slot is enough: the answer is stale the moment we return
      // anyway, and the atomic load keeps it race-free.
      const bool allocated = leaf->pages[index & (table_entries - 1)].load(std::memory_order_relaxed) != nullptr;
      ok = emit((index + 1) << page_shift, allocated ? 0 : hole);
    }
    if (!ok) return;
  }
  if (have_run) sink.add(run_start, pos - run_start, run_type);
}

}  // namespace nbdd::plugin::memory
