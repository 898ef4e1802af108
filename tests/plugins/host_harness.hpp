// Drives a PluginHost the way net/ and sim/ do (start, run PluginCalls), recording what
// the plugin asked of the server through the hooks. Thread-safe.
#pragma once
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "plugins/plugin_host.hpp"

namespace nbdd::test {

using plugin::ConnectionPluginState;

class HostHarness {
 public:
  explicit HostHarness(std::unique_ptr<plugin::Plugin> p) : plugin_(p.get()) {
    plugin::HostHooks hooks;
    hooks.shutdown = [this] { shutdowns.fetch_add(1); };
    hooks.disconnect = [this](core::ConnectionId id, bool force) {
      std::lock_guard lock(mutex_);
      disconnects_.emplace_back(id, force);
    };
    hooks.debug = [this](std::string_view line) {
      std::lock_guard lock(mutex_);
      debug_lines_.emplace_back(line);
    };
    host = std::make_unique<plugin::PluginHost>(std::move(p), std::move(hooks));
  }

  template <typename T>
  T& plugin_as() { return static_cast<T&>(*plugin_); }

  std::string start(const std::vector<std::string>& args) { return host->start(args); }

  int open(ConnectionPluginState& c, bool readonly = false, std::string_view export_name = "",
           core::ExportInfo* info = nullptr, bool want_description = false) {
    core::PluginCall call;
    call.kind = core::CallKind::open;
    call.readonly = readonly;
    call.export_name = export_name;
    call.info = info;
    call.want_description = want_description;
    return host->run(c, call);
  }
  int preconnect(ConnectionPluginState& c, bool readonly = false) {
    core::PluginCall call;
    call.kind = core::CallKind::preconnect;
    call.readonly = readonly;
    return host->run(c, call);
  }
  int list_exports(ConnectionPluginState& c, std::vector<core::ExportEntry>& out, bool readonly = false,
                   std::uint32_t max = 10000) {
    core::PluginCall call;
    call.kind = core::CallKind::list_exports;
    call.readonly = readonly;
    call.exports = &out;
    call.exports_max = max;
    return host->run(c, call);
  }
  // What one client would be told about an export: open (with the description), close.
  int probe(core::ExportInfo& info, bool readonly = false, std::string_view export_name = "") {
    ConnectionPluginState c;
    const int r = open(c, readonly, export_name, &info, true);
    if (r == 0) close(c);
    return r;
  }
  // The names of list_exports' answer ("error N" first when it failed).
  std::vector<std::string> listed_names(bool readonly = false) {
    ConnectionPluginState c;
    std::vector<core::ExportEntry> out;
    const int r = list_exports(c, out, readonly);
    std::vector<std::string> names;
    if (r != 0) names.push_back("error " + std::to_string(r));
    for (const auto& e : out) names.push_back(e.name);
    return names;
  }
  int close(ConnectionPluginState& c) { return simple(c, core::CallKind::close, 0, 0, 0); }
  int pread(ConnectionPluginState& c, std::span<std::byte> buf, std::uint64_t offset) {
    core::PluginCall call;
    call.kind = core::CallKind::pread;
    call.offset = offset;
    call.count = buf.size();
    call.buffer = buf;
    return host->run(c, call);
  }
  // A pread answered by a loan (PluginHost::lend); `buf` is what the driver would otherwise fill.
  int lend(ConnectionPluginState& c, std::span<std::byte> buf, std::uint64_t offset, plugin::ReadLoan& loan) {
    core::PluginCall call;
    call.kind = core::CallKind::pread;
    call.offset = offset;
    call.count = buf.size();
    call.buffer = buf;
    return host->lend(c, call, loan);
  }
  // The bytes a loan lends, in order.
  static std::vector<std::byte> flatten(const plugin::ReadLoan& loan) {
    std::vector<std::byte> out;
    for (const auto& piece : loan.pieces()) out.insert(out.end(), piece.data, piece.data + piece.size);
    return out;
  }
  int pwrite(ConnectionPluginState& c, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t flags = 0) {
    core::PluginCall call;
    call.kind = core::CallKind::pwrite;
    call.offset = offset;
    call.count = buf.size();
    call.flags = flags;
    // The core lends a mutable slot buffer; the plugin receives it as const.
    call.buffer = std::span<std::byte>(const_cast<std::byte*>(buf.data()), buf.size());
    return host->run(c, call);
  }
  int flush(ConnectionPluginState& c) { return simple(c, core::CallKind::flush, 0, 0, 0); }
  int trim(ConnectionPluginState& c, std::uint64_t count, std::uint64_t offset, std::uint32_t flags = 0) {
    return simple(c, core::CallKind::trim, count, offset, flags);
  }
  int zero(ConnectionPluginState& c, std::uint64_t count, std::uint64_t offset, std::uint32_t flags = 0) {
    return simple(c, core::CallKind::zero, count, offset, flags);
  }
  int cache(ConnectionPluginState& c, std::uint64_t count, std::uint64_t offset) {
    return simple(c, core::CallKind::cache, count, offset, 0);
  }
  int extents(ConnectionPluginState& c, std::uint64_t count, std::uint64_t offset, std::uint32_t flags,
              std::vector<core::Extent>& out, std::uint32_t max = 0) {
    core::PluginCall call;
    call.kind = core::CallKind::extents;
    call.offset = offset;
    call.count = count;
    call.flags = flags;
    call.extents = &out;
    call.extents_max = max;
    return host->run(c, call);
  }

  std::vector<std::pair<core::ConnectionId, bool>> disconnects() const {
    std::lock_guard lock(mutex_);
    return disconnects_;
  }
  bool debug_contains(std::string_view text) const {
    std::lock_guard lock(mutex_);
    for (const auto& l : debug_lines_)
      if (l.find(text) != std::string::npos) return true;
    return false;
  }

  std::atomic<int> shutdowns{0};

 private:
  int simple(ConnectionPluginState& c, core::CallKind kind, std::uint64_t count, std::uint64_t offset,
             std::uint32_t flags) {
    core::PluginCall call;
    call.kind = kind;
    call.count = count;
    call.offset = offset;
    call.flags = flags;
    return host->run(c, call);
  }

  plugin::Plugin* plugin_;
  mutable std::mutex mutex_;
  std::vector<std::pair<core::ConnectionId, bool>> disconnects_;
  std::vector<std::string> debug_lines_;

 public:
  // Last member: destroyed first, while the hook targets above still exist.
  std::unique_ptr<plugin::PluginHost> host;
};

inline std::vector<std::byte> bytes_of(std::string_view s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}

inline std::vector<std::byte> filled(std::size_t n, unsigned char value) {
  return std::vector<std::byte>(n, std::byte{value});
}

}  // namespace nbdd::test
