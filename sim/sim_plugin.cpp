#include "sim/sim_plugin.hpp"

#include <algorithm>
#include <array>
#include <cerrno>

namespace nbdd::sim {

// ---- LazyDisk: each operation walks the pages its range touches.
std::byte* LazyDisk::page_for_write(std::uint64_t index) {
  auto& p = pages_[index];
  if (!p) p = std::make_unique<std::byte[]>(page);  // value-initialized: zeroes
  return p.get();
}

void LazyDisk::read(std::uint64_t off, std::span<std::byte> out) const {
  for (std::uint64_t done = 0; done < out.size();) {
    const std::uint64_t at = off + done, in_page = at % page, n = std::min(page - in_page, out.size() - done);
    if (const auto& p = pages_[at / page]) std::copy_n(p.get() + in_page, n, out.begin() + static_cast<std::ptrdiff_t>(done));
    else std::fill_n(out.begin() + static_cast<std::ptrdiff_t>(done), n, std::byte{0});
    done += n;
  }
}

void LazyDisk::write(std::uint64_t off, std::span<const std::byte> in) {
  for (std::uint64_t done = 0; done < in.size();) {
    const std::uint64_t at = off + done, in_page = at % page, n = std::min(page - in_page, in.size() - done);
    std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(done), n, page_for_write(at / page) + in_page);
    done += n;
  }
}

void LazyDisk::fill(std::uint64_t off, std::uint64_t n, std::byte value) {
  for (std::uint64_t done = 0; done < n;) {
    const std::uint64_t at = off + done, in_page = at % page, k = std::min(page - in_page, n - done);
    if (value != std::byte{0} || pages_[at / page]) std::fill_n(page_for_write(at / page) + in_page, k, value);
    done += k;
  }
}

bool LazyDisk::all_zero(std::uint64_t off, std::uint64_t n) const {
  for (std::uint64_t done = 0; done < n;) {
    const std::uint64_t at = off + done, in_page = at % page, k = std::min(page - in_page, n - done);
    if (const auto& p = pages_[at / page])
      if (!std::all_of(p.get() + in_page, p.get() + in_page + k, [](std::byte b) { return b == std::byte{0}; }))
        return false;
    done += k;
  }
  return true;
}

SimPlugin::SimPlugin(Prng prng, const FaultProfile& profile) : prng_(prng), profile_(profile) {
  for (std::uint32_t i = 0; i < profile_.exports; ++i) disks_.emplace(export_name(i), LazyDisk(profile_.export_bytes + i * 512));
}

std::uint64_t SimPlugin::latency_ns() {
  if (prng_.chance(profile_.plugin_stall)) return prng_.range_inclusive(100'000'000, 3'000'000'000);
  return prng_.range_inclusive(profile_.latency_min_ns, profile_.latency_max_ns);
}

LazyDisk& SimPlugin::disk(core::ConnectionId conn) {
  static LazyDisk none;  // a data call without an open export: every range is out of range
  auto it = export_of_.find(conn);
  return it == export_of_.end() || !it->second ? none : *it->second;
}

void SimPlugin::callback_effects(const core::PluginCall&, bool faults, PluginEffects& fx) {
  if (!faults) return;
  if (prng_.chance(profile_.plugin_shutdown)) fx.shutdown = true;
  if (prng_.chance(profile_.plugin_disconnect_graceful)) fx.disconnect = true;
  if (prng_.chance(profile_.plugin_disconnect_force)) fx.disconnect = fx.force = true;
}

// list_exports: every export, with a description; sometimes also a name no NBD string can
// carry (core must skip it). Appends at most exports_max entries, as a driver must.
int SimPlugin::list(const core::PluginCall& call, bool faults) {
  if (faults && prng_.chance(profile_.list_error)) return prng_.coin() ? EIO : EACCES;
  if (!call.exports) return EINVAL;
  auto add = [&](std::string name, std::string description) {
    if (call.exports_max && call.exports->size() >= call.exports_max) return;
    call.exports->push_back(core::ExportEntry{std::move(name), std::move(description)});
  };
  for (std::uint32_t i = 0; i < profile_.exports; ++i) {
    if (profile_.list_invalid_name && i == 1) add(std::string("bad\0name", 8), "a name with a NUL");
    add(export_name(i), "simulated disk " + std::to_string(i));
  }
  if (profile_.list_invalid_name && profile_.exports == 1) add(std::string("bad\0name", 8), "");
  return 0;
}

// open: default_export resolves ""; unknown names fail; then the export is described for
// this connection after nbdkit's rules (nothing writable when read-only; trim, zero and
// fua only when writable; fast zero only with zero).
int SimPlugin::open(core::ConnectionId conn, const core::PluginCall& call, bool faults) {
  if (faults && prng_.chance(profile_.open_error)) {
    static constexpr std::array errs{EACCES, ENOENT, EIO};
    return errs[prng_.below(errs.size())];
  }
  const std::string name = call.export_name.empty() ? export_name(0) : std::string(call.export_name);
  auto it = disks_.find(name);
  if (it == disks_.end()) return ENOENT;
  if (!call.info) return EINVAL;
  core::ExportInfo& info = *call.info;
  info.name = name;
  info.description = call.want_description ? "simulated " + name : std::string();
  const std::uint64_t shrink = profile_.size_shrink_max ? prng_.below(profile_.size_shrink_max + 1) : 0;
  info.size_bytes = it->second.size() - 512 * shrink;
  core::Capabilities c;
  c.can_write = !call.readonly && !profile_.plugin_read_only;
  c.can_flush = profile_.can_flush;
  c.can_trim = profile_.can_trim;
  c.can_zero = profile_.can_zero;
  c.can_fast_zero = profile_.can_fast_zero;
  c.can_fua = profile_.can_fua;
  c.can_cache = profile_.can_cache;
  c.can_extents = profile_.can_extents;
  c.can_multi_conn = profile_.can_multi_conn;
  if (profile_.caps_vary) {
    c.can_flush = prng_.coin();
    c.can_trim = prng_.coin();
    c.can_zero = prng_.coin();
    c.can_fast_zero = prng_.coin();
    c.can_fua = prng_.coin();
    c.can_cache = prng_.coin();
    c.can_multi_conn = prng_.coin();
    c.is_rotational = prng_.coin();
  }
  c.can_trim = c.can_trim && c.can_write;
  c.can_zero = c.can_zero && c.can_write;
  c.can_fua = c.can_fua && c.can_write;
  c.can_fast_zero = c.can_fast_zero && c.can_zero;
  info.caps = c;
  info.block_size = profile_.block_min ? core::BlockSize{profile_.block_min, 4096, 32u << 20} : core::BlockSize{};
  export_of_[conn] = &it->second;
  return 0;
}

int SimPlugin::run(core::ConnectionId conn, const core::PluginCall& call, bool faults, PluginEffects& fx) {
  using core::CallKind;
  callback_effects(call, faults, fx);
  switch (call.kind) {
    case CallKind::preconnect:
      return faults && prng_.chance(profile_.preconnect_error) ? (prng_.coin() ? EACCES : EPERM) : 0;
    case CallKind::list_exports: return list(call, faults);
    case CallKind::open: return open(conn, call, faults);
    case CallKind::close: export_of_.erase(conn); return 0;
    default: break;
  }
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
      d.read(off, call.buffer.first(n));
      return 0;
    case CallKind::pwrite:
      if (!in_range || call.buffer.size() < n) return EINVAL;
      d.write(off, call.buffer.first(n));
      return 0;
    case CallKind::zero:
      if (!in_range) return EINVAL;
      if ((call.flags & core::call_flag::fast_zero) && prng_.coin()) return ENOTSUP;
      d.fill(off, n, std::byte{0});
      return 0;
    case CallKind::trim:
      if (!in_range) return EINVAL;
      // Contents are unspecified after TRIM: leave junk so the oracle's rule is exercised.
      if (prng_.coin()) d.fill(off, n, std::byte{0xa5});
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
        const bool zero = d.all_zero(at, len);
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
