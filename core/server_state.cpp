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

void ServerState::enter(ServerPhase next) {
  // Only forward, one step at a time.
  NBDD_ASSERT(static_cast<int>(next) == static_cast<int>(phase_) + 1);
  phase_ = next;
}

void ServerState::shutdown_requested(Instant now) {
  if (phase_ == ServerPhase::accepting) {
    grace_ends_ = now + grace_period_;
    enter(ServerPhase::draining);
    actions_.push_back(server_action::StopAccepting{});
    for (ConnectionId id : live_) actions_.push_back(server_action::EndConnection{id, false});
  } else if (phase_ == ServerPhase::draining && !forced_) {
    force();  // a second request: stop waiting for anyone
  }
  advance();
}

void ServerState::force() {
  NBDD_ASSERT(phase_ == ServerPhase::draining && !forced_);
  forced_ = true;
  for (ConnectionId id : live_) actions_.push_back(server_action::EndConnection{id, true});
}

std::optional<Instant> ServerState::deadline() const {
  if (phase_ != ServerPhase::draining || forced_ || live_.empty()) return std::nullopt;
  return grace_ends_;
}

void ServerState::on_deadline(Instant now) {
  const auto due = deadline();
  if (!due || now < *due) return;
  force();  // the grace period ran out with connections still live
}

// Unload only once the last connection (and so its plugin close) finished.
void ServerState::advance() {
  if (phase_ == ServerPhase::draining && live_.empty() && !unload_emitted_) {
    enter(ServerPhase::unloading);
    unload_emitted_ = true;
    actions_.push_back(server_action::Unload{});
  }
}

void ServerState::unload_done() {
  NBDD_ASSERT(phase_ == ServerPhase::unloading);
  enter(ServerPhase::done);
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
