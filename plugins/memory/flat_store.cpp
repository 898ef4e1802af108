#include "plugins/memory/flat_store.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace nbdd::plugin::memory {

std::unique_ptr<FlatStore> FlatStore::create(std::uint64_t size_bytes, bool lock_in_ram, std::string& error) {
  if (size_bytes == 0) return std::unique_ptr<FlatStore>(new FlatStore(nullptr, 0, lock_in_ram));
  if (size_bytes > static_cast<std::uint64_t>(PTRDIFF_MAX)) {
    error = "allocator=malloc: the disk does not fit in this process's address space";
    return nullptr;
  }
  void* p = ::mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    error = "allocator=malloc: cannot allocate " + std::to_string(size_bytes) + " bytes: " + std::strerror(errno);
    return nullptr;
  }
  if (lock_in_ram && ::mlock(p, size_bytes) != 0) {
    const int err = errno;
    ::munmap(p, size_bytes);
    error = "allocator=malloc,mlock=true: mlock of " + std::to_string(size_bytes) + " bytes: " + std::strerror(err) +
            (err == ENOMEM || err == EPERM ? " (see ulimit -l, RLIMIT_MEMLOCK)" : "");
    return nullptr;
  }
  return std::unique_ptr<FlatStore>(new FlatStore(static_cast<std::byte*>(p), size_bytes, lock_in_ram));
}

FlatStore::FlatStore(std::byte* base, std::uint64_t size_bytes, bool locked)
    : base_(base), size_bytes_(size_bytes), locked_(locked), stripes_(std::make_unique<Stripe[]>(stripe_count)) {}

FlatStore::~FlatStore() {
  if (base_ != nullptr) ::munmap(base_, size_bytes_);  // also unlocks
}

template <typename Fn>
void FlatStore::each_region(std::uint64_t count, std::uint64_t offset, Fn&& fn) const {
  const std::uint64_t end = offset + count;
  while (offset < end) {
    const std::uint64_t region = offset >> region_shift;
    const std::uint64_t piece = std::min(end, (region + 1) << region_shift) - offset;
    const std::lock_guard lock(stripes_[region % stripe_count].mutex);
    fn(offset, piece);
    offset += piece;
  }
}

void FlatStore::read(std::span<std::byte> out, std::uint64_t offset) const {
  const std::uint64_t start = offset;
  each_region(out.size(), offset, [&](std::uint64_t at, std::uint64_t n) {
    std::memcpy(out.data() + (at - start), base_ + at, n);
  });
}

void FlatStore::write(std::span<const std::byte> data, std::uint64_t offset) {
  const std::uint64_t start = offset;
  each_region(data.size(), offset, [&](std::uint64_t at, std::uint64_t n) {
    std::memcpy(base_ + at, data.data() + (at - start), n);
  });
}

void FlatStore::zero(std::uint64_t count, std::uint64_t offset) {
  each_region(count, offset, [&](std::uint64_t at, std::uint64_t n) { std::memset(base_ + at, 0, n); });
}

}  // namespace nbdd::plugin::memory
