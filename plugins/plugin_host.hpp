// The one place where a core::PluginCall becomes a plugin callback. The daemon's worker
// pool and the simulator both call PluginHost::run(), so they share every default
// (zero emulated by pwrite, FUA emulated by flush, extents when unsupported...).
//
// Thread-safety: run() may be called from several threads at once for different
// connections, and for the same connection as the thread model allows (the core gates).
#pragma once
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

  // Runs one call for one connection. Returns 0 or an errno. Sets up the thread-local
  // "current connection" so the plugin's disconnect() reaches the right connection.
  int run(ConnectionPluginState& conn, const core::PluginCall& call);

  // Host interface for the plugin.
  void shutdown() override;
  void disconnect(bool force) override;
  void error(std::string_view message) override;
  void debug(std::string_view message) override;

 private:
  std::unique_ptr<Plugin> plugin_;
  HostHooks hooks_;
  std::once_flag unloaded_;
};

}  // namespace nbdd::plugin
