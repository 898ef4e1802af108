// The real built-in `memory` plugin behind the simulator, through plugin::PluginHost::run()
// (the same code path as the daemon's worker pool) for every call kind — preconnect,
// list_exports, open (default_export, get_size, can_*...), close and the data calls —
// called synchronously at the simulated completion time. Available only when plugins/
// provides registry.hpp.
#pragma once
#include <memory>

#include "core/export_info.hpp"
#include "core/plugin_call.hpp"
#include "sim/fault_profile.hpp"
#include "sim/sim_plugin.hpp"

namespace nbdd::sim {

class MemoryBackend {
 public:
  virtual ~MemoryBackend() = default;
  virtual int run(core::ConnectionId conn, const core::PluginCall& call, PluginEffects& fx) = 0;
  virtual void unload() = 0;
};

// nullptr when this build has no memory plugin.
std::unique_ptr<MemoryBackend> make_memory_backend(const FaultProfile& profile);

}  // namespace nbdd::sim
