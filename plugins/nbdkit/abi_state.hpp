// Process-wide state behind nbdkit's C functions (nbdkit_error, nbdkit_shutdown, ...).
// nbdkit's plugin ABI has no "host" argument: a plugin calls plain global functions, from
// its callbacks and from threads of its own. nbdkit hosts one plugin per process, and so
// does this adaptor: the Host of the loaded nbdkit plugin is published here while it is
// loaded, and the per-callback facts (which connection, which export) are thread-local.
// Internal to plugins/nbdkit.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "core/call_gate.hpp"
#include "plugins/plugin_api.hpp"

namespace nbdd::plugin::nbdkit_abi {

// The Host of the nbdkit plugin that is loaded now, or nullptr. Set by the adaptor's load(),
// cleared after its unload() returned. Any thread.
Host* active_host();
void set_active_host(Host* host);

// The connection the calling thread runs a callback for; 0 outside any connection (start-up,
// unload, a plugin's own thread). nbdd numbers connections from 1.
core::ConnectionId current_connection();
// Whether the calling thread runs a connected callback (after open, before close).
bool in_connected_callback();

// The export name nbdkit_export_name() answers on this thread: set by the adaptor around
// open() and every callback that has a handle (nullptr: none).
const char*& current_export_name();
class ScopedExportName {
 public:
  explicit ScopedExportName(const char* name) : saved_(current_export_name()) { current_export_name() = name; }
  ~ScopedExportName() { current_export_name() = saved_; }
  ScopedExportName(const ScopedExportName&) = delete;
  ScopedExportName& operator=(const ScopedExportName&) = delete;

 private:
  const char* saved_;
};

// nbdkit_set_error()'s thread-local value: cleared before each callback, read after one
// failed (nbdkit's get_error: this, else errno if the plugin preserves it, else EIO).
int& thread_set_error();

// nbdkit_stdio_safe(): false once configuration is over (nbdkit's rule) or when the server
// speaks NBD on stdin/stdout (-s).
void set_configured(bool configured);
void set_stdio_in_use(bool in_use);
bool stdio_safe();

// Message sinks used by nbdkit_error/nbdkit_debug: the host's when a plugin is loaded, else
// stderr (errors only).
void report_error(std::string_view message);
void report_debug(std::string_view message);

}  // namespace nbdd::plugin::nbdkit_abi
