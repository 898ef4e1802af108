// Family "tls": STARTTLS and the three TLS modes (protocol §11, core::TlsMode).
//   INV-TLS-REQUIRED-SILENCE  with --tls=require, before TLS is up: no list_exports or open
//                             call starts, no export leaves the server (EXPORT_NAME's block),
//                             and every option reply is the STARTTLS/ABORT answer,
//                             NBD_REP_ERR_TLS_REQD, or NBD_REP_ERR_SHUTDOWN (§3.11)
//   INV-TLS-FAIL-CLOSES       TlsDone{false} is followed by Close{abort} before the next input,
//                             with no Send in between
//   INV-TLS-MODE              StartTls only after an acknowledged STARTTLS, never with
//                             --tls=off, never once TLS is up; NBD_REP_ERR_TLS_REQD only with
//                             --tls=require and only before TLS is up
#include "sim/invariants/checker_state.hpp"

namespace nbdd::sim {

bool InvariantChecker::tls_required_now(const Conn& c) const {
  return config_.tls == core::TlsMode::require && !c.tls_up;
}

void InvariantChecker::check_pending_tls_close(Conn& c, core::Instant now) {
  if (!c.tls_fail_wants_close) return;
  c.tls_fail_wants_close = false;
  if (!c.aborted) fail("INV-TLS-FAIL-CLOSES", c.id, now, "TlsDone{ok=false} was not followed by Close{abort}");
}

void InvariantChecker::tls_input(Conn& c, core::Instant now, const core::Input& in) {
  const auto* done = std::get_if<core::input::TlsDone>(&in);
  if (!done) return;
  if (!c.tls_handshaking) {
    fail("INV-TLS-MODE", c.id, now, "TlsDone without a StartTls");  // a driver bug
    return;
  }
  c.tls_handshaking = false;
  if (c.close_emitted) {
    marks_.hit("tls_done_after_close");
    return;
  }
  if (done->ok) {
    c.tls_up = true;
    marks_.hit(c.shutdown_seen ? "tls_up_while_draining" : "tls_up");
    return;
  }
  c.tls_failed = true;
  c.tls_fail_wants_close = true;
  marks_.hit("tls_failed");
}

void InvariantChecker::tls_action(Conn& c, core::Instant now, const core::Action& act) {
  if (const auto* start = std::get_if<core::action::StartTls>(&act)) {
    if (config_.tls == core::TlsMode::off) fail("INV-TLS-MODE", c.id, now, "StartTls with --tls=off");
    if (c.tls_up || c.tls_handshaking) fail("INV-TLS-MODE", c.id, now, "a second StartTls");
    c.tls_handshaking = true;
    marks_.hit(start->early.empty() ? "tls_started" : "tls_started_with_early_bytes");
    std::vector<wire::ClientStreamDecoder::Event> cevs;
    c.cdec.tls_started(start->early.size(), cevs);
    process_client_events(c, now, cevs);
    return;
  }
  if (c.tls_failed && !c.close_emitted) {
    if (std::holds_alternative<core::action::Send>(act))
      fail("INV-TLS-FAIL-CLOSES", c.id, now, "Send after TlsDone{ok=false}");
    if (const auto* close = std::get_if<core::action::Close>(&act)) {
      if (close->mode != core::CloseMode::abort)
        fail("INV-TLS-FAIL-CLOSES", c.id, now, "a failed TLS handshake closed with flush_then_close");
      c.tls_fail_wants_close = false;
    }
  }
}

void InvariantChecker::tls_call(Conn& c, core::Instant now, const core::action::CallPlugin& cp) {
  const core::CallKind kind = cp.call.kind;
  if (tls_required_now(c) && (kind == core::CallKind::list_exports || kind == core::CallKind::open))
    fail("INV-TLS-REQUIRED-SILENCE", c.id, now, core::describe(core::Action{cp}) + " before TLS with --tls=require");
}

void InvariantChecker::tls_option_reply(Conn& c, core::Instant now, std::uint32_t option, std::uint32_t type,
                                        bool final_reply) {
  if (type == wire::rep::err_tls_reqd) {
    if (!tls_required_now(c))
      fail("INV-TLS-MODE", c.id, now,
           std::string("NBD_REP_ERR_TLS_REQD ") + (c.tls_up ? "after TLS is up" : "without --tls=require"));
    else
      marks_.hit("err_tls_reqd");
  }
  if (option == wire::opt::starttls && final_reply) {
    std::vector<wire::ClientStreamDecoder::Event> cevs;
    if (type != wire::rep::ack) {
      marks_.hit("starttls_refused");
      c.cdec.resume_options(cevs);
      process_client_events(c, now, cevs);
    }
    return;
  }
  if (!tls_required_now(c) || option == wire::opt::abort) return;
  if (type != wire::rep::err_tls_reqd && type != wire::rep::err_shutdown)
    fail("INV-TLS-REQUIRED-SILENCE", c.id, now,
         std::string(wire::option_name(option)) + " answered type " + std::to_string(type) + " before TLS with --tls=require");
}

}  // namespace nbdd::sim
