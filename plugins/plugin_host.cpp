// PluginHost: start-up (load/config/config_complete/get_ready), unload, and the Host
// interface the plugin calls back into. Lifecycle calls live in host_lifecycle.cpp, data
// calls in host_run.cpp.
#include "plugins/plugin_host.hpp"

#include <cctype>
#include <cstring>

#include "plugins/host_context.hpp"
#include "plugins/nbdkit/connection_table.hpp"

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
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    std::string_view key, value;
    if (!split_key_value(arg, key, value)) {
      key = plugin_->magic_config_key();
      value = arg;
      // nbdkit's rule for plugins without a magic key (the language plugins: `nbdkit perl
      // x.pl`): the first bare argument is script=, any later one is an error.
      if (key.empty() && i == 0) key = "script";
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

void PluginHost::set_export_name_option(std::string name) { export_name_option_ = std::move(name); }

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

// The per-connection TLS state lives in the connection table nbdkit's ABI keeps
// (net/ marks it when a connection's TLS handshake succeeds).
bool PluginHost::is_tls() const {
  const detail::CallContext& context = detail::current_call();
  return context.host == this && context.id != 0 && nbdkit_abi::connection_is_tls(context.id);
}

const std::string& PluginHost::last_error() { return detail::thread_error(); }

}  // namespace nbdd::plugin
