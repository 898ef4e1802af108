// Family "liveness": INV-GRACE-DEADLINE — once a connection is ending gracefully (draining
// in transmission, or shut down during the handshake) and nothing is in flight (no request
// unanswered, no plugin call running, no Send unacknowledged, no option unanswered), it
// must emit Close within Limits::grace_period (+ CheckerConfig::grace_slack). The world's own liveness
// check (every connection finished and Exit within a bound once faults stop) is in
// sim/world.cpp and reports pending_summary().
#include "sim/invariants/checker_state.hpp"

namespace nbdd::sim {

void InvariantChecker::update_idle(Conn& c, core::Instant now) {
  const bool ending = c.graceful || (c.shutdown_seen && !c.transmission);
  const bool idle = ending && !c.close_emitted && !c.finished && c.requests.empty() && c.running.empty() &&
                    c.unacked_sends == 0 && c.options.empty();
  if (!idle) {
    if (c.idle_since) {
      c.idle_since.reset();
      --idle_conns_;
    }
    return;
  }
  if (!c.idle_since) {
    c.idle_since = now;
    ++idle_conns_;
  }
}

// INV-SHUTDOWN-BOUNDED: a graceful shutdown lasts at most Limits::grace_period; then
// ServerState forces every connection still live (EndConnection{force=true}).
void InvariantChecker::check_shutdown_bounded(core::Instant now) {
  if (!config_.server_level || !shutdown_at_ || server_forced_ || shutdown_bound_reported_ || exit_emitted_) {
    time_checks_from_ = ~0ull;  // settled (or not started: on_shutdown_requested sets it again)
    return;
  }
  const core::Instant limit = *shutdown_at_ + config_.limits.grace_period + config_.grace_slack;
  if (now <= limit || live_connections() == 0) return;
  shutdown_bound_reported_ = true;
  fail("INV-SHUTDOWN-BOUNDED", 0, limit,
       std::to_string(live_connections()) + " connections still live " +
           std::to_string((config_.limits.grace_period.ns + config_.grace_slack.ns) / 1000000) +
           "ms after the shutdown request, and none was forced");
}

void InvariantChecker::time_passed(core::Instant now) {
  if (!config_.enabled) return;
  check_shutdown_bounded(now);
  if (idle_conns_ == 0) return;  // the common case: no connection waits for its grace deadline
  for (auto& [id, cp] : conns_) {
    Conn& c = *cp;
    if (!c.idle_since || c.close_emitted || c.grace_reported) continue;
    const core::Duration grace_slack = config_.grace_slack;
    const core::Instant limit = *c.idle_since + config_.limits.grace_period + grace_slack;
    if (now > limit) {
      c.grace_reported = true;
      // Reported at the moment the deadline passed (the run may only notice it later).
      fail("INV-GRACE-DEADLINE", c.id, limit,
           "idle while ending since t=" + std::to_string(c.idle_since->ns) + "ns, not closed " +
               std::to_string((config_.limits.grace_period.ns + grace_slack.ns) / 1000000) + "ms later (noticed at t=" +
               std::to_string(now.ns) + "ns)");
    }
  }
}

void InvariantChecker::at_end(core::Instant now, bool quiescent) {
  if (!config_.enabled) return;
  on_time(now);
  check_owed_end(now);
  for (auto& [id, cp] : conns_) {
    Conn& c = *cp;
    check_pending_force(c, now);
    check_pending_refusal(c, now);
    if (!quiescent) continue;
    if (!c.finished) fail("INV-LIVENESS", c.id, now, "connection never emitted Finished");
    if (c.closes_done != c.opens_ok)
      fail("INV-EVERY-OPEN-CLOSED", c.id, now,
           std::to_string(c.opens_ok) + " successful opens but " + std::to_string(c.closes_done) + " closes returned");
  }
  if (quiescent && config_.server_level && shutdown_requested_ && !exit_emitted_)
    fail("INV-LIVENESS", 0, now, "shutdown requested but the server never emitted Exit");
}

std::string InvariantChecker::pending_summary() const {
  std::string out;
  for (const auto& [id, cp] : conns_) {
    const Conn& c = *cp;
    if (c.finished) continue;
    out += "conn=" + std::to_string(id) + (c.transmission ? " transmission" : " handshake");
    if (c.status) out += std::string(" status=") + core::to_string(*c.status);
    out += " requests=" + std::to_string(c.requests.size()) + " running_calls=" + std::to_string(c.running.size()) +
           " unacked_sends=" + std::to_string(c.unacked_sends) + " options=" + std::to_string(c.options.size()) +
           " handle=" + std::to_string(static_cast<int>(c.handle)) + (c.close_emitted ? " closed" : " open") +
           (c.graceful ? " graceful" : "") + (c.force ? " forced" : "") + (c.peer_closed ? " peer_closed" : "") + "\n";
  }
  if (shutdown_requested_ && !exit_emitted_)
    out += std::string("server: ") + (unload_emitted_ ? "unloaded, no Exit" : "no Unload") + "\n";
  return out;
}

}  // namespace nbdd::sim
