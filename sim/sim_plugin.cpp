#include "sim/sim_plugin.hpp"

#include <algorithm>
#include <array>
#include <cerrno>

namespace nbdd::sim {

core::ExportCatalog SimPlugin::make_catalog(const FaultProfile& f) {
  core::ExportCatalog cat;
  for (std::uint32_t i = 0; i < f.exports; ++i) {
    core::ExportInfo e;
    e.name = "disk" + std::to_string(i);
    e.description = "simulated disk " + std::to_string(i);
    e.size_bytes = f.export_bytes + i * 512;
    e.caps.can_write = !f.read_only;
    e.caps.can_flush = f.can_flush;
    e.caps.can_trim = f.can_trim;
    e.caps.can_zero = f.can_zero;
    e.caps.can_fast_zero = f.can_fast_zero;
    e.caps.can_fua = f.can_fua;
    e.caps.can_cache = f.can_cache;
    e.caps.can_extents = f.can_extents;
    e.caps.can_multi_conn = f.can_multi_conn;
    cat.exports.push_back(std::move(e));
  }
  cat.default_export = "disk0";
  cat.read_only = false;
  return cat;
}

SimPlugin::SimPlugin(Prng prng, const FaultProfile& profile, const core::ExportCatalog& catalog)
    : prng_(prng), profile_(profile), catalog_(catalog) {
  for (const auto& e : catalog_.exports) disks_[e.name].assign(e.size_bytes, std::byte{0});
}

std::uint64_t SimPlugin::latency_ns() {
  if (prng_.chance(profile_.plugin_stall)) return prng_.range_inclusive(100'000'000, 3'000'000'000);
  return prng_.range_inclusive(profile_.latency_min_ns, profile_.latency_max_ns);
}

std::vector<std::byte>& SimPlugin::disk(core::ConnectionId conn) {
  static std::vector<std::byte> none;  // a data call without an open export: every range is out of range
  auto it = export_of_.find(conn);
  return it == export_of_.end() || !it->second ? none : *it->second;
}

int SimPlugin::run(core::ConnectionId conn, const core::PluginCall& call, bool faults, PluginEffects& fx) {
  using core::CallKind;
  if (faults && prng_.chance(profile_.plugin_shutdown)) fx.shutdown = true;
  if (call.kind == CallKind::open) {
    if (faults && prng_.chance(profile_.plugin_disconnect_graceful)) fx.disconnect = true;  // ignored by core
    if (faults && prng_.chance(profile_.open_error)) return prng_.coin() ? EACCES : ENOENT;
    const auto* info = catalog_.find(call.export_name);
    if (!info) return ENOENT;
    export_of_[conn] = &disks_[info->name];
    return 0;
  }
  if (call.kind == CallKind::close) {
    if (faults && prng_.chance(profile_.plugin_disconnect_force)) fx.disconnect = fx.force = true;  // ignored
    export_of_.erase(conn);
    return 0;
  }
  if (faults && prng_.chance(profile_.plugin_disconnect_graceful)) fx.disconnect = true;
  if (faults && prng_.chance(profile_.plugin_disconnect_force)) fx.disconnect = fx.force = true;
  if (faults && prng_.chance(profile_.plugin_error)) {
    static constexpr std::array errs{EIO, ENOSPC, EPERM, EINVAL, ENOMEM};
    return errs[prng_.below(errs.size())];
  }
  auto& d = disk(conn);
  const std::uint64_t off = call.offset, n = call.count;
  const bool in_range = n <= d.size() && off <= d.size() - n;
  switch (call.kind) {
    case CallKind::pread:
      if (!in_range || call.buffer.size() < n) return EINVAL;
      std::copy_n(d.begin() + static_cast<std::ptrdiff_t>(off), n, call.buffer.begin());
      return 0;
    case CallKind::pwrite:
      if (!in_range || call.buffer.size() < n) return EINVAL;
      std::copy_n(call.buffer.begin(), n, d.begin() + static_cast<std::ptrdiff_t>(off));
      return 0;
    case CallKind::zero:
      if (!in_range) return EINVAL;
      if ((call.flags & core::call_flag::fast_zero) && prng_.coin()) return ENOTSUP;
      std::fill_n(d.begin() + static_cast<std::ptrdiff_t>(off), n, std::byte{0});
      return 0;
    case CallKind::trim:
      if (!in_range) return EINVAL;
      // Contents are unspecified after TRIM: leave junk so the oracle's rule is exercised.
      if (prng_.coin()) std::fill_n(d.begin() + static_cast<std::ptrdiff_t>(off), n, std::byte{0xa5});
      return 0;
    case CallKind::flush:
    case CallKind::cache:
      return 0;
    case CallKind::extents: {
      if (!call.extents || off >= d.size()) return EINVAL;
      const std::uint64_t end = std::min<std::uint64_t>(d.size(), off + std::max<std::uint64_t>(n, 1));
      std::uint64_t at = off;
      const std::uint32_t pieces = static_cast<std::uint32_t>(prng_.range_inclusive(1, 3));
      for (std::uint32_t i = 0; i < pieces && at < end; ++i) {
        if (call.extents_max && call.extents->size() >= call.extents_max) break;
        const std::uint64_t len = (i + 1 == pieces) ? end - at : prng_.range_inclusive(1, end - at);
        const bool zero = std::all_of(d.begin() + static_cast<std::ptrdiff_t>(at),
                                      d.begin() + static_cast<std::ptrdiff_t>(at + len),
                                      [](std::byte b) { return b == std::byte{0}; });
        call.extents->push_back(core::Extent{at, len, zero ? 3u : 0u});
        at += len;
      }
      return 0;
    }
    default:
      return EINVAL;
  }
}

}  // namespace nbdd::sim
