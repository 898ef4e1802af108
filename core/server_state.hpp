// core::ServerState: the sans-IO server lifecycle, shared by the daemon and the simulator.
//
//   accepting -> draining -> unloading -> done   (only forward)
//
// After shutdown no connection is admitted; every live connection is told to end
// gracefully (a second request forces them); the plugin is unloaded exactly once, after
// the last connection finished (its close returned); nothing happens after unload.
#pragma once
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <variant>

#include "core/call_gate.hpp"

namespace nbdd::core {

enum class ServerPhase : std::uint8_t { accepting, draining, unloading, done };
const char* to_string(ServerPhase phase);

namespace server_action {
struct StopAccepting {};                      // close listeners
struct EndConnection { ConnectionId id; bool force; };  // feed ShutdownRequested / DisconnectRequested{true}
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
  // request is graceful; any later one forces every live connection.
  void shutdown_requested();
  void unload_done();
  std::optional<ServerAction> next_action();

  ServerPhase phase() const { return phase_; }
  std::size_t live_connections() const { return live_.size(); }
  void set_max_connections(std::size_t max) { max_connections_ = max; }
  bool forced() const { return forced_; }

 private:
  void advance();
  ServerPhase phase_ = ServerPhase::accepting;
  ConnectionId next_id_ = 1;
  std::set<ConnectionId> live_;  // ordered: broadcast order is deterministic
  std::deque<ServerAction> actions_;
  std::size_t max_connections_ = 0;  // 0 = unlimited
  bool forced_ = false;
  bool unload_emitted_ = false;
  bool exit_emitted_ = false;
};

}  // namespace nbdd::core
