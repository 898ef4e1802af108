// The one place where a core::PluginCall becomes plugin callbacks. The daemon's worker
// pool and the simulator both call PluginHost::run(), so they share every default and
// every rule: the whole per-connection lifecycle (preconnect, list_exports, open with its
// default_export/get_size/can_*/block_size/export_description queries, close) and the data
// calls (zero emulated by pwrite, FUA emulated by flush, extents when unsupported...).
//
// Thread-safety: run() may be called from several threads at once for different
// connections, and for the same connection as the thread model allows (the core gates).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/connection.hpp"
#include "core/export_info.hpp"
#include "core/plugin_call.hpp"
#include "plugins/plugin_api.hpp"

namespace nbdd::plugin {

// What the driver does when a plugin calls shutdown() or disconnect(force).
struct HostHooks {
  std::function<void()> shutdown;                                   // any thread
  std::function<void(core::ConnectionId, bool force)> disconnect;  // any thread
  std::function<void(std::string_view)> debug;                      // any thread
};

// Per-connection plugin state: the handle from open(), owned here.
struct ConnectionPluginState {
  core::ConnectionId id = 0;
  std::unique_ptr<Handle> handle;
  bool readonly = false;
  // Answers cached by run(open) so data calls need no can_* call (set by PluginHost only).
  int fua_mode = fua_none;      // can_fua(): fua_none / fua_emulate / fua_native
  int cache_mode = cache_none;  // can_cache(): cache_none / cache_emulate / cache_native
  bool can_extents = false;     // false: run(extents) reports the range as allocated data
  bool zero_native = false;     // can_zero(): false: run(zero) writes zeroes, never calls zero()
};

class PluginHost final : public Host {
 public:
  PluginHost(std::unique_ptr<Plugin> plugin, HostHooks hooks);
  ~PluginHost() override;

  Plugin& plugin() { return *plugin_; }

  // Start-up: load, config (applying the magic key to a bare first arg), config_complete,
  // get_ready. Returns an error message, empty on success.
  std::string start(const std::vector<std::string>& args);
  // nbdd's -e NAME: the one export listed for a plugin that lists the default export
  // (no list_exports of its own, or it called ExportList::use_default()), instead of the
  // name default_export() gives. Call before the first run(); not thread-safe with it.
  void set_export_name_option(std::string name);
  // Exactly once, after every connection finished.
  void unload();

  // Runs one call for one connection. Returns 0 or an errno. Every CallKind:
  //   preconnect    plugin preconnect(call.readonly)
  //   list_exports  plugin list_exports(call.readonly) appended to *call.exports, at most
  //                 call.exports_max entries in all; the default export resolved to its
  //                 name (or the -e name). On an error nothing is appended.
  //   open          default_export(call.readonly) when call.export_name is "" (refused:
  //                 ENOENT), open, get_size, can_*, export_description (when
  //                 call.want_description), block_size; fills *call.info (may be null) and
  //                 caches what data calls need in `conn`. If a query after open fails the
  //                 handle is closed here: an errno always means no handle is open.
  //   close         plugin close, handle dropped (0 even with no handle)
  //   data calls    need an open handle (else EIO without reaching the plugin)
  // Data callbacks are "connected": a disconnect() from them reaches conn.id through the
  // hooks; from every lifecycle callback it is ignored (refuse by returning an errno).
  int run(ConnectionPluginState& conn, const core::PluginCall& call);

  // Zero-copy read (the plugin's pread_lend): fills `loan` with pieces covering exactly
  // [call.offset, call.offset+call.count). Returns 0 (give the loan back with
  // return_loan() once its bytes are sent), ENOTSUP (nothing lent: run() the pread
  // instead) or another errno (the read failed). Only for a pread call.
  int lend(ConnectionPluginState& conn, const core::PluginCall& call, ReadLoan& loan);
  // Any thread, before unload(). Empties `loan`.
  void return_loan(ReadLoan& loan);
  bool lends_reads() const { return plugin_->has_pread_lend(); }

  // Host interface for the plugin.
  void shutdown() override;
  void disconnect(bool force) override;
  void error(std::string_view message) override;
  void debug(std::string_view message) override;
  bool is_tls() const override;

  // The message attached to the failure of the last run()/start() on this thread (empty
  // if none): the plugin's error() text, or the host's own when the plugin gave none for
  // a failed lifecycle step. For the driver's log line.
  static const std::string& last_error();

 private:
  std::unique_ptr<Plugin> plugin_;
  HostHooks hooks_;
  std::optional<std::string> export_name_option_;  // -e
  std::once_flag unloaded_;
  std::atomic<bool> loaded_{false};    // load() succeeded, so unload() is owed
  std::atomic<bool> unloaded_flag_{false};  // set before unload(): run() then refuses

  bool refused_after_unload();  // clears the thread's error; true once unloaded
  // Lifecycle calls (host_lifecycle.cpp).
  int run_preconnect(ConnectionPluginState& conn, const core::PluginCall& call);
  int run_list_exports(ConnectionPluginState& conn, const core::PluginCall& call);
  int run_open(ConnectionPluginState& conn, const core::PluginCall& call);
  int query_export(ConnectionPluginState& conn, const core::PluginCall& call, core::ExportInfo& info);
  int run_close(ConnectionPluginState& conn);
  std::optional<std::string> resolved_default_export(bool readonly);
  // Data calls (host_run.cpp).
  int run_connected(ConnectionPluginState& conn, const core::PluginCall& call);
  int write_with_fua(ConnectionPluginState& conn, std::span<const std::byte> data,
                     std::uint64_t offset, std::uint32_t flags);
  int zero_with_fallback(ConnectionPluginState& conn, const core::PluginCall& call);
  int extents_with_fallback(ConnectionPluginState& conn, const core::PluginCall& call);
  int cache_with_fallback(ConnectionPluginState& conn, const core::PluginCall& call);
};

}  // namespace nbdd::plugin
