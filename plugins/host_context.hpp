// Thread-local state of the plugin call running on this thread: which host and connection
// it belongs to and whether it is a connected callback (after open, before close). Host::
// disconnect() reads it to find "the current connection", as nbdkit_disconnect(3) does.
// Internal to plugins/; plugin authors never see it.
#pragma once
#include <cstdint>
#include <string>

#include "core/call_gate.hpp"

namespace nbdd::plugin {
class PluginHost;
}

namespace nbdd::plugin::detail {

struct CallContext {
  const PluginHost* host = nullptr;
  core::ConnectionId id = 0;
  bool connected = false;  // false during open/close/preconnect/list_exports/start-up
};

CallContext& current_call();

// Sets the context for one callback and restores the previous one (a plugin may drive a
// nested host, e.g. in tests), so the context never leaks past the call.
class ScopedCallContext {
 public:
  ScopedCallContext(const PluginHost* host, core::ConnectionId id, bool connected)
      : saved_(current_call()) {
    current_call() = CallContext{host, id, connected};
  }
  ~ScopedCallContext() { current_call() = saved_; }
  ScopedCallContext(const ScopedCallContext&) = delete;
  ScopedCallContext& operator=(const ScopedCallContext&) = delete;

 private:
  CallContext saved_;
};

// The message attached by Host::error() on this thread.
std::string& thread_error();

// Callbacks return 0 or a positive errno; anything else (negative, absurdly large) is a
// plugin bug that must not reach the wire as a strange value, so it becomes EIO.
inline int sanitize_errno(int r) { return (r >= 0 && r < 4096) ? r : 5 /* EIO */; }

}  // namespace nbdd::plugin::detail
