#include "plugins/memory/memory_plugin.hpp"

#include <cerrno>

#include "plugins/parse_size.hpp"

namespace nbdd::plugin::memory {

int MemoryPlugin::config(std::string_view key, std::string_view value) {
  if (const int err = config_size_only(host(), "memory", key, value, size_bytes_)) return err;
  size_set_ = true;
  return 0;
}

int MemoryPlugin::config_complete() {
  if (!size_set_) {
    host().error("the size parameter is required (e.g. memory 1G)");
    return EINVAL;
  }
  store_ = std::make_unique<SparseStore>(size_bytes_);
  return 0;
}

int MemoryPlugin::open(bool, std::string_view, std::unique_ptr<Handle>& out) {
  if (!store_) return EIO;  // open before config_complete: a driver bug, not a crash
  out = std::make_unique<Handle>();
  return 0;
}

int MemoryPlugin::get_size(Handle&, std::uint64_t& size) {
  size = size_bytes_;
  return 0;
}

// The core validates ranges; this guard keeps a driver bug from writing past the tables.
bool MemoryPlugin::in_range(std::uint64_t count, std::uint64_t offset) const {
  return offset <= size_bytes_ && count <= size_bytes_ - offset;
}

int MemoryPlugin::pread(Handle&, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t) {
  if (!in_range(buf.size(), offset)) return EINVAL;
  store_->read(buf, offset);
  return 0;
}

int MemoryPlugin::pread_lend(Handle&, std::uint64_t count, std::uint64_t offset, std::uint32_t, ReadLoan& loan) {
  if (!in_range(count, offset)) return EINVAL;
  return store_->lend(count, offset, loan) ? 0 : ENOTSUP;
}

int MemoryPlugin::pwrite(Handle&, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t) {
  if (!in_range(buf.size(), offset)) return EINVAL;
  return store_->write(buf, offset);
}

int MemoryPlugin::trim(Handle&, std::uint64_t count, std::uint64_t offset, std::uint32_t) {
  if (!in_range(count, offset)) return EINVAL;
  store_->zero(count, offset);
  return 0;
}

// Always fast (dropping pages is cheaper than writing them), so FAST_ZERO never fails.
int MemoryPlugin::zero(Handle&, std::uint64_t count, std::uint64_t offset, std::uint32_t) {
  if (!in_range(count, offset)) return EINVAL;
  store_->zero(count, offset);
  return 0;
}

int MemoryPlugin::extents(Handle&, std::uint64_t count, std::uint64_t offset, std::uint32_t, ExtentSink& sink) {
  if (!in_range(count, offset)) return EINVAL;
  store_->extents(count, offset, sink);
  return 0;
}

}  // namespace nbdd::plugin::memory
