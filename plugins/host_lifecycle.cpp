// PluginHost's lifecycle calls: preconnect, list_exports, open (with default_export and
// every query nbdkit makes after it) and close, for one connection each time, as nbdkit's
// server/backend.c and protocol-handshake.c do. None of them is a connected callback, so
// a disconnect() from any of them is ignored; a plugin refuses by returning an errno.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>

#include "plugins/host_context.hpp"
#include "plugins/plugin_host.hpp"

namespace nbdd::plugin {
namespace {

bool valid_export_string(std::string_view s) {
  return s.size() <= export_string_max && s.find('\0') == std::string_view::npos;
}

// A can_* failure is -errno; anything else negative is a plugin bug reported as EIO.
int errno_of_answer(int answer) { return answer < 0 && answer > -4096 ? -answer : EIO; }

bool power_of_two(std::uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

// nbdkit's rules for a block_size answer (nbdkit-plugin(3), server/plugins.c): all zero
// means "no constraints"; otherwise what is wrong with it, or nullptr.
const char* block_size_problem(std::uint32_t minimum, std::uint32_t preferred, std::uint32_t maximum) {
  if (minimum == 0 && preferred == 0 && maximum == 0) return nullptr;
  if (minimum < 1 || minimum > 65536 || !power_of_two(minimum))
    return "minimum must be a power of 2 between 1 and 64K";
  if (!power_of_two(preferred) || preferred < 512 || preferred > 32u * 1024 * 1024)
    return "preferred must be a power of 2 between 512 and 32M";
  if (maximum != 0xffffffffu && maximum % minimum != 0) return "maximum must be -1 or a multiple of minimum";
  if (minimum > preferred || preferred > maximum) return "minimum <= preferred <= maximum is required";
  return nullptr;
}

// What list_exports() writes into: the core's vector, capped at `max` new entries, with
// every name and description checked, and the plugin's wish for the default export noted.
class HostExportList final : public ExportList {
 public:
  HostExportList(std::vector<core::ExportEntry>& out, std::size_t max) : out_(out), start_(out.size()), max_(max) {}

  bool add(std::string_view name, std::string_view description) override {
    if (!valid_export_string(name) || !valid_export_string(description)) return false;
    if (out_.size() - start_ >= max_) return false;
    out_.push_back(core::ExportEntry{std::string(name), std::string(description)});
    return true;
  }
  void use_default() override { use_default_ = true; }

  bool default_wanted() const { return use_default_; }
  void discard() { out_.resize(start_); }

 private:
  std::vector<core::ExportEntry>& out_;
  std::size_t start_;
  std::size_t max_;
  bool use_default_ = false;
};

}  // namespace

// Attaches "STEP: strerror" unless the plugin already said why, so the driver's log line
// names the step that failed.
static int step_failed(std::string_view step, int err) {
  std::string& message = detail::thread_error();
  if (message.empty()) message = std::string(step) + ": " + std::strerror(err);
  return err;
}

int PluginHost::run_preconnect(ConnectionPluginState& conn, const core::PluginCall& call) {
  detail::ScopedCallContext context(this, conn.id, false);
  return detail::sanitize_errno(plugin_->preconnect(call.readonly));
}

// nbdkit's default_export with its checks: nullopt (the plugin refused, or answered a
// string no client could be told) means "" is not an export.
std::optional<std::string> PluginHost::resolved_default_export(bool readonly) {
  std::optional<std::string> name = plugin_->default_export(readonly);
  if (name && !valid_export_string(*name)) {
    debug("default_export: ignoring a name longer than 4096 bytes or containing NUL");
    name.reset();
  }
  return name;
}

int PluginHost::run_list_exports(ConnectionPluginState& conn, const core::PluginCall& call) {
  if (call.exports == nullptr) {
    debug("list_exports call without an exports vector");
    return EIO;
  }
  detail::ScopedCallContext context(this, conn.id, false);
  HostExportList list(*call.exports, call.exports_max);
  if (int r = detail::sanitize_errno(plugin_->list_exports(call.readonly, list)); r != 0) {
    list.discard();
    return step_failed("list_exports", r);
  }
  if (list.default_wanted()) {
    // -e NAME replaces the default export in the listing only; "" still opens the export
    // default_export() names.
    std::optional<std::string> name = export_name_option_;
    if (!name) name = resolved_default_export(call.readonly);
    if (name) list.add(*name, {});
  }
  return 0;
}

int PluginHost::run_open(ConnectionPluginState& conn, const core::PluginCall& call) {
  if (conn.handle) {  // replacing the handle would skip the plugin's close()
    debug("open on a connection that is already open refused");
    return EIO;
  }
  detail::ScopedCallContext context(this, conn.id, false);
  core::ExportInfo info;
  info.name = std::string(call.export_name);
  if (info.name.empty()) {
    std::optional<std::string> name = resolved_default_export(call.readonly);
    if (!name) {
      if (detail::thread_error().empty()) detail::thread_error() = "default export (\"\") not permitted";
      return ENOENT;
    }
    info.name = std::move(*name);
  }
  std::unique_ptr<Handle> handle;
  if (int r = detail::sanitize_errno(plugin_->open(call.readonly, info.name, handle)); r != 0)
    return step_failed("open", r);
  conn.handle = handle ? std::move(handle) : std::make_unique<Handle>();
  conn.readonly = call.readonly;
  if (int r = query_export(conn, call, info); r != 0) {
    // The client never sees this handle: close it here, keeping the reason of the failure
    // (close may report errors of its own).
    std::string reason = detail::thread_error();
    plugin_->close(*conn.handle);
    conn.handle.reset();
    detail::thread_error() = std::move(reason);
    return r;
  }
  if (call.info != nullptr) *call.info = std::move(info);
  return 0;
}

// Everything nbdkit asks after a successful open, in its order, with its dependencies:
// trim, zero and FUA only when writable, fast zero only with zero, multi-conn only when
// connections may run in parallel. 0 or the first errno.
int PluginHost::query_export(ConnectionPluginState& conn, const core::PluginCall& call, core::ExportInfo& info) {
  Handle& h = *conn.handle;
  if (int r = detail::sanitize_errno(plugin_->get_size(h, info.size_bytes)); r != 0) return step_failed("get_size", r);
  if (info.size_bytes > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    detail::thread_error() = "get_size: " + std::to_string(info.size_bytes) + " is larger than 2^63-1";
    return EIO;
  }

  const char* failed_step = nullptr;
  int failed_err = 0;
  // One can_* answer, or 0 once an earlier one failed (nothing more is asked then).
  auto ask = [&](const char* step, auto&& callback) -> int {
    if (failed_step != nullptr) return 0;
    const int answer = callback();
    if (answer >= 0) return answer;
    failed_step = step;
    failed_err = errno_of_answer(answer);
    return 0;
  };
  core::Capabilities& caps = info.caps;
  caps.can_write = !call.readonly && ask("can_write", [&] { return plugin_->can_write(h); }) > 0;
  // WRITE_ZEROES is offered on a writable export unless can_zero says zero_none; otherwise
  // can_zero only says whether the plugin's zero() is called or nbdd writes zeroes instead
  // (nbdkit's ZERO_EMULATE).
  const int zero = caps.can_write ? ask("can_zero", [&] { return plugin_->can_zero(h); }) : 0;
  conn.zero_native = zero > 0 && zero != zero_none;
  caps.can_zero = caps.can_write && zero != zero_none;
  caps.can_fast_zero = caps.can_zero && ask("can_fast_zero", [&] { return plugin_->can_fast_zero(h); }) > 0;
  caps.can_trim = caps.can_write && ask("can_trim", [&] { return plugin_->can_trim(h); }) > 0;
  const int fua = caps.can_write ? ask("can_fua", [&] { return plugin_->can_fua(h); }) : fua_none;
  caps.can_flush = ask("can_flush", [&] { return plugin_->can_flush(h); }) > 0;
  caps.is_rotational = ask("is_rotational", [&] { return plugin_->is_rotational(h); }) > 0;
  caps.can_multi_conn = ask("can_multi_conn", [&] { return plugin_->can_multi_conn(h); }) > 0 &&
                        plugin_->thread_model() > core::ThreadModel::serialize_connections;
  const int cache = ask("can_cache", [&] { return plugin_->can_cache(h); });
  caps.can_extents = ask("can_extents", [&] { return plugin_->can_extents(h); }) > 0;
  if (failed_step != nullptr) return step_failed(failed_step, failed_err);
  conn.fua_mode = std::min(fua, fua_native);
  conn.cache_mode = std::min(cache, cache_native);
  conn.can_extents = caps.can_extents;
  caps.can_fua = conn.fua_mode != fua_none;
  caps.can_cache = conn.cache_mode != cache_none;

  if (call.want_description) {
    info.description = plugin_->export_description(h);
    if (!valid_export_string(info.description)) {
      debug("export_description: ignoring a text longer than 4096 bytes or containing NUL");
      info.description.clear();
    }
  }

  core::BlockSize& bs = info.block_size;
  if (int r = detail::sanitize_errno(plugin_->block_size(h, bs.minimum, bs.preferred, bs.maximum)); r != 0)
    return step_failed("block_size", r);
  if (const char* problem = block_size_problem(bs.minimum, bs.preferred, bs.maximum)) {
    detail::thread_error() = std::string("block_size: ") + problem;
    return EINVAL;
  }
  return 0;
}

int PluginHost::run_close(ConnectionPluginState& conn) {
  detail::ScopedCallContext context(this, conn.id, false);
  if (conn.handle) plugin_->close(*conn.handle);
  conn.handle.reset();
  return 0;
}

}  // namespace nbdd::plugin
