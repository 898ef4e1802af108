// core::ServerState: the sans-IO server lifecycle, shared by the daemon and the simulator.
//
//   accepting -> draining -> unloading -> done   (only forward, through enter())
//
// After shutdown no connection is admitted; every live connection is told to end
// gracefully. Shutdown is forced (every live connection told so, once) by a second request,
// or when the grace period after the first one ran out with connections still live
// (deadline()/on_deadline(): the driver arms a timer). The plugin is unloaded exactly once,
// after the last connection finished (its close returned); nothing happens after unload.
#pragma once
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <variant>

#include "core/call_gate.hpp"
#include "core/limits.hpp"
#include "core/time.hpp"

namespace nbdd::core {

enum class ServerPhase : std::uint8_t { accepting, draining, unloading, done };
const char* to_string(ServerPhase phase);

namespace server_action {
struct StopAccepting {};                      // close listeners
struct EndConnection { ConnectionId id; bool force; };  // feed ShutdownRequested / ShutdownForced
struct Unload {};                             // call the plugin's unload; then unload_done()
struct Exit {};                               // the process may exit (status 0)
}  // namespace server_action
using ServerAction = std::variant<server_action::StopAccepting, server_action::EndConnection,
                                  server_action::Unload, server_action::Exit>;
std::string describe(const ServerAction& act);

class ServerState {
 public:
  // A transport accepted a client. Returns its id, or nullopt when the server no longer
  // admits connections (the driver closes the socket at once), or when max_connections
  // is reached.
  std::optional<ConnectionId> admit();
  // The connection emitted action::Finished.
  void finished(ConnectionId id);
  // SIGTERM/SIGINT, the plugin's shutdown(), or --run's command exiting. The first
  // request is graceful and starts the grace period (deadline()); any later one forces
  // every live connection.
  void shutdown_requested(Instant now);
  // When the grace period of a graceful shutdown runs out, while connections are still
  // live and nothing forced them yet; nullopt otherwise. Arm a timer; call on_deadline().
  std::optional<Instant> deadline() const;
  // The timer fired: forces every live connection if the deadline has passed (an early or
  // stale call does nothing).
  void on_deadline(Instant now);
  void unload_done();
  std::optional<ServerAction> next_action();

  ServerPhase phase() const { return phase_; }
  std::size_t live_connections() const { return live_.size(); }
  void set_max_connections(std::size_t max) { max_connections_ = max; }
  // How long a graceful shutdown waits for live connections before forcing them
  // (--grace-period, Limits::grace_period by default).
  void set_grace_period(Duration grace) { grace_period_ = grace; }
  // Shutdown was forced (second request or grace deadline): from now on the driver bounds
  // the time to exit (the daemon's --exit-timeout).
  bool forced() const { return forced_; }

 private:
  void enter(ServerPhase next);  // the one place the phase changes; asserts the step is legal
  void force();                  // EndConnection{force} to every live connection, once
  void advance();
  ServerPhase phase_ = ServerPhase::accepting;
  ConnectionId next_id_ = 1;
  std::set<ConnectionId> live_;  // ordered: broadcast order is deterministic
  std::deque<ServerAction> actions_;
  std::size_t max_connections_ = 0;  // 0 = unlimited
  Duration grace_period_ = Limits{}.grace_period;
  std::optional<Instant> grace_ends_;  // set by the first shutdown request
  bool forced_ = false;
  bool unload_emitted_ = false;
  bool exit_emitted_ = false;
};

}  // namespace nbdd::core
