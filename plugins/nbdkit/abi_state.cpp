#include "plugins/nbdkit/abi_state.hpp"

#include <atomic>
#include <cstdio>
#include <string>

#include "plugins/host_context.hpp"

namespace nbdd::plugin::nbdkit_abi {
namespace {

std::atomic<Host*> g_host{nullptr};
std::atomic<bool> g_configured{false};
std::atomic<bool> g_stdio_in_use{false};

}  // namespace

Host* active_host() { return g_host.load(std::memory_order_acquire); }
void set_active_host(Host* host) { g_host.store(host, std::memory_order_release); }

core::ConnectionId current_connection() {
  const detail::CallContext& context = detail::current_call();
  return context.host != nullptr ? context.id : 0;
}

bool in_connected_callback() {
  const detail::CallContext& context = detail::current_call();
  return context.host != nullptr && context.connected;
}

const char*& current_export_name() {
  thread_local const char* name = nullptr;
  return name;
}

int& thread_set_error() {
  thread_local int err = 0;
  return err;
}

void set_configured(bool configured) { g_configured.store(configured); }
void set_stdio_in_use(bool in_use) { g_stdio_in_use.store(in_use); }
bool stdio_safe() { return !g_configured.load() && !g_stdio_in_use.load(); }

void report_error(std::string_view message) {
  Host* host = active_host();
  if (host != nullptr && detail::current_call().host != nullptr) {
    host->error(message);  // attached to the step that fails; the daemon reports it
    return;
  }
  // A plugin's own thread (or no plugin loaded): nobody collects it, so print it, as nbdkit
  // prints every error.
  if (host != nullptr) host->debug(std::string("error: ").append(message));
  std::fprintf(stderr, "nbdd: error: %.*s\n", static_cast<int>(message.size()), message.data());
}

void report_debug(std::string_view message) {
  if (Host* host = active_host()) host->debug(message);
}

}  // namespace nbdd::plugin::nbdkit_abi
