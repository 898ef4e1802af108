// PluginHost: start-up (load/config/config_complete/get_ready), the export catalog, unload,
// and the Host interface the plugin calls back into. Data calls live in host_run.cpp.
#include "plugins/plugin_host.hpp"

#include <cctype>
#include <cstring>

#include "plugins/host_context.hpp"

namespace nbdd::plugin {

namespace detail {
CallContext& current_call() {
  thread_local CallContext context;
  return context;
}
std::string& thread_error() {
  thread_local std::string message;
  return message;
}
}  // namespace detail

namespace {

// "KEY=VALUE" only if KEY looks like a key (nbdkit's rule of thumb: a letter, then letters,
// digits, '_', '-', '.'), so `file=/a=b` splits at the first '=' but `/tmp/x=1.img` does not.
bool split_key_value(const std::string& arg, std::string_view& key, std::string_view& value) {
  const auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  if (!std::isalpha(static_cast<unsigned char>(arg[0]))) return false;
  for (std::size_t i = 1; i < eq; ++i) {
    const unsigned char c = static_cast<unsigned char>(arg[i]);
    if (!std::isalnum(c) && c != '_' && c != '-' && c != '.') return false;
  }
  key = std::string_view(arg).substr(0, eq);
  value = std::string_view(arg).substr(eq + 1);
  return true;
}

bool power_of_two(std::uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

PluginHost::PluginHost(std::unique_ptr<Plugin> plugin, HostHooks hooks)
    : plugin_(std::move(plugin)), hooks_(std::move(hooks)) {}

// A host that is destroyed without an explicit unload() still owes the plugin its unload
// (e.g. start-up failed half way), so temp files and threads of the plugin are cleaned up.
// The hooks are dropped first: whatever they point at may already be gone by now.
PluginHost::~PluginHost() {
  hooks_ = HostHooks{};
  unload();
}

// Formats "<plugin>: <step>: <message>" from the errno and the plugin's error() text.
static std::string failure(const Plugin& plugin, std::string_view step, int err) {
  std::string text = std::string(plugin.name()) + ": " + std::string(step) + ": ";
  const std::string& message = detail::thread_error();
  text += message.empty() ? std::strerror(err) : message;
  return text;
}

std::string PluginHost::start(const std::vector<std::string>& args) {
  detail::ScopedCallContext context(this, 0, false);
  detail::thread_error().clear();
  if (int r = detail::sanitize_errno(plugin_->load(*this)); r != 0) return failure(*plugin_, "load", r);
  loaded_ = true;
  for (const std::string& arg : args) {
    std::string_view key, value;
    if (!split_key_value(arg, key, value)) {
      key = plugin_->magic_config_key();
      value = arg;
      if (key.empty())
        return std::string(plugin_->name()) + ": argument '" + arg +
               "' must be KEY=VALUE (this plugin has no default key)";
    }
    detail::thread_error().clear();
    if (int r = detail::sanitize_errno(plugin_->config(key, value)); r != 0)
      return failure(*plugin_, "config " + std::string(key) + "=" + std::string(value), r);
  }
  detail::thread_error().clear();
  if (int r = detail::sanitize_errno(plugin_->config_complete()); r != 0)
    return failure(*plugin_, "config_complete", r);
  if (int r = detail::sanitize_errno(plugin_->get_ready()); r != 0) return failure(*plugin_, "get_ready", r);
  return {};
}

std::string PluginHost::build_catalog(bool readonly, core::ExportCatalog& out) {
  detail::ScopedCallContext context(this, 0, false);
  detail::thread_error().clear();
  std::vector<ExportEntry> entries;
  if (int r = detail::sanitize_errno(plugin_->list_exports(readonly, entries)); r != 0)
    return failure(*plugin_, "list_exports", r);
  const std::string default_name = plugin_->default_export(readonly);
  bool default_listed = false;
  for (const auto& e : entries) default_listed = default_listed || e.name == default_name;
  // The default export may be unlisted (nbdkit allows it); the catalog must still know it.
  if (!default_listed) entries.push_back({default_name, {}});

  out.exports.clear();
  for (const auto& entry : entries) {
    core::ExportInfo info;
    if (std::string error = probe_export(readonly, entry, info); !error.empty()) return error;
    out.exports.push_back(std::move(info));
  }
  out.default_export = default_name;
  out.read_only = readonly;
  return {};
}

// open/get_size/block_size/can_*/close on one export, as a client connecting would.
std::string PluginHost::probe_export(bool readonly, const ExportEntry& entry, core::ExportInfo& out) {
  const std::string step = "export '" + entry.name + "'";
  std::unique_ptr<Handle> handle;
  if (int r = detail::sanitize_errno(plugin_->open(readonly, entry.name, handle)); r != 0)
    return failure(*plugin_, step + ": open", r);
  if (!handle) handle = std::make_unique<Handle>();
  Handle& h = *handle;
  std::string error;
  auto ask = [&](const char* what, int answer) {
    if (answer < 0 && error.empty()) error = failure(*plugin_, step + ": " + what, -answer);
    return answer > 0;
  };
  std::uint64_t size = 0;
  if (int r = detail::sanitize_errno(plugin_->get_size(h, size)); r != 0) error = failure(*plugin_, step + ": get_size", r);
  std::uint32_t minimum = 0, preferred = 0, maximum = 0;
  if (int r = detail::sanitize_errno(plugin_->block_size(h, minimum, preferred, maximum)); r != 0 && error.empty())
    error = failure(*plugin_, step + ": block_size", r);
  core::Capabilities caps;
  caps.can_write = !readonly && ask("can_write", plugin_->can_write(h));
  caps.can_flush = ask("can_flush", plugin_->can_flush(h));
  caps.can_trim = caps.can_write && ask("can_trim", plugin_->can_trim(h));
  caps.can_zero = caps.can_write && ask("can_zero", plugin_->can_zero(h));
  caps.can_fast_zero = caps.can_zero && ask("can_fast_zero", plugin_->can_fast_zero(h));
  caps.can_fua = caps.can_write && ask("can_fua", plugin_->can_fua(h));
  caps.can_multi_conn = ask("can_multi_conn", plugin_->can_multi_conn(h));
  caps.can_cache = ask("can_cache", plugin_->can_cache(h));
  caps.can_extents = ask("can_extents", plugin_->can_extents(h));
  caps.is_rotational = ask("is_rotational", plugin_->is_rotational(h));
  plugin_->close(h);
  if (!error.empty()) return error;
  if (minimum != 0 && (!power_of_two(minimum) || !power_of_two(preferred) || preferred < minimum ||
                       maximum < preferred || maximum % minimum != 0))
    return std::string(plugin_->name()) + ": " + step + ": inconsistent block_size";
  out.name = entry.name;
  out.description = entry.description;
  out.size_bytes = size;
  out.caps = caps;
  out.block_size = core::BlockSize{minimum, preferred, maximum};
  return {};
}

void PluginHost::unload() {
  std::call_once(unloaded_, [this] {
    unloaded_flag_.store(true, std::memory_order_release);
    if (loaded_) plugin_->unload();
  });
}

void PluginHost::shutdown() {
  if (hooks_.shutdown) hooks_.shutdown();
}

void PluginHost::disconnect(bool force) {
  const detail::CallContext& context = detail::current_call();
  if (context.host == this && context.connected) {
    if (hooks_.disconnect) hooks_.disconnect(context.id, force);
    return;
  }
  // nbdkit_disconnect(3) is only meaningful in a connected callback; elsewhere a plugin
  // refuses the client by returning an error, so a stray call is ignored, not fatal.
  debug(force ? "disconnect(force=true) ignored: not in a connected callback"
              : "disconnect(force=false) ignored: not in a connected callback");
}

void PluginHost::error(std::string_view message) {
  detail::thread_error().assign(message);
  debug(std::string("error: ").append(message));
}

void PluginHost::debug(std::string_view message) {
  if (hooks_.debug) hooks_.debug(message);
}

const std::string& PluginHost::last_error() { return detail::thread_error(); }

}  // namespace nbdd::plugin
