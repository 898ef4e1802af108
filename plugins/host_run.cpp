// PluginHost::run(): the one place a core::PluginCall becomes plugin callbacks. Lifecycle
// kinds go to host_lifecycle.cpp; the data calls are here, with the nbdkit-like defaults
// every driver shares (zero by pwrite, FUA by flush, cache by pread, extents reported as
// data when the plugin has none).
#include <algorithm>
#include <array>
#include <cerrno>

#include "plugins/extent_collector.hpp"
#include "plugins/host_context.hpp"
#include "plugins/plugin_host.hpp"

namespace nbdd::plugin {
namespace {

// Zero emulation writes from this block. It is never written to (pwrite takes a const
// span), so one process-wide block serves every thread without locks or allocation, and
// as untouched .bss it costs no memory until read.
constexpr std::size_t zero_chunk_bytes = 1 << 20;
std::array<std::byte, zero_chunk_bytes> zero_chunk{};

// Cache emulation preads into a per-thread scratch buffer, allocated once per worker.
constexpr std::size_t cache_chunk_bytes = 1 << 20;

bool is_enotsup(int r) { return r == ENOTSUP || r == EOPNOTSUPP; }

}  // namespace

// A call after unload is a driver bug; refusing it keeps the plugin's promise that
// nothing follows unload() (checked by tests, and by the simulator's invariants).
bool PluginHost::refused_after_unload() {
  detail::thread_error().clear();
  if (!unloaded_flag_.load(std::memory_order_acquire)) return false;
  debug("plugin call after unload refused");
  return true;
}

int PluginHost::run(ConnectionPluginState& conn, const core::PluginCall& call) {
  if (refused_after_unload()) return EIO;
  switch (call.kind) {
    case core::CallKind::preconnect: return run_preconnect(conn, call);
    case core::CallKind::list_exports: return run_list_exports(conn, call);
    case core::CallKind::open: return run_open(conn, call);
    case core::CallKind::close: return run_close(conn);
    default: return run_connected(conn, call);
  }
}

int PluginHost::lend(ConnectionPluginState& conn, const core::PluginCall& call, ReadLoan& loan) {
  loan.clear();
  if (refused_after_unload()) return EIO;
  if (call.kind != core::CallKind::pread || !conn.handle) {
    debug("lend for a call that is not a pread on an open connection");
    return EIO;
  }
  detail::ScopedCallContext context(this, conn.id, true);
  const int r = detail::sanitize_errno(plugin_->pread_lend(*conn.handle, call.count, call.offset, 0, loan));
  bool sound = loan.bytes() == call.count;
  for (const ReadLoan::Piece& piece : loan.pieces()) sound = sound && piece.data != nullptr && piece.size > 0;
  if (r == 0 && sound) return 0;
  // A plugin that fails but keeps pieces, or lends the wrong bytes, has a bug: take back
  // what it lent, and fail the read rather than send the client something else.
  if (!loan.empty()) return_loan(loan);
  if (r == 0) {
    error("pread_lend: the pieces do not cover the request");
    return EIO;
  }
  return is_enotsup(r) ? ENOTSUP : r;
}

void PluginHost::return_loan(ReadLoan& loan) {
  if (loan.empty()) return;
  plugin_->return_loan(loan);
  loan.clear();
}

int PluginHost::run_connected(ConnectionPluginState& conn, const core::PluginCall& call) {
  if (!conn.handle) {
    debug("plugin call on a connection that is not open");
    return EIO;
  }
  const bool data_call = call.kind == core::CallKind::pread || call.kind == core::CallKind::pwrite;
  if (data_call && call.buffer.size() < call.count) {
    debug("plugin call with a buffer shorter than its count");
    return EIO;
  }
  detail::ScopedCallContext context(this, conn.id, true);
  Handle& h = *conn.handle;
  const std::uint32_t flags = call.flags;
  switch (call.kind) {
    case core::CallKind::pread:
      return detail::sanitize_errno(plugin_->pread(h, call.buffer.first(call.count), call.offset, 0));
    case core::CallKind::pwrite:
      return write_with_fua(conn, call.buffer.first(call.count), call.offset, flags);
    case core::CallKind::flush:
      return detail::sanitize_errno(plugin_->flush(h, 0));
    case core::CallKind::trim: {
      const bool emulate_fua = (flags & flag::fua) && conn.fua_mode != fua_native;
      int r = detail::sanitize_errno(
          plugin_->trim(h, call.count, call.offset, emulate_fua ? flags & ~flag::fua : flags));
      if (r == 0 && emulate_fua) r = detail::sanitize_errno(plugin_->flush(h, 0));
      return r;
    }
    case core::CallKind::zero: return zero_with_fallback(conn, call);
    case core::CallKind::cache: return cache_with_fallback(conn, call);
    case core::CallKind::extents: return extents_with_fallback(conn, call);
    case core::CallKind::preconnect:
    case core::CallKind::list_exports:
    case core::CallKind::open:
    case core::CallKind::close: break;  // lifecycle: never a connected callback
  }
  return EIO;
}

// FUA without native support: write, then flush (nbdkit's NBDKIT_FUA_EMULATE).
int PluginHost::write_with_fua(ConnectionPluginState& conn, std::span<const std::byte> data,
                               std::uint64_t offset, std::uint32_t flags) {
  Handle& h = *conn.handle;
  const bool emulate_fua = (flags & flag::fua) && conn.fua_mode != fua_native;
  int r = detail::sanitize_errno(plugin_->pwrite(h, data, offset, emulate_fua ? flags & ~flag::fua : flags));
  if (r == 0 && emulate_fua) r = detail::sanitize_errno(plugin_->flush(h, 0));
  return r;
}

// zero: the plugin's own (when its can_zero said so), else, or when it answers ENOTSUP,
// pwrite of zeroes, unless the client asked for a fast zero, which must then fail ENOTSUP
// at once (NBD_CMD_FLAG_FAST_ZERO).
int PluginHost::zero_with_fallback(ConnectionPluginState& conn, const core::PluginCall& call) {
  Handle& h = *conn.handle;
  const std::uint32_t flags = call.flags;
  const bool emulate_fua = (flags & flag::fua) && conn.fua_mode != fua_native;
  const std::uint32_t plugin_flags = emulate_fua ? flags & ~flag::fua : flags;
  int r = conn.zero_native ? plugin_->zero(h, call.count, call.offset, plugin_flags) : ENOTSUP;
  if (!is_enotsup(r)) {
    r = detail::sanitize_errno(r);
    if (r == 0 && emulate_fua) r = detail::sanitize_errno(plugin_->flush(h, 0));
    return r;
  }
  if (flags & flag::fast_zero) return ENOTSUP;
  std::uint64_t done = 0;
  while (done < call.count) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(call.count - done, zero_chunk_bytes));
    const bool last = done + n == call.count;
    const std::uint32_t write_flags = last ? (plugin_flags & flag::fua) : 0;
    r = detail::sanitize_errno(plugin_->pwrite(h, std::span<const std::byte>(zero_chunk.data(), n),
                                               call.offset + done, write_flags));
    if (r != 0) return r;
    done += n;
  }
  if (emulate_fua) return detail::sanitize_errno(plugin_->flush(h, 0));
  return 0;
}

int PluginHost::extents_with_fallback(ConnectionPluginState& conn, const core::PluginCall& call) {
  if (call.extents == nullptr) {
    debug("extents call without an extents vector");
    return EIO;
  }
  std::vector<core::Extent>& out = *call.extents;
  out.clear();
  if (call.count == 0) return 0;
  if (!conn.can_extents) {
    // No extents callback: everything is allocated data (NBD base:allocation says so).
    out.push_back(core::Extent{call.offset, call.count, 0});
    return 0;
  }
  const bool req_one = call.flags & flag::req_one;
  ExtentCollector collector(out, call.offset, call.count, call.extents_max, req_one);
  int r = detail::sanitize_errno(
      plugin_->extents(*conn.handle, call.count, call.offset, call.flags & flag::req_one, collector));
  if (r != 0) return r;
  if (collector.saw_gap() || out.empty()) {
    error(collector.saw_gap() ? "extents: the plugin left a gap" : "extents: the plugin reported no extent");
    out.clear();
    return EIO;
  }
  return 0;
}

int PluginHost::cache_with_fallback(ConnectionPluginState& conn, const core::PluginCall& call) {
  Handle& h = *conn.handle;
  if (conn.cache_mode == cache_native) return detail::sanitize_errno(plugin_->cache(h, call.count, call.offset, 0));
  if (conn.cache_mode != cache_emulate) return 0;  // advisory: nothing to do
  thread_local std::vector<std::byte> scratch;
  if (scratch.size() < cache_chunk_bytes) scratch.resize(cache_chunk_bytes);
  std::uint64_t done = 0;
  while (done < call.count) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(call.count - done, cache_chunk_bytes));
    const int r = detail::sanitize_errno(plugin_->pread(h, std::span(scratch.data(), n), call.offset + done, 0));
    if (r != 0) return r;
    done += n;
  }
  return 0;
}

}  // namespace nbdd::plugin
