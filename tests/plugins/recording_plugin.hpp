// A plugin for host tests: records every callback (thread-safe) and lets a test choose its
// answers: FUA/cache modes, whether zero and extents exist, scripted extents, return codes,
// and disconnect()/shutdown() calls from inside chosen callbacks.
#pragma once
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "plugins/plugin_api.hpp"

namespace nbdd::test {

class RecordingPlugin final : public plugin::Plugin {
 public:
  struct Write {
    std::uint64_t offset;
    std::uint64_t length;
    std::uint32_t flags;
    bool all_zero;
  };

  // --- knobs (set before start) ---
  std::string magic_key = "size";
  int fua_mode = plugin::fua_emulate;
  int cache_mode = plugin::cache_none;
  bool native_zero = false;
  bool extents_supported = false;
  std::function<void(plugin::ExtentSink&, std::uint64_t count, std::uint64_t offset)> extents_fn;
  int pread_result = 0;
  // pread_lend: unset means the plugin does not lend; else it fills the loan and answers.
  std::function<int(std::uint64_t count, plugin::ReadLoan& loan)> lend_fn;
  std::string disconnect_in;  // callback name ("open", "close", "pread") that calls disconnect
  bool disconnect_force = false;
  std::uint64_t size = 1 << 20;

  // --- observations ---
  std::atomic<int> unloads{0};
  // Outlives the plugin, so a test can count the unload done by ~PluginHost.
  std::shared_ptr<std::atomic<int>> unload_counter = std::make_shared<std::atomic<int>>(0);
  std::atomic<int> opens{0};
  std::atomic<int> closes{0};
  std::atomic<int> flushes{0};
  std::atomic<int> preads{0};
  std::atomic<int> loans_returned{0};

  std::vector<std::string> log() const {
    std::lock_guard lock(mutex_);
    return log_;
  }
  std::vector<Write> writes() const {
    std::lock_guard lock(mutex_);
    return writes_;
  }

  std::string_view name() const override { return "recording"; }
  std::string_view magic_config_key() const override { return magic_key; }

  int config(std::string_view key, std::string_view value) override {
    record("config " + std::string(key) + "=" + std::string(value));
    if (key == "fail") {
      host().error("config refused on purpose");
      return EINVAL;
    }
    return 0;
  }
  int preconnect(bool readonly) override {
    record(readonly ? "preconnect ro" : "preconnect rw");
    maybe_disconnect("preconnect");
    return 0;
  }
  void unload() override {
    unloads.fetch_add(1);
    unload_counter->fetch_add(1);
  }

  int open(bool, std::string_view export_name, std::unique_ptr<plugin::Handle>& out) override {
    opens.fetch_add(1);
    record("open " + std::string(export_name));
    maybe_disconnect("open");
    out = std::make_unique<plugin::Handle>();
    return 0;
  }
  void close(plugin::Handle&) override {
    closes.fetch_add(1);
    maybe_disconnect("close");
  }
  int get_size(plugin::Handle&, std::uint64_t& s) override {
    s = size;
    return 0;
  }
  int can_fua(plugin::Handle&) override { return fua_mode; }
  int can_cache(plugin::Handle&) override { return cache_mode; }
  int can_extents(plugin::Handle&) override { return extents_supported ? 1 : 0; }

  int pread_lend(plugin::Handle&, std::uint64_t count, std::uint64_t, std::uint32_t,
                 plugin::ReadLoan& loan) override {
    record("pread_lend");
    return lend_fn ? lend_fn(count, loan) : ENOTSUP;
  }
  void return_loan(const plugin::ReadLoan&) override { ++loans_returned; }
  int pread(plugin::Handle&, std::span<std::byte> buf, std::uint64_t, std::uint32_t) override {
    preads.fetch_add(1);
    maybe_disconnect("pread");
    std::memset(buf.data(), 0xab, buf.size());
    return pread_result;
  }
  int pwrite(plugin::Handle&, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t flags) override {
    bool zero = true;
    for (auto b : buf) zero = zero && b == std::byte{0};
    std::lock_guard lock(mutex_);
    writes_.push_back({offset, buf.size(), flags, zero});
    log_.push_back("pwrite");
    return 0;
  }
  int flush(plugin::Handle&, std::uint32_t) override {
    flushes.fetch_add(1);
    record("flush");
    return 0;
  }
  int trim(plugin::Handle&, std::uint64_t, std::uint64_t, std::uint32_t flags) override {
    record("trim " + std::to_string(flags));
    return 0;
  }
  int zero(plugin::Handle&, std::uint64_t, std::uint64_t, std::uint32_t flags) override {
    if (!native_zero) return ENOTSUP;
    record("zero " + std::to_string(flags));
    return 0;
  }
  int extents(plugin::Handle&, std::uint64_t count, std::uint64_t offset, std::uint32_t, plugin::ExtentSink& sink) override {
    if (extents_fn) extents_fn(sink, count, offset);
    return 0;
  }
  int cache(plugin::Handle&, std::uint64_t, std::uint64_t, std::uint32_t) override {
    record("cache");
    return 0;
  }

  bool has_pwrite() const override { return true; }
  bool has_flush() const override { return true; }
  bool has_trim() const override { return true; }
  bool has_zero() const override { return native_zero; }
  bool has_extents() const override { return extents_supported; }
  bool has_cache() const override { return cache_mode != plugin::cache_none; }
  bool has_pread_lend() const override { return static_cast<bool>(lend_fn); }

 private:
  void record(std::string line) {
    std::lock_guard lock(mutex_);
    log_.push_back(std::move(line));
  }
  void maybe_disconnect(const char* where) {
    if (disconnect_in == where) host().disconnect(disconnect_force);
  }

  mutable std::mutex mutex_;
  std::vector<std::string> log_;
  std::vector<Write> writes_;
};

}  // namespace nbdd::test
