// sim::SimPlugin: the simulator's own plugin, answering every call core asks for — the
// lifecycle (preconnect, list_exports, open with the export described for this connection,
// close) and the data calls. Like a real plugin, it serves its exports by name (disk0..,
// "" resolves to disk0, any other name fails ENOENT) from one model disk per export shared
// by every connection; each open may report a different size (the disk minus a few sectors)
// and, with caps_vary, different capabilities. Per-call latency drawn from the profile,
// errno faults, and — from inside random callbacks, at random moments — disconnect(false),
// disconnect(true) and shutdown(), exactly the calls a real plugin can make through
// plugin::Host (core must ignore a disconnect from anything but the GO'd handle's calls).
// A call takes effect atomically at its completion time.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/call_gate.hpp"
#include "core/export_info.hpp"
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

// A model disk whose 4 KiB pages exist only once written: a world that writes little costs
// little (the disks were zero-filled in full for every world: up to 256 KiB per seed).
// Reads of a page never written give zeroes.
class LazyDisk {
 public:
  explicit LazyDisk(std::uint64_t size = 0) : size_(size), pages_((size + page - 1) / page) {}
  std::uint64_t size() const { return size_; }
  void read(std::uint64_t off, std::span<std::byte> out) const;
  void write(std::uint64_t off, std::span<const std::byte> in);
  void fill(std::uint64_t off, std::uint64_t n, std::byte value);
  bool all_zero(std::uint64_t off, std::uint64_t n) const;

 private:
  static constexpr std::uint64_t page = 4096;
  std::byte* page_for_write(std::uint64_t index);
  std::uint64_t size_;
  std::vector<std::unique_ptr<std::byte[]>> pages_;
};

class SimPlugin {
 public:
  SimPlugin(Prng prng, const FaultProfile& profile);

  std::uint64_t latency_ns();
  // Runs one call; returns 0 or an errno. `faults` is false once the fault phase is over.
  int run(core::ConnectionId conn, const core::PluginCall& call, bool faults, PluginEffects& fx);
  // Only the callbacks' disconnect()/shutdown() of a call, without running it (the
  // memory-plugin mode runs the real plugin and takes these faults from here).
  void callback_effects(const core::PluginCall& call, bool faults, PluginEffects& fx);
  void unload() { ++unloads_; }
  std::uint32_t unloads() const { return unloads_; }

  // The names this plugin serves (the default export is the first).
  static std::string export_name(std::uint32_t index) { return "disk" + std::to_string(index); }

 private:
  int open(core::ConnectionId conn, const core::PluginCall& call, bool faults);
  int list(const core::PluginCall& call, bool faults);
  LazyDisk& disk(core::ConnectionId conn);
  Prng prng_;
  const FaultProfile& profile_;
  std::map<std::string, LazyDisk> disks_;  // at their largest size
  std::map<core::ConnectionId, LazyDisk*> export_of_;  // the disk of each open handle
  std::uint32_t unloads_ = 0;
};

}  // namespace nbdd::sim
