// nbdd-sim's operator new/delete (linked into the executable only, not into nbdd_sim, so the
// tests and the fuzzers keep the system allocator).
//
// Why: a sweep builds and tears down a world per seed — connections, decoders, slots, stages,
// checker tables — about 450 heap blocks per seed, and glibc's malloc spends most of that in
// its slow paths (the per-size caches hold 7 blocks; the rest goes through the bins and
// consolidation): malloc/free were about 13% of a sweep. Small blocks (up to 1 KiB) come
// here from per-size free lists carved out of 1 MiB chunks and go back to their list on
// delete: a few instructions each way. Medium blocks (up to 256 KiB: WRITE payloads the
// checker keeps, slot buffers, pipe and decoder buffers) come from one free list per power
// of two, also carved from chunks (glibc's bins and consolidation were still 4% of a sweep
// for them). Memory is never returned to the system; a sweep's peak is a few MiB. Larger
// blocks go to malloc.
//
// Determinism does not depend on it: nothing in a world orders or hashes by address (the
// trace hashes values; coverage marks are keyed by string literals, which do not move).
#include <bit>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace {

constexpr std::size_t align = 16;         // every block, as malloc (max_align_t)
constexpr std::size_t small_max = 1024;   // exact classes (multiples of 16) up to here
constexpr std::size_t classes = small_max / align;
constexpr std::size_t medium_max = 256 * 1024;  // powers of two up to here; larger: malloc
constexpr std::size_t medium_classes = 8;       // 2 KiB, 4 KiB, ..., 256 KiB
constexpr std::size_t chunk_bytes = 1 << 20;

struct FreeBlock {
  FreeBlock* next;
};

// Per thread (nbdd-sim has one; a block freed by another thread just joins that thread's
// list). Trivially destructible, so usable during static destruction too.
// Class c <= classes: c * 16 bytes; class classes + k (k >= 1): 1 KiB << k.
thread_local FreeBlock* free_lists[classes + medium_classes + 1];
thread_local char* chunk_pos = nullptr;
thread_local char* chunk_end = nullptr;

// Each block is preceded by a 16-byte header holding its size class (0: from malloc).
void* allocate(std::size_t n) {
  if (n > medium_max) {
    auto* p = static_cast<char*>(std::malloc(n + align));
    if (!p) throw std::bad_alloc();
    *reinterpret_cast<std::size_t*>(p) = 0;
    return p + align;
  }
  std::size_t c, bytes;
  if (n <= small_max) {
    c = n == 0 ? 1 : (n + align - 1) / align;
    bytes = c * align;
  } else {
    const auto k = static_cast<std::size_t>(std::bit_width(n - 1)) - 10;  // 1 KiB << k >= n
    c = classes + k;
    bytes = small_max << k;
  }
  if (FreeBlock* b = free_lists[c]) {
    free_lists[c] = b->next;
    return b;
  }
  const std::size_t total = align + bytes;
  if (static_cast<std::size_t>(chunk_end - chunk_pos) < total) {
    auto* chunk = static_cast<char*>(std::malloc(chunk_bytes));  // the tail of the old one is dropped
    if (!chunk) throw std::bad_alloc();
    chunk_pos = chunk;
    chunk_end = chunk + chunk_bytes;
  }
  char* p = chunk_pos;
  chunk_pos += total;
  *reinterpret_cast<std::size_t*>(p) = c;
  return p + align;
}

void deallocate(void* ptr) noexcept {
  if (!ptr) return;
  char* p = static_cast<char*>(ptr) - align;
  const std::size_t c = *reinterpret_cast<std::size_t*>(p);
  if (c == 0) {
    std::free(p);
    return;
  }
  auto* b = static_cast<FreeBlock*>(ptr);
  b->next = free_lists[c];
  free_lists[c] = b;
}

}  // namespace

// The over-aligned forms (std::align_val_t) are not replaced: the standard library's own
// pair (aligned_alloc / free) serves them, consistently.
void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { deallocate(p); }
void operator delete[](void* p) noexcept { deallocate(p); }
void operator delete(void* p, std::size_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::size_t) noexcept { deallocate(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { deallocate(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { deallocate(p); }
