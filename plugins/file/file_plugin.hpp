// `file file=PATH`: serves a regular file or a block device, whatever export name the
// client asks for. `file dir=DIR`: one export per regular file or block device directly in
// DIR (symbolic links followed), named by its file name, listed afresh for each
// NBD_OPT_LIST; names with '/', ".", ".." and "" are refused, so no name reaches outside
// DIR. Exactly one of the two (nbdkit-file-plugin's arguments and rules).
// Each connection opens its own descriptor, so the size is the file's at that open;
// positional I/O lets every connection's requests run in parallel. Read-only when the file
// cannot be opened for writing. Trim/zero use fallocate where the filesystem supports it and remember (per
// connection) when it does not, so unsupported calls are not retried on every request.
// cache=none and fadvise= as nbdkit's: pages read are dropped from the page cache, writes are
// written back and dropped 8 writes later; fadvise's hint is given on each open.
#pragma once
#include <fcntl.h>

#include <atomic>
#include <string>

#include "plugins/plugin_api.hpp"

namespace nbdd::plugin::file {

class FilePlugin final : public Plugin {
 public:
  std::string_view name() const override { return "file"; }
  std::string_view description() const override { return "serves a file or block device"; }
  std::string_view magic_config_key() const override { return "file"; }
  std::string config_help() const override {
    return "file=PATH  The file or block device to serve\n"
           "dir=DIR    Serve every file in DIR, by name (exactly one of file= and dir=)\n"
           "cache=default|none   none: keep what is read and written out of the page cache\n"
           "fadvise=normal|random|sequential   posix_fadvise hint for each open file";
  }
  ThreadModel thread_model() const override { return ThreadModel::parallel; }

  int config(std::string_view key, std::string_view value) override;
  int config_complete() override;

  int list_exports(bool readonly, ExportList& out) override;
  std::optional<std::string> default_export(bool readonly) override;
  int open(bool readonly, std::string_view export_name, std::unique_ptr<Handle>& out) override;
  void close(Handle& h) override;
  int get_size(Handle& h, std::uint64_t& size) override;
  int can_write(Handle& h) override;
  int can_flush(Handle&) override { return 1; }
  int can_trim(Handle& h) override { return can_write(h); }
  int can_zero(Handle& h) override { return can_write(h); }
  int can_fast_zero(Handle& h) override { return can_write(h); }
  int can_fua(Handle&) override { return fua_native; }
  int can_multi_conn(Handle&) override { return 1; }  // fdatasync covers every descriptor
  int can_cache(Handle&) override { return cache_native; }
  int can_extents(Handle& h) override;

  int pread(Handle& h, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t flags) override;
  int pwrite(Handle& h, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t flags) override;
  int flush(Handle& h, std::uint32_t flags) override;
  int trim(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override;
  int zero(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override;
  int extents(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags,
              ExtentSink& sink) override;
  int cache(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override;

  bool has_pwrite() const override { return true; }
  bool has_flush() const override { return true; }
  bool has_trim() const override { return true; }
  bool has_zero() const override { return true; }
  bool has_extents() const override { return true; }
  bool has_cache() const override { return true; }

 private:
  int fail(const std::string& path, const char* what, int err);
  int fail(Handle& h, const char* what, int err);

  std::string path_;  // file=
  std::string dir_;   // dir=, made absolute at config
  bool cache_none_ = false;          // cache=none
  int fadvise_ = POSIX_FADV_NORMAL;  // fadvise=
};

}  // namespace nbdd::plugin::file
