// The one place where a core::PluginCall becomes a plugin callback. The daemon's worker
// pool and the simulator both call PluginHost::run(), so they share every default
// (zero emulated by pwrite, FUA emulated by flush, extents when unsupported...).
//
// Thread-safety: run() may be called from several threads at once for different
// connections, and for the same connection as the thread model allows (the core gates).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/connection.hpp"
#include "core/export_catalog.hpp"
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
};

class PluginHost final : public Host {
 public:
  PluginHost(std::unique_ptr<Plugin> plugin, HostHooks hooks);
  ~PluginHost() override;

  Plugin& plugin() { return *plugin_; }

  // Start-up: load, config (applying the magic key to a bare first arg), config_complete,
  // get_ready. Returns an error message, empty on success.
  std::string start(const std::vector<std::string>& args);
  // Builds the catalog by listing exports and probing each with open/get_size/can_*/close.
  std::string build_catalog(bool readonly, core::ExportCatalog& out);
  // Exactly once, after every connection finished.
  void unload();

  // The plugin's preconnect(readonly) for a new client (not a connected callback: a
  // disconnect() from it is ignored; an errno refuses the client). Returns 0 or an errno.
  int preconnect(core::ConnectionId id, bool readonly);

  // Runs one call for one connection. Returns 0 or an errno. Sets up the thread-local
  // "current connection" so the plugin's disconnect() reaches the right connection.
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

  // The message the plugin attached with error() during the last run()/start()/
  // build_catalog() on this thread (empty if none). For the driver's log line.
  static const std::string& last_error();

 private:
  std::unique_ptr<Plugin> plugin_;
  HostHooks hooks_;
  std::once_flag unloaded_;
  std::atomic<bool> loaded_{false};    // load() succeeded, so unload() is owed
  std::atomic<bool> unloaded_flag_{false};  // set before unload(): run() then refuses

  bool refused_after_unload();  // clears the thread's error; true once unloaded
  int run_connected(ConnectionPluginState& conn, const core::PluginCall& call);
  int run_open(ConnectionPluginState& conn, const core::PluginCall& call);
  int run_close(ConnectionPluginState& conn);
  int write_with_fua(ConnectionPluginState& conn, std::span<const std::byte> data,
                     std::uint64_t offset, std::uint32_t flags);
  int zero_with_fallback(ConnectionPluginState& conn, const core::PluginCall& call);
  int extents_with_fallback(ConnectionPluginState& conn, const core::PluginCall& call);
  int cache_with_fallback(ConnectionPluginState& conn, const core::PluginCall& call);
  std::string probe_export(bool readonly, const ExportEntry& entry, core::ExportInfo& out);
};

}  // namespace nbdd::plugin
