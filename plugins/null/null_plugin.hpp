// `null size=N`: reads zeroes, discards writes, every request succeeds (nbdkit-null-plugin).
// Useful to measure the server without any storage cost.
#pragma once
#include <cstring>

#include "plugins/plugin_api.hpp"

namespace nbdd::plugin::null {

class NullPlugin final : public Plugin {
 public:
  std::string_view name() const override { return "null"; }
  std::string_view description() const override { return "reads zeroes, discards writes"; }
  std::string_view magic_config_key() const override { return "size"; }
  std::string config_help() const override { return "size=SIZE  Size of the disk (default 0)"; }
  ThreadModel thread_model() const override { return ThreadModel::parallel; }
  bool nonblocking() const override { return true; }  // in-memory: never blocks

  int config(std::string_view key, std::string_view value) override;

  int open(bool, std::string_view, std::unique_ptr<Handle>& out) override {
    out = std::make_unique<Handle>();
    return 0;
  }
  int get_size(Handle&, std::uint64_t& size) override {
    size = size_bytes_;
    return 0;
  }
  int can_write(Handle&) override { return 1; }
  int can_flush(Handle&) override { return 1; }
  int can_trim(Handle&) override { return 1; }
  int can_zero(Handle&) override { return 1; }
  int can_fast_zero(Handle&) override { return 1; }
  int can_fua(Handle&) override { return fua_native; }
  int can_multi_conn(Handle&) override { return 1; }
  int can_cache(Handle&) override { return cache_native; }
  int can_extents(Handle&) override { return 1; }

  int pread(Handle&, std::span<std::byte> buf, std::uint64_t, std::uint32_t) override {
    std::memset(buf.data(), 0, buf.size());
    return 0;
  }
  int pwrite(Handle&, std::span<const std::byte>, std::uint64_t, std::uint32_t) override { return 0; }
  int flush(Handle&, std::uint32_t) override { return 0; }
  int trim(Handle&, std::uint64_t, std::uint64_t, std::uint32_t) override { return 0; }
  int zero(Handle&, std::uint64_t, std::uint64_t, std::uint32_t) override { return 0; }
  int extents(Handle&, std::uint64_t count, std::uint64_t offset, std::uint32_t, ExtentSink& sink) override {
    sink.add(offset, count, extent_hole | extent_zero);
    return 0;
  }
  int cache(Handle&, std::uint64_t, std::uint64_t, std::uint32_t) override { return 0; }

  bool has_pwrite() const override { return true; }
  bool has_flush() const override { return true; }
  bool has_trim() const override { return true; }
  bool has_zero() const override { return true; }
  bool has_extents() const override { return true; }
  bool has_cache() const override { return true; }

 private:
  std::uint64_t size_bytes_ = 0;
};

}  // namespace nbdd::plugin::null
