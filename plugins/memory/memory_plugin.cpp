#include "plugins/memory/memory_plugin.hpp"

#include <cerrno>

#include "plugins/parse_size.hpp"

namespace nbdd::plugin::memory {

// allocator=TYPE[,KEY=VALUE...] (nbdkit-memory-plugin's): sparse (the default: 64 KiB pages
// on first write) or malloc[,mlock=true] (one whole-disk array, optionally locked in RAM).
// zstd (compressed pages) is refused rather than served by something else under its name.
int MemoryPlugin::config_allocator(std::string_view value) {
  const std::string_view type = value.substr(0, value.find(','));
  std::string_view params = value.substr(type.size());
  bool lock = false;
  while (!params.empty()) {  // ",key=value" pieces
    params.remove_prefix(1);
    const std::string_view param = params.substr(0, params.find(','));
    params.remove_prefix(param.size());
    const auto eq = param.find('=');
    const std::string_view key = param.substr(0, eq);
    const std::string_view v = eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
    if (type == "malloc" && key == "mlock" && eq != std::string_view::npos) {
      if (v == "true" || v == "1" || v == "yes" || v == "on") lock = true;
      else if (v == "false" || v == "0" || v == "no" || v == "off") lock = false;
      else {
        host().error("allocator=" + std::string(value) + ": mlock must be true or false");
        return EINVAL;
      }
      continue;
    }
    host().error("allocator=" + std::string(value) + ": unknown allocator parameter '" + std::string(param) + "'");
    return EINVAL;
  }
  if (type == "sparse" || type == "malloc") {
    flat_ = type == "malloc";
    mlock_ = lock;
    return 0;
  }
  if (type == "zstd") {
    host().error("allocator=zstd is not supported by nbdd's memory plugin (no compressed pages); "
                 "use allocator=sparse (the default) or allocator=malloc");
    return ENOTSUP;
  }
  host().error("unknown allocator \"" + std::string(type) + "\" (sparse or malloc[,mlock=true])");
  return EINVAL;
}

int MemoryPlugin::config(std::string_view key, std::string_view value) {
  if (key == "allocator") return config_allocator(value);
  if (const int err = config_size_only(host(), "memory", key, value, size_bytes_)) return err;
  size_set_ = true;
  return 0;
}

int MemoryPlugin::config_complete() {
  if (!size_set_) {
    host().error("the size parameter is required (e.g. memory 1G)");
    return EINVAL;
  }
  if (flat_) {
    std::string error;
    flat_store_ = FlatStore::create(size_bytes_, mlock_, error);
    if (!flat_store_) {
      host().error(error);
      return ENOMEM;
    }
    return 0;
  }
  store_ = std::make_unique<SparseStore>(size_bytes_);
  return 0;
}

int MemoryPlugin::open(bool, std::string_view, std::unique_ptr<Handle>& out) {
  if (!store_ && !flat_store_) return EIO;  // open before config_complete: a driver bug, not a crash
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
  if (flat_store_) flat_store_->read(buf, offset);
  else store_->read(buf, offset);
  return 0;
}

int MemoryPlugin::pread_lend(Handle&, std::uint64_t count, std::uint64_t offset, std::uint32_t, ReadLoan& loan) {
  if (!in_range(count, offset)) return EINVAL;
  if (flat_store_) return ENOTSUP;  // not asked (has_pread_lend is false), but never wrong
  return store_->lend(count, offset, loan) ? 0 : ENOTSUP;
}

int MemoryPlugin::pwrite(Handle&, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t) {
  if (!in_range(buf.size(), offset)) return EINVAL;
  if (flat_store_) {
    flat_store_->write(buf, offset);
    return 0;
  }
  return store_->write(buf, offset);
}

int MemoryPlugin::trim(Handle&, std::uint64_t count, std::uint64_t offset, std::uint32_t) {
  if (!in_range(count, offset)) return EINVAL;
  if (flat_store_) flat_store_->zero(count, offset);  // as nbdkit's malloc allocator: zeroes
  else store_->zero(count, offset);
  return 0;
}

// Always fast (dropping pages is cheaper than writing them), so FAST_ZERO never fails.
int MemoryPlugin::zero(Handle&, std::uint64_t count, std::uint64_t offset, std::uint32_t) {
  if (!in_range(count, offset)) return EINVAL;
  if (flat_store_) flat_store_->zero(count, offset);
  else store_->zero(count, offset);
  return 0;
}

int MemoryPlugin::extents(Handle&, std::uint64_t count, std::uint64_t offset, std::uint32_t, ExtentSink& sink) {
  if (!in_range(count, offset)) return EINVAL;
  if (flat_store_) sink.add(offset, count, 0);  // no sparseness: all data, as nbdkit's malloc
  else store_->extents(count, offset, sink);
  return 0;
}

}  // namespace nbdd::plugin::memory
