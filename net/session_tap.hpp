// A tap on every ConnectionSession's pump: what its core::Connection was fed and what it
// returned, in order, as the driver saw it. Off (null) in nbdd; nbdd-checked (tests/checked)
// installs one that runs the simulator's InvariantChecker over every connection of the real
// daemon, so a transport bug (a reply after a forced close, a completion fed after a
// disconnect) fails a test the way a core bug fails a seed. net/ only defines the hook: it
// never depends on sim/.
#pragma once
#include <string_view>

#include "core/action.hpp"
#include "core/connection.hpp"
#include "core/input.hpp"

namespace nbdd::net {

class SessionTap {
 public:
  virtual ~SessionTap() = default;
  // Before the connection's first action; `config` is what its core was built with.
  virtual void on_connection(const core::ConnectionConfig& config, std::string_view plugin_name) = 0;
  virtual void on_input(core::ConnectionId id, const core::Input& input) = 0;  // before handle()
  virtual void on_action(core::ConnectionId id, const core::Action& action) = 0;  // before it runs
  virtual void on_status(core::ConnectionId id, core::Status status) = 0;  // after each drain
};

// Installs the process's tap; call before the daemon starts (before any thread), once.
void install_session_tap(SessionTap* tap);
// The installed tap, or null (always null in nbdd).
SessionTap* session_tap();

}  // namespace nbdd::net
