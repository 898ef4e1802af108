// sim::SimPlugin: the simulator's own plugin. One model disk per export (shared by every
// connection, like a real plugin's backing store), per-call latency drawn from the profile,
// errno faults, and — from inside random callbacks, at random moments — disconnect(false),
// disconnect(true) and shutdown(), exactly the calls a real plugin can make through
// plugin::Host. A call takes effect atomically at its completion time.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/call_gate.hpp"
#include "core/export_catalog.hpp"
#include "core/plugin_call.hpp"
#include "sim/fault_profile.hpp"
#include "sim/prng.hpp"

namespace nbdd::sim {

// What the callback asked of the host while it ran (delivered before its PluginDone).
struct PluginEffects {
  bool disconnect = false;
  bool force = false;
  bool shutdown = false;
};

class SimPlugin {
 public:
  SimPlugin(Prng prng, const FaultProfile& profile, const core::ExportCatalog& catalog);

  std::uint64_t latency_ns();
  // Runs one call; returns 0 or an errno. `faults` is false once the fault phase is over.
  int run(core::ConnectionId conn, const core::PluginCall& call, bool faults, PluginEffects& fx);
  void unload() { ++unloads_; }
  std::uint32_t unloads() const { return unloads_; }

  // The catalog the simulator's exports are served from (built from the profile).
  static core::ExportCatalog make_catalog(const FaultProfile& profile);

 private:
  std::vector<std::byte>& disk(core::ConnectionId conn);
  Prng prng_;
  const FaultProfile& profile_;
  const core::ExportCatalog& catalog_;
  std::map<std::string, std::vector<std::byte>> disks_;
  std::map<core::ConnectionId, std::vector<std::byte>*> export_of_;  // the disk of each open connection
  std::uint32_t unloads_ = 0;
};

}  // namespace nbdd::sim
