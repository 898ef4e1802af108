// A plugin for host tests: records every callback (thread-safe) and lets a test choose its
// answers: FUA/cache modes, whether zero and extents exist, scripted extents, return codes,
// and disconnect()/shutdown() calls from inside chosen callbacks.
#pragma once
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
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
  // Lifecycle knobs.
  int preconnect_result = 0;
  // list_exports: unset means the plugin has none (the API's default: use_default()).
  std::function<int(plugin::ExportList&)> list_fn;
  std::optional<std::string> default_name = std::string();  // nullopt: "" is refused
  int open_result = 0;
  int get_size_result = 0;
  std::string fail_query;  // "can_write", "can_flush", ... answers -query_errno
  int query_errno = ENOSPC;
  int can_write_answer = 1;
  int multi_conn_answer = 0;
  std::uint32_t block_min = 0, block_preferred = 0, block_max = 0;
  std::string description;
  plugin::ThreadModel model = plugin::ThreadModel::parallel;

  // --- observations ---
  std::atomic<int> unloads{0};
  // Outlives the plugin, so a test can count the unload done by ~PluginHost.
  std::shared_ptr<std::atomic<int>> unload_counter = std::make_shared<std::atomic<int>>(0);
  std::atomic<int> opens{0};
  std::atomic<int> closes{0};
  std::atomic<int> size_queries{0};
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
  plugin::Host& host_for_tests() { return host(); }
  std::string_view magic_config_key() const override { return magic_key; }
  plugin::ThreadModel thread_model() const override { return model; }

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
    if (preconnect_result != 0) host().error("preconnect refused on purpose");
    return preconnect_result;
  }
  int list_exports(bool readonly, plugin::ExportList& out) override {
    record(readonly ? "list_exports ro" : "list_exports rw");
    maybe_disconnect("list_exports");
    if (!list_fn) return Plugin::list_exports(readonly, out);
    return list_fn(out);
  }
  std::optional<std::string> default_export(bool readonly) override {
    record(readonly ? "default_export ro" : "default_export rw");
    return default_name;
  }
  void unload() override {
    unloads.fetch_add(1);
    unload_counter->fetch_add(1);
  }

  int open(bool readonly, std::string_view export_name, std::unique_ptr<plugin::Handle>& out) override {
    record("open " + std::string(export_name) + (readonly ? " ro" : ""));
    maybe_disconnect("open");
    if (open_result != 0) return open_result;
    opens.fetch_add(1);
    out = std::make_unique<plugin::Handle>();
    return 0;
  }
  void close(plugin::Handle&) override {
    closes.fetch_add(1);
    maybe_disconnect("close");
  }
  int get_size(plugin::Handle&, std::uint64_t& s) override {
    size_queries.fetch_add(1);
    s = size;
    return get_size_result;
  }
  int block_size(plugin::Handle&, std::uint32_t& minimum, std::uint32_t& preferred, std::uint32_t& maximum) override {
    minimum = block_min, preferred = block_preferred, maximum = block_max;
    return 0;
  }
  std::string export_description(plugin::Handle&) override {
    record("export_description");
    return description;
  }
  int can_write(plugin::Handle&) override { return query("can_write", can_write_answer); }
  int can_flush(plugin::Handle&) override { return query("can_flush", 1); }
  int can_trim(plugin::Handle&) override { return query("can_trim", 1); }
  int can_zero(plugin::Handle&) override { return query("can_zero", native_zero ? 1 : 0); }
  int can_multi_conn(plugin::Handle&) override { return query("can_multi_conn", multi_conn_answer); }
  int can_fua(plugin::Handle&) override { return query("can_fua", fua_mode); }
  int can_cache(plugin::Handle&) override { return query("can_cache", cache_mode); }
  int can_extents(plugin::Handle&) override { return query("can_extents", extents_supported ? 1 : 0); }

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
  // Records a can_* call and answers it (or fails it when the test chose this one).
  int query(const char* what, int answer) {
    record(what);
    return fail_query == what ? -query_errno : answer;
  }
  void maybe_disconnect(const char* where) {
    if (disconnect_in == where) host().disconnect(disconnect_force);
  }

  mutable std::mutex mutex_;
  std::vector<std::string> log_;
  std::vector<Write> writes_;
};

}  // namespace nbdd::test
