// `pattern size=N`: a read-only disk whose every 8-byte aligned word holds its own offset,
// big-endian (nbdkit-pattern-plugin), so a client can check any byte it reads without a
// reference copy. Reads may start and end anywhere.
#pragma once
#include <cstdint>
#include <span>

#include "plugins/plugin_api.hpp"

namespace nbdd::plugin::pattern {

// The pattern for [offset, offset + out.size()); exposed for tests and other plugins.
void fill_pattern(std::span<std::byte> out, std::uint64_t offset);

class PatternPlugin final : public Plugin {
 public:
  std::string_view name() const override { return "pattern"; }
  std::string_view description() const override { return "read-only disk, each word holds its offset"; }
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
  int can_multi_conn(Handle&) override { return 1; }  // read-only: trivially consistent
  int can_cache(Handle&) override { return cache_native; }
  int pread(Handle&, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t) override {
    fill_pattern(buf, offset);
    return 0;
  }
  int cache(Handle&, std::uint64_t, std::uint64_t, std::uint32_t) override { return 0; }
  bool has_cache() const override { return true; }

 private:
  std::uint64_t size_bytes_ = 0;
};

}  // namespace nbdd::plugin::pattern
