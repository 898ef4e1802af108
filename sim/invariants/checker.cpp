// Dispatch: every observation gets a tick, then goes to the families (replies.cpp,
// shutdown.cpp, lifecycle.cpp, handshake.cpp, durability.cpp, liveness.cpp).
#include <variant>

#include "sim/invariants/checker_state.hpp"

namespace nbdd::sim {

InvariantChecker::InvariantChecker(CheckerConfig config) : config_(config) {}
InvariantChecker::~InvariantChecker() = default;

void InvariantChecker::fail(const char* inv, core::ConnectionId id, core::Instant now, std::string message) {
  ++count_;
  if (!first_) first_ = Violation{inv, id, now, std::move(message)};
}

InvariantChecker::Conn& InvariantChecker::find_conn(core::ConnectionId id) {
  Conn* found = id < conn_index_.size() ? conn_index_[id] : nullptr;
  if (!found) {
    auto& slot = conns_[id];
    if (!slot) {
      slot = std::make_unique<Conn>();
      slot->id = id;
    }
    found = slot.get();
    if (id < conn_index_max) {
      if (conn_index_.size() <= id) conn_index_.resize(id + 1, nullptr);
      conn_index_[id] = found;
    }
  }
  last_id_ = id;
  last_conn_ = found;
  return *found;
}

template <typename Observed>
InvariantChecker::Conn& InvariantChecker::observe(core::ConnectionId id, core::Instant now, const char* kind,
                                                  const Observed& what) {
  ++tick_;
  check_owed_end(now);
  Conn& c = conn(id);
  if (exit_emitted_) fail("INV-NOTHING-AFTER-EXIT", id, now, std::string(kind) + " after Exit");
  if (c.finished) fail("INV-FINISHED-LAST", id, now, std::string(kind) + " after Finished: " + core::describe(what));
  return c;
}

std::size_t InvariantChecker::live_connections() const {
  std::size_t n = 0;
  for (const auto& [id, c] : conns_) n += c->finished ? 0 : 1;
  return n;
}

// INV-SHUTDOWN-REACHES-ALL: the first shutdown request ends every live connection
// gracefully, the second forces every one still live; ServerState emits those
// EndConnection actions at once, before anything else happens.
void InvariantChecker::check_owed_end(core::Instant now) {
  if (owed_end_.empty()) return;
  const auto [id, force] = *owed_end_.begin();
  fail("INV-SHUTDOWN-REACHES-ALL", id, now,
       std::string("no EndConnection{force=") + (force ? "true" : "false") + "} after shutdown request " +
           std::to_string(shutdown_requests_));
  owed_end_.clear();
}

void InvariantChecker::on_connection(core::ConnectionId id, core::Instant now) {
  if (!config_.enabled) return;
  ++tick_;
  check_owed_end(now);
  if (conns_.count(id)) fail("INV-CONN-ID-UNIQUE", id, now, "connection id reused");
  conn(id);
}

void InvariantChecker::on_input(core::ConnectionId id, core::Instant now, const core::Input& in) {
  if (!config_.enabled) return;
  Conn& c = observe(id, now, "input", in);
  c.ignored_disconnect_step = false;
  check_pending_force(c, now);
  check_pending_tls_close(c, now);
  check_pending_refusal(c, now);
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, core::input::BytesReceived>) {
          client_bytes(c, now, v.bytes);
        } else if constexpr (std::is_same_v<T, core::input::PeerClosed>) {
          c.peer_closed = true;
        } else if constexpr (std::is_same_v<T, core::input::SendDone>) {
          if (c.unacked_sends == 0) fail("INV-SEND-DONE-MATCHES", id, now, "SendDone without an outstanding Send");
          else --c.unacked_sends;
        } else if constexpr (std::is_same_v<T, core::input::SendFailed>) {
          c.send_failed = true;
        } else if constexpr (std::is_same_v<T, core::input::PluginDone>) {
          lifecycle_input(c, now, in);
        } else if constexpr (std::is_same_v<T, core::input::GateOpened>) {
          gate_opened(c);
        } else if constexpr (std::is_same_v<T, core::input::ShutdownRequested> ||
                             std::is_same_v<T, core::input::ShutdownForced> ||
                             std::is_same_v<T, core::input::DisconnectRequested>) {
          shutdown_input(c, now, in);
        } else if constexpr (std::is_same_v<T, core::input::TlsDone>) {
          tls_input(c, now, in);
        }
      },
      in);
  update_idle(c, now);
}

void InvariantChecker::on_action(core::ConnectionId id, core::Instant now, const core::Action& act) {
  if (!config_.enabled) return;
  Conn& c = observe(id, now, "action", act);
  tls_action(c, now, act);  // first: it judges a Close before shutdown_action records it
  shutdown_action(c, now, act);
  if (const auto* send = std::get_if<core::action::Send>(&act)) {
    ++c.unacked_sends;
    handshake_send(c, now);
    server_bytes(c, now, send->header);
    server_bytes(c, now, send->payload);
  } else {
    lifecycle_action(c, now, act);
  }
  update_idle(c, now);
}

void InvariantChecker::on_status(core::ConnectionId id, core::Instant now, core::Status status) {
  if (!config_.enabled) return;
  Conn& c = conn(id);
  if (c.ignored_disconnect_step && c.status_before_ignored && *c.status_before_ignored != status)
    fail("INV-DISCONNECT-ONLY-CONNECTED", id, now,
         std::string("an ignored disconnect() moved the status to ") + core::to_string(status));
  if (c.status && static_cast<int>(status) < static_cast<int>(*c.status))
    fail("INV-STATUS-FORWARD", id, now,
         std::string("status moved from ") + core::to_string(*c.status) + " back to " + core::to_string(status));
  if (c.status && *c.status != status) {
    if (status == core::Status::draining) marks_.hit("status_draining");
    if (status == core::Status::closing) marks_.hit("status_closing");
  }
  c.status = status;
  check_gate_handed_on(now);
}

void InvariantChecker::on_shutdown_requested(core::Instant now) {
  if (!config_.enabled) return;
  ++tick_;
  if (exit_emitted_) fail("INV-NOTHING-AFTER-EXIT", 0, now, "shutdown requested after Exit");
  check_owed_end(now);
  ++shutdown_requests_;
  shutdown_requested_ = true;
  if (shutdown_requests_ == 1) {
    shutdown_at_ = now;
    // INV-SHUTDOWN-BOUNDED can be due once the grace period (and its slack) has passed
    time_checks_from_ = (now + config_.limits.grace_period + config_.grace_slack).ns + 1;
  }
  // A second request forces, unless the grace deadline already did (ServerState forces once).
  if (shutdown_requests_ == 1 || (shutdown_requests_ == 2 && !server_forced_))
    for (const auto& [id, c] : conns_)
      if (!c->finished) owed_end_[id] = shutdown_requests_ == 2;
  if (shutdown_requests_ == 2) marks_.hit(server_forced_ ? "second_shutdown_after_grace_force" : "second_shutdown_forces");
}

void InvariantChecker::on_admit(core::Instant now, bool admitted) {
  if (!config_.enabled) return;
  ++tick_;
  check_owed_end(now);
  if (admitted && shutdown_requested_)
    fail("INV-NO-ADMIT-AFTER-SHUTDOWN", 0, now, "a connection was admitted after shutdown was requested");
  if (!admitted && shutdown_requested_) marks_.hit("refused_during_shutdown");
}

void InvariantChecker::on_server_action(core::Instant now, const core::ServerAction& act) {
  if (!config_.enabled) return;
  ++tick_;
  if (exit_emitted_) fail("INV-NOTHING-AFTER-EXIT", 0, now, "server action after Exit: " + core::describe(act));
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, core::server_action::StopAccepting>) {
          if (stop_accepting_) fail("INV-SERVER-ONCE", 0, now, "StopAccepting twice");
          if (!shutdown_requested_) fail("INV-SERVER-ONCE", 0, now, "StopAccepting without shutdown");
          stop_accepting_ = true;
        } else if constexpr (std::is_same_v<T, core::server_action::EndConnection>) {
          if (!conns_.count(v.id)) fail("INV-END-KNOWN-CONNECTION", v.id, now, "EndConnection for an unknown id");
          auto owed = owed_end_.find(v.id);
          if (owed != owed_end_.end() && owed->second == v.force) owed_end_.erase(owed);
          if (v.force && !server_forced_) {
            server_forced_ = true;
            if (shutdown_requests_ == 1) marks_.hit("grace_ran_out_forces");
          }
        } else if constexpr (std::is_same_v<T, core::server_action::Unload>) {
          if (unload_emitted_) fail("INV-UNLOAD-ONCE", 0, now, "Unload emitted twice");
          if (!shutdown_requested_) fail("INV-UNLOAD-ONCE", 0, now, "Unload without shutdown");
          for (const auto& [id, c] : conns_) {
            if (!c->finished) fail("INV-UNLOAD-AFTER-LAST-CLOSE", id, now, "Unload while this connection is alive");
            if (c->closes_done != c->opens_ok || c->handle != Conn::Handle::none)
              fail("INV-EVERY-OPEN-CLOSED", id, now, "Unload before this connection's last close returned");
          }
          unload_emitted_ = true;
        } else if constexpr (std::is_same_v<T, core::server_action::Exit>) {
          if (!unload_emitted_) fail("INV-UNLOAD-ONCE", 0, now, "Exit before Unload");
          exit_emitted_ = true;
        }
      },
      act);
}

}  // namespace nbdd::sim
