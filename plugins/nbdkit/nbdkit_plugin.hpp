// The adaptor class itself (see nbdkit_plugin_adaptor.hpp for how it is created). Each
// method calls the matching nbdkit callback with nbdkit's defaults for a missing one
// (server/plugins.c) and turns -1 into an errno the way nbdkit does: nbdkit_set_error's
// value, else errno when the plugin declares errno_is_preserved, else EIO.
#pragma once
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "plugins/nbdkit/nbdkit_headers.hpp"
#include "plugins/plugin_api.hpp"

namespace nbdd::plugin::nbdkit_abi {

// One open() of the nbdkit plugin: its void* handle and the export name it was opened for
// (what nbdkit_export_name() answers in this handle's callbacks).
struct NbdkitHandle final : Handle {
  void* handle = nullptr;
  std::string export_name;
};

class NbdkitPlugin final : public Plugin {
 public:
  // `fields` is the plugin's struct, already copied up to its _struct_size and checked.
  NbdkitPlugin(void* dl, std::string path, const nbdkit_plugin& fields);
  ~NbdkitPlugin() override;
  NbdkitPlugin(const NbdkitPlugin&) = delete;
  NbdkitPlugin& operator=(const NbdkitPlugin&) = delete;

  std::string_view name() const override { return p_.name; }
  std::string_view description() const override { return p_.description ? p_.description : ""; }
  std::string_view magic_config_key() const override { return p_.magic_config_key ? p_.magic_config_key : ""; }
  std::string config_help() const override { return p_.config_help ? p_.config_help : ""; }
  std::vector<std::pair<std::string, std::string>> dump_fields() const override;
  ThreadModel thread_model() const override { return thread_model_; }
  // nbdkit's own in-memory plugins (memory, data, null, ...: their data callbacks never
  // block), loaded from nbdkit's plugin directory and parallel: nbdd may call their data
  // callbacks on its I/O threads, as it does its built-in memory plugin. Any other plugin
  // may block, so its calls go to nbdd's workers (as nbdkit runs every plugin on its threads).
  bool nonblocking() const override { return in_memory_ && thread_model_ == ThreadModel::parallel; }

  int load(Host& host) override;
  int config(std::string_view key, std::string_view value) override;
  int config_complete() override;
  int get_ready() override;
  void unload() override;
  int run_after_fork(std::string& error);

  int preconnect(bool readonly) override;
  int list_exports(bool readonly, ExportList& out) override;
  std::optional<std::string> default_export(bool readonly) override;

  int open(bool readonly, std::string_view export_name, std::unique_ptr<Handle>& out) override;
  void close(Handle& h) override;
  std::string export_description(Handle& h) override;
  int get_size(Handle& h, std::uint64_t& size) override;
  int block_size(Handle& h, std::uint32_t& minimum, std::uint32_t& preferred, std::uint32_t& maximum) override;
  int can_write(Handle& h) override;
  int can_flush(Handle& h) override;
  int can_trim(Handle& h) override;
  int can_zero(Handle& h) override;
  int can_fast_zero(Handle& h) override;
  int can_fua(Handle& h) override;
  int can_multi_conn(Handle& h) override;
  int can_cache(Handle& h) override;
  int can_extents(Handle& h) override;
  int is_rotational(Handle& h) override;

  int pread(Handle& h, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t flags) override;
  int pwrite(Handle& h, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t flags) override;
  int flush(Handle& h, std::uint32_t flags) override;
  int trim(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override;
  int zero(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override;
  int extents(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags,
              ExtentSink& sink) override;
  int cache(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override;

  bool has_pwrite() const override { return p_.pwrite || p_._pwrite_v1; }
  bool has_flush() const override { return p_.flush || p_._flush_v1; }
  bool has_trim() const override { return p_.trim || p_._trim_v1; }
  bool has_zero() const override { return p_.zero || p_._zero_v1; }
  bool has_extents() const override { return p_.extents != nullptr; }
  bool has_cache() const override { return p_.cache != nullptr; }

 private:
  int error_of_failure(int saved_errno) const;
  // A bool-like can_* answer (nbdkit's normalize_bool), or -errno.
  int boolean_answer(int (*callback)(void*), Handle& h, bool fallback) const;
  void load_for_dump() const;  // --dump-plugin without a server: load() for dump_plugin()
  std::string capture_dump_plugin() const;

  void* dl_;
  std::string path_;
  nbdkit_plugin p_;
  std::deque<std::string> config_strings_;  // every key and value passed to config()
  ThreadModel thread_model_;
  bool in_memory_ = false;  // one of nbdkit's in-memory plugins, from its plugin directory
  bool loaded_ = false;     // plugin load() called, unload() owed
  bool unloaded_ = false;
  bool ready_ = false;      // get_ready() succeeded: cleanup() owed before unload
  mutable bool loaded_for_dump_ = false;
  std::mutex after_fork_mutex_;
  bool after_fork_done_ = false;
  int after_fork_result_ = 0;
  std::string after_fork_error_;
};

}  // namespace nbdd::plugin::nbdkit_abi
