// Family "shutdown": what a graceful or forced disconnect may and may not do.
//   INV-FORCE-CLOSES          an effective DisconnectRequested{true} is followed by Close{abort}
//                             before the next input
//   INV-FORCE-SILENCE         after DisconnectRequested{true}, ShutdownForced (or any Close{abort})
//                             not one more Send
//   INV-FORCED-SHUTDOWN-CLOSES  ShutdownForced (the server's second signal) is followed by
//                             Close{abort} before the next input, in any phase, handshake included
//   INV-NO-SEND-AFTER-CLOSE   no Send after any Close
//   INV-CLOSE-ONCE            Close is emitted at most once, except that a flush_then_close may
//                             be escalated to abort once
//   INV-INFLIGHT-ANSWERED     a Close{flush_then_close} with the peer still reading comes only
//                             after every parsed request was answered
//   INV-DISCONNECT-ONLY-CONNECTED  a DisconnectRequested that is not effective (handshake,
//                             lifecycle calls, INFO's handle, after close) changes nothing: no
//                             action and no status change in its step
#include <algorithm>

#include "sim/invariants/checker_state.hpp"

namespace nbdd::sim {

namespace {
// A request whose header (and WRITE payload) arrived but whose plugin call has not started.
bool has_queued_request(const InvariantChecker::Conn& c) {
  return std::any_of(c.requests.begin(), c.requests.end(),
                     [](const auto& entry) { return !entry.second.called && entry.second.payload_done; });
}
}  // namespace

void InvariantChecker::check_pending_force(Conn& c, core::Instant now) {
  if (c.forced_shutdown_wants_close) {
    c.forced_shutdown_wants_close = false;
    if (!c.aborted)
      fail("INV-FORCED-SHUTDOWN-CLOSES", c.id, now,
           std::string("ShutdownForced ") + (c.transmission ? "in transmission" : "in the handshake") +
               " was not followed by Close{abort}");
  }
  if (!c.force_wants_close) return;
  c.force_wants_close = false;
  if (!c.close_emitted)
    fail("INV-FORCE-CLOSES", c.id, now, "DisconnectRequested{force=true} was not followed by Close{abort}");
}

void InvariantChecker::shutdown_input(Conn& c, core::Instant now, const core::Input& in) {
  if (std::holds_alternative<core::input::ShutdownForced>(in)) {
    // Everything a graceful shutdown means, then the force, in any phase.
    shutdown_input(c, now, core::input::ShutdownRequested{});
    marks_.hit(c.transmission ? "shutdown_forced_in_transmission" : "shutdown_forced_in_handshake");
    if (!c.running.empty()) marks_.hit("shutdown_forced_with_running_call");
    c.shutdown_forced = true;
    c.force = true;  // INV-FORCE-SILENCE and INV-FORCE-DROPS-QUEUED hold from here
    if (!c.close_emitted || !c.aborted) c.forced_shutdown_wants_close = true;
    return;
  }
  if (std::holds_alternative<core::input::ShutdownRequested>(in)) {
    handshake_shutdown(c, now);
    c.shutdown_seen = true;
    if (!c.transmission) {
      marks_.hit("shutdown_in_handshake");
      return;
    }
    marks_.hit("shutdown_in_transmission");
    if (!c.graceful && !c.close_emitted) {
      c.graceful = true;
      if (!c.running.empty()) marks_.hit("graceful_with_running_call");
      if (has_queued_request(c)) marks_.hit("graceful_with_queued_request");
      for (const auto& [cookie, r] : c.requests)
        if (!r.payload_done) {
          marks_.hit("graceful_mid_write_payload");
          break;
        }
    }
    return;
  }
  const auto& d = std::get<core::input::DisconnectRequested>(in);
  // nbdkit_disconnect(3) acts from a connected callback: in transmission, while the GO'd
  // handle is open. Elsewhere (preconnect, list_exports, INFO's handle, an open still
  // running, after close) core must ignore it. (Unknown once the client broke framing:
  // then no disconnect is judged.)
  if (c.wire_broken) return;
  const bool effective = c.transmission && c.handle == Conn::Handle::open && !c.finished;
  if (!effective) {
    // INV-DISCONNECT-ONLY-CONNECTED: ignored means ignored — nothing in this step.
    c.ignored_disconnect_step = true;
    c.status_before_ignored = c.status;
    marks_.hit(c.transmission ? "disconnect_after_close_call" : "disconnect_outside_transmission");
    if (!c.transmission && c.running.count(static_cast<std::uint32_t>(core::lifecycle_slot)))
      marks_.hit("disconnect_during_lifecycle_call");
    return;
  }
  if (!d.force) {
    marks_.hit("disconnect_graceful");
    if (!c.graceful && !c.close_emitted) {
      c.graceful = true;
      if (!c.running.empty()) marks_.hit("graceful_with_running_call");
    }
    return;
  }
  marks_.hit("disconnect_forced");
  if (c.force) marks_.hit("forced_twice");
  c.force = true;
  if (!c.running.empty()) marks_.hit("force_with_running_call");
  if (has_queued_request(c)) marks_.hit("force_with_queued_request");
  if (c.graceful) marks_.hit("force_while_draining");
  if (!c.close_emitted) c.force_wants_close = true;
}

void InvariantChecker::shutdown_action(Conn& c, core::Instant now, const core::Action& act) {
  if (c.ignored_disconnect_step)
    fail("INV-DISCONNECT-ONLY-CONNECTED", c.id, now,
         "a disconnect() from outside the GO'd handle's calls was acted on: " + core::describe(act));
  if (const auto* close = std::get_if<core::action::Close>(&act)) {
    // A Close{flush_then_close} may be escalated once to Close{abort} (SendFailed, or the
    // peer not reading the last replies within the grace period); nothing else repeats.
    if (c.aborted || (c.close_emitted && close->mode != core::CloseMode::abort))
      fail("INV-CLOSE-ONCE", c.id, now, "a second Close after " + std::string(c.aborted ? "abort" : "flush_then_close"));
    if (c.close_emitted) marks_.hit("close_escalated_to_abort");
    if (c.force_wants_close && close->mode != core::CloseMode::abort)
      fail("INV-FORCE-CLOSES", c.id, now, "forced disconnect closed with flush_then_close");
    if (c.forced_shutdown_wants_close && close->mode != core::CloseMode::abort)
      fail("INV-FORCED-SHUTDOWN-CLOSES", c.id, now, "forced shutdown closed with flush_then_close");
    c.force_wants_close = false;
    handshake_close(c, now, *close);
    c.close_emitted = true;
    if (close->mode == core::CloseMode::abort) {
      c.aborted = true;
      marks_.hit("close_abort");
    } else {
      marks_.hit("close_flush");
      if (!c.peer_closed && !c.send_failed && !c.force && !c.wire_broken && !c.replies_unattributable) {
        for (const auto& [cookie, r] : c.requests) {
          fail("INV-INFLIGHT-ANSWERED", c.id, now,
                 std::string("Close{flush_then_close} while ") + wire::command_name(r.req.type) + " cookie " +
                     std::to_string(cookie) + " has no reply");
          break;
        }
      }
    }
    return;
  }
  if (!std::holds_alternative<core::action::Send>(act)) return;
  if (c.aborted)
    fail("INV-FORCE-SILENCE", c.id, now, "Send after Close{abort}");
  else if (c.force)
    fail("INV-FORCE-SILENCE", c.id, now, "Send after DisconnectRequested{force=true}");
  else if (c.close_emitted)
    fail("INV-NO-SEND-AFTER-CLOSE", c.id, now, "Send after Close");
}

}  // namespace nbdd::sim
