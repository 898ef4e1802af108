#include "core/server_state.hpp"

#include "core/assert.hpp"

namespace nbdd::core {

std::optional<ConnectionId> ServerState::admit() {
  if (phase_ != ServerPhase::accepting) return std::nullopt;
  if (max_connections_ != 0 && live_.size() >= max_connections_) return std::nullopt;
  const ConnectionId id = next_id_++;
  live_.insert(id);
  return id;
}

void ServerState::finished(ConnectionId id) {
  const auto erased = live_.erase(id);
  NBDD_ASSERT(erased == 1);  // each admitted connection finishes exactly once
  advance();
}

void ServerState::shutdown_requested() {
  if (phase_ == ServerPhase::accepting) {
    phase_ = ServerPhase::draining;
    actions_.push_back(server_action::StopAccepting{});
    for (ConnectionId id : live_) actions_.push_back(server_action::EndConnection{id, false});
  } else if (phase_ == ServerPhase::draining && !forced_) {
    forced_ = true;  // a second request: stop waiting for anyone
    for (ConnectionId id : live_) actions_.push_back(server_action::EndConnection{id, true});
  }
  advance();
}

// Unload only once the last connection (and so its plugin close) finished.
void ServerState::advance() {
  if (phase_ == ServerPhase::draining && live_.empty() && !unload_emitted_) {
    phase_ = ServerPhase::unloading;
    unload_emitted_ = true;
    actions_.push_back(server_action::Unload{});
  }
}

void ServerState::unload_done() {
  NBDD_ASSERT(phase_ == ServerPhase::unloading);
  phase_ = ServerPhase::done;
  if (!exit_emitted_) {
    exit_emitted_ = true;
    actions_.push_back(server_action::Exit{});
  }
}

std::optional<ServerAction> ServerState::next_action() {
  if (actions_.empty()) return std::nullopt;
  ServerAction act = actions_.front();
  actions_.pop_front();
  return act;
}

}  // namespace nbdd::core
