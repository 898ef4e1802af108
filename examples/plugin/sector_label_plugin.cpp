// An out-of-tree nbdd plugin: a read-only disk whose every 512-byte sector begins with a
// line of text naming it ("LABEL sector N\n", then zero bytes). Useful to see which
// sector a client read, and small enough to read in one sitting.
//
//   make                                        # or: cmake -B build && cmake --build build
//   nbdd -f -U /tmp/s.sock ./libnbdd-sector-label.so label=disk7 size=1M
//   nbdcopy 'nbd+unix:///?socket=/tmp/s.sock' - | head -c 16   # "disk7 sector 0\n"
//
// It needs only the installed headers: `pkg-config --cflags nbdd-plugin`. See nbdd-plugin(3).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "plugins/plugin_api.hpp"

namespace {

constexpr std::uint64_t sector_bytes = 512;

class SectorLabelPlugin final : public nbdd::plugin::Plugin {
 public:
  std::string_view name() const override { return "sector-label"; }
  std::string_view description() const override { return "read-only disk whose sectors say their number"; }
  std::string_view magic_config_key() const override { return "label"; }  // `... .so disk7`
  std::string config_help() const override {
    return "label=TEXT  first word of every sector (default \"sector-label\")\n"
           "size=BYTES  size of the disk, a multiple of 512 (default 1048576)";
  }
  // Sectors are computed, not stored: any number of threads may read at once, and no
  // read ever waits, so nbdd may run them on its I/O threads.
  nbdd::plugin::ThreadModel thread_model() const override { return nbdd::plugin::ThreadModel::parallel; }
  bool nonblocking() const override { return true; }

  int config(std::string_view key, std::string_view value) override {
    if (key == "label") {
      if (value.empty() || value.size() > 400) return fail(EINVAL, "label must be 1 to 400 bytes");
      label_ = value;
      return 0;
    }
    if (key == "size") {
      const std::string text(value);
      char* end = nullptr;
      errno = 0;
      size_ = std::strtoull(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno != 0 || size_ % sector_bytes != 0)
        return fail(EINVAL, "size must be a number of bytes, a multiple of 512");
      return 0;
    }
    return fail(EINVAL, "unknown parameter (label=TEXT, size=BYTES)");
  }

  int open(bool, std::string_view, std::unique_ptr<nbdd::plugin::Handle>& out) override {
    out = std::make_unique<nbdd::plugin::Handle>();  // no per-connection state
    return 0;
  }
  int get_size(nbdd::plugin::Handle&, std::uint64_t& size) override {
    size = size_;
    return 0;
  }
  // No has_pwrite(): nbdd serves the disk read-only and never calls pwrite.

  int pread(nbdd::plugin::Handle&, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t) override {
    while (!buf.empty()) {  // one sector (or the part of it the read covers) per round
      const std::uint64_t sector = offset / sector_bytes;
      const std::uint64_t skip = offset % sector_bytes;
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), sector_bytes - skip));
      char text[sector_bytes] = {};
      std::snprintf(text, sizeof text, "%s sector %llu\n", label_.c_str(), static_cast<unsigned long long>(sector));
      std::memcpy(buf.data(), text + skip, n);
      buf = buf.subspan(n);
      offset += n;
    }
    return 0;
  }

 private:
  int fail(int err, const char* message) {
    host().error(message);
    return err;
  }

  std::string label_ = "sector-label";
  std::uint64_t size_ = 1 << 20;
};

}  // namespace

NBDD_REGISTER_PLUGIN(SectorLabelPlugin)
