#include "sim/world_memory.hpp"

#include <map>
#include <stdexcept>

#if defined(NBDD_SIM_HAVE_PLUGINS) && __has_include("plugins/registry.hpp")
#define NBDD_SIM_MEMORY 1
#include "plugins/plugin_host.hpp"
#include "plugins/registry.hpp"
#endif

namespace nbdd::sim {

#ifdef NBDD_SIM_MEMORY
namespace {
class RealMemory final : public MemoryBackend {
 public:
  explicit RealMemory(const FaultProfile& profile) {
    plugin::HostHooks hooks;
    hooks.shutdown = [this] {
      if (fx_) fx_->shutdown = true;
    };
    hooks.disconnect = [this](core::ConnectionId, bool force) {
      if (!fx_) return;
      fx_->disconnect = true;
      fx_->force = fx_->force || force;
    };
    hooks.debug = [](std::string_view) {};
    host_ = std::make_unique<plugin::PluginHost>(plugin::make_builtin_plugin("memory"), std::move(hooks));
    const std::string err = host_->start({"size=" + std::to_string(profile.export_bytes)});
    if (!err.empty()) throw std::runtime_error("memory plugin: " + err);
  }
  int run(core::ConnectionId conn, const core::PluginCall& call, PluginEffects& fx) override {
    auto& st = states_[conn];
    st.id = conn;
    if (call.kind == core::CallKind::open) st.readonly = call.readonly;
    fx_ = &fx;
    const int err = host_->run(st, call);
    fx_ = nullptr;
    // The state lives while a handle may be open; a new open starts from a fresh one.
    if (call.kind == core::CallKind::close || (call.kind == core::CallKind::open && err != 0)) states_.erase(conn);
    return err;
  }
  void unload() override { host_->unload(); }

 private:
  std::unique_ptr<plugin::PluginHost> host_;
  std::map<core::ConnectionId, plugin::ConnectionPluginState> states_;
  PluginEffects* fx_ = nullptr;
};
}  // namespace

std::unique_ptr<MemoryBackend> make_memory_backend(const FaultProfile& profile) {
  return std::make_unique<RealMemory>(profile);
}
bool memory_plugin_available() { return true; }
#else
std::unique_ptr<MemoryBackend> make_memory_backend(const FaultProfile&) { return nullptr; }
bool memory_plugin_available() { return false; }
#endif

}  // namespace nbdd::sim
