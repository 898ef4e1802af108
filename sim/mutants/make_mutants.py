#!/usr/bin/env python3
"""Regenerates sim/mutants/*.patch from the current core/ sources.

Each mutant is a small, plausible bug in core's shutdown/disconnect/lifecycle logic, given as
exact text replacements. Run from the repository root after core/ changed:
    /usr/bin/python3 sim/mutants/make_mutants.py
scripts/sim-mutants.sh applies each patch to a copy and proves the simulator catches it.
"""
import difflib
import os
import sys

MUTANTS = [
    ("m01-reply-after-force", "a reply is still sent after a forced disconnect (Close{abort})", [
        ("core/transmission.cpp",
         "  if (aborted_) {\n    free_slot(slot_index);  // forced: the result is dropped, the buffer is free again\n  } else if (err != 0) {",
         "  if (false) {\n    free_slot(slot_index);  // forced: the result is dropped, the buffer is free again\n  } else if (err != 0) {"),
        ("core/transmission.cpp",
         "void Connection::Impl::reply_success(std::uint32_t slot_index) {\n  Slot& s = slots_[slot_index];\n  if (aborted_) return free_slot(slot_index);",
         "void Connection::Impl::reply_success(std::uint32_t slot_index) {\n  Slot& s = slots_[slot_index];"),
        ("core/connection.cpp", "  NBDD_ASSERT(!aborted_);\n  stats_.bytes_sent", "  stats_.bytes_sent"),
    ]),
    ("m02-no-eshutdown-while-draining", "requests parsed while draining are served instead of ESHUTDOWN", [
        ("core/transmission.cpp",
         "status_ != Status::active ? nbd::Error::eshutdown : validate_request(req, tctx_);",
         "status_ >= Status::closing ? nbd::Error::eshutdown : validate_request(req, tctx_);"),
    ]),
    ("m03-grace-never-armed", "the grace period of a graceful disconnect is never armed", [
        ("core/connection.cpp", "    idle_since_ = now_;\n", "    (void)0;\n"),
    ]),
    ("m04-close-skipped-after-force", "the plugin's close is skipped after a forced disconnect", [
        ("core/connection.cpp",
         "  if (handle_ == HandleState::open && running_data_calls_ == 0 && !lifecycle_running_) close_handle();\n  const bool plugin_done = handle_ == HandleState::none;",
         "  if (handle_ == HandleState::open && !aborted_ && running_data_calls_ == 0 && !lifecycle_running_) close_handle();\n  const bool plugin_done = handle_ == HandleState::none || aborted_;"),
    ]),
    ("m05-status-moves-back", "a shutdown after DISC moves the status from closing back to draining", [
        ("core/connection.cpp",
         "  if (status_ != Status::active) return;\n  set_status(Status::draining);",
         "  if (status_ == Status::draining || status_ == Status::dead) return;\n  status_ = Status::draining;"),
    ]),
    ("m06-disc-answered-eshutdown", "a DISC received while draining is answered ESHUTDOWN", [
        ("core/transmission.cpp",
         "  if (is_cmd(req, nbd::Cmd::disc)) {",
         "  if (is_cmd(req, nbd::Cmd::disc) && status_ == Status::active) {"),
    ]),
    ("m07-queued-dropped-on-graceful", "a graceful disconnect drops queued commands without replies", [
        ("core/connection.cpp",
         "  set_status(Status::draining);\n",
         "  set_status(Status::draining);\n  drop_unstarted_work();\n"),
    ]),
    ("m08-force-keeps-queued", "a forced disconnect lets queued commands start", [
        ("core/connection.cpp",
         "  begin_closing(why);\n  drop_unstarted_work();\n  aborted_ = true;",
         "  begin_closing(why);\n  aborted_ = true;"),
    ]),
    ("m09-close-before-last-call", "the plugin's close runs while a data call is still running", [
        ("core/connection.cpp",
         "  if (handle_ == HandleState::open && running_data_calls_ == 0 && !lifecycle_running_) close_handle();",
         "  if (handle_ == HandleState::open && !lifecycle_running_) close_handle();"),
        ("core/transmission.cpp",
         "  if (call.lifecycle() && running_data_calls_ > 0) return false;",
         "  if (call.lifecycle() && false) return false;"),
    ]),
    ("m10-handshake-no-err-shutdown", "options received after a shutdown are answered normally", [
        ("core/handshake.cpp",
         "  if (status_ == Status::draining) {\n    on_option_while_draining(data);\n    return;\n  }\n",
         ""),
    ]),
    ("m11-unload-before-last-close", "the plugin is unloaded while one connection is still alive", [
        ("core/server_state.cpp",
         "if (phase_ == ServerPhase::draining && live_.empty() && !unload_emitted_) {",
         "if (phase_ == ServerPhase::draining && live_.size() <= 1 && !unload_emitted_) {"),
    ]),
    ("m12-admit-during-shutdown", "connections arriving during shutdown are still admitted", [
        ("core/server_state.cpp",
         "  if (phase_ != ServerPhase::accepting) return std::nullopt;",
         "  if (phase_ == ServerPhase::done) return std::nullopt;"),
    ]),
    ("m13-serialize-requests-ignored", "serialize_requests lets two calls of one connection run at once", [
        ("core/transmission.cpp",
         "if (config_.thread_model != ThreadModel::parallel && running_data_calls_ > 0) return false;",
         "if (gate_required() && running_data_calls_ > 0) return false;"),
    ]),
    ("m14-second-signal-not-forcing", "forcing (a second shutdown request, or the grace deadline) only tells the live connections to end gracefully", [
        ("core/server_state.cpp",
         "for (ConnectionId id : live_) actions_.push_back(server_action::EndConnection{id, true});",
         "for (ConnectionId id : live_) actions_.push_back(server_action::EndConnection{id, false});"),
    ]),
    ("m15-close-skipped-when-go-refused", "open succeeded but GO was refused (shutdown during open): close never runs", [
        ("core/lifecycle.cpp",
         "    // Shutdown arrived while open ran: refuse the export and close what was opened.\n    close_handle();",
         "    // Shutdown arrived while open ran: refuse the export and close what was opened.\n    set_handle(HandleState::closing);\n    set_handle(HandleState::none);"),
    ]),
    # ---- issue 21: one mutant per new rule of the plugin's lifecycle in the handshake
    ("m16-queued-open-starts-after-shutdown", "a preconnect/LIST/open still queued at shutdown is not withdrawn: it starts after the shutdown", [
        ("core/connection.cpp",
         "  set_status(Status::draining);\n  if (phase_ == Phase::handshake) withdraw_pending_lifecycle();",
         "  set_status(Status::draining);"),
    ]),
    ("m17-greeting-despite-refused-preconnect", "a failed preconnect is ignored: the greeting goes out anyway", [
        ("core/lifecycle.cpp",
         "  if (err != 0) {\n    abort(EndReason::preconnect_refused);",
         "  if (false) {\n    abort(EndReason::preconnect_refused);"),
    ]),
    ("m18-go-served-when-shutdown-during-open", "shutdown while GO's open ran: the export is served anyway", [
        ("core/lifecycle.cpp",
         "  if (status_ == Status::draining) {\n    // Shutdown arrived while open ran",
         "  if (false) {\n    // Shutdown arrived while open ran"),
    ]),
    ("m19-info-handle-never-closed", "INFO's handle is forgotten instead of closed (an open without its close)", [
        ("core/handshake.cpp",
         "    close_handle();  // as nbdkit: INFO's handle is closed once answered",
         "    set_handle(HandleState::closing);\n    set_handle(HandleState::none);"),
    ]),
    ("m20-failed-list-answered-empty", "a failed list_exports is answered as an empty list instead of ERR_PLATFORM", [
        ("core/lifecycle.cpp",
         "  if (err != 0) return option_error(nbd::Rep::err_platform, \"the plugin could not list its exports\");\n",
         ""),
    ]),
    ("m21-size-from-the-first-open", "INFO/GO announce the size of the process's first open (the old start-up catalog), not this connection's", [
        ("core/handshake.cpp",
         "  put_u64(out, info.size_bytes);",
         "  static const std::uint64_t first_size = info.size_bytes;\n  put_u64(out, first_size);"),
    ]),
    ("m22-handshake-disconnect-honoured", "a disconnect() from a handshake call (preconnect, list_exports, open, INFO's close) is acted on", [
        ("core/connection.cpp",
         "                   if (!disconnect_effective()) {",
         "                   if (!disconnect_effective() && phase_ == Phase::transmission) {"),
    ]),
    # ---- issue 22: one mutant per new invariant / bug class
    ("m23-error-reply-before-payload", "a refused WRITE (ESHUTDOWN, ENOSPC, EPERM, EINVAL) is answered before its payload has arrived", [
        ("core/transmission.cpp",
         "  if (payload == 0) {\n    reply_error(slot_index, err);\n    return true;\n  }\n  s.refused = err;\n  slot_state(s, SlotState::receiving);\n  receiving_slot_ = slot_index;\n",
         "  reply_error(slot_index, err);\n  if (payload == 0) return true;\n  receiving_slot_ = slot_index;\n"),
        ("core/transmission.cpp",
         "  reader_ = Reader::request_header;\n  Slot& s = slots_[receiving_slot_];\n  const nbd::Error err = s.refused;\n  s.refused = nbd::Error::ok;\n  reply_error(receiving_slot_, err);\n",
         "  reader_ = Reader::request_header;\n"),
        ("core/connection.cpp",
         "  if (reader_ == Reader::write_payload || reader_ == Reader::payload_discard) free_slot(receiving_slot_);",
         "  if (reader_ == Reader::write_payload) free_slot(receiving_slot_);"),
    ]),
    ("m24-gate-kept-after-failed-call", "serialize_all_requests: after a failed data call the gate is not handed on", [
        ("core/transmission.cpp",
         "    reply_success(slot_index);\n  }\n  release_gate_if_idle();\n}",
         "    reply_success(slot_index);\n  }\n  if (err == 0) release_gate_if_idle();\n}"),
    ]),
    ("m25-request-at-export-end-refused", "a request ending exactly at the export's end is refused as out of range", [
        ("core/validation.cpp",
         "  return length <= size && offset <= size - length;  // cannot overflow",
         "  return length <= size && offset < size - length;  // cannot overflow"),
    ]),
    ("m26-largest-length-refused", "a READ/WRITE of exactly the largest allowed length is refused", [
        ("core/validation.cpp",
         "  if ((cmd == Cmd::read || cmd == Cmd::write) && req.length > ctx.request_bytes_max)",
         "  if ((cmd == Cmd::read || cmd == Cmd::write) && req.length >= ctx.request_bytes_max)"),
    ]),
    ("m27-zero-length-refused", "zero-length requests are refused with EINVAL instead of succeeding", [
        ("core/transmission.cpp",
         "    reply_success(slot_index);  // zero length: success with no effect, no plugin call",
         "    reply_error(slot_index, nbd::Error::einval);"),
    ]),
    ("m28-option-at-limit-too-big", "an option of exactly the option limit is discarded and answered ERR_TOO_BIG", [
        ("core/handshake.cpp",
         "  if (option_len_ <= limits_.option_data_bytes_max) {",
         "  if (option_len_ < limits_.option_data_bytes_max) {"),
    ]),
    ("m29-oversized-option-too-big-while-draining", "an oversized option discarded during shutdown is answered ERR_TOO_BIG, not ERR_SHUTDOWN", [
        ("core/connection.cpp",
         "      if (status_ == Status::draining)\n        option_error(nbd::Rep::err_shutdown",
         "      if (false)\n        option_error(nbd::Rep::err_shutdown"),
    ]),
    ("m30-read-only-write-einval", "a write to a read-only export is refused EINVAL instead of EPERM", [
        ("core/validation.cpp",
         "      if (read_only) return Error::eperm;",
         "      if (read_only) return Error::einval;"),
    ]),
    ("m31-write-past-end-einval", "a WRITE/WRITE_ZEROES past the end is refused EINVAL instead of ENOSPC", [
        ("core/validation.cpp",
         "    return (cmd == Cmd::write || cmd == Cmd::write_zeroes) ? Error::enospc : Error::einval;",
         "    return Error::einval;"),
    ]),
    ("m32-fua-without-offer-accepted", "FUA is accepted (and passed to the plugin) when the server did not offer it", [
        ("core/validation.cpp",
         "  if ((req.flags & nbd::cmd_flag_fua) && !has(ctx.eflags, nbd::flag_send_fua)) return Error::einval;\n",
         ""),
    ]),
    # ---- invariants that had no mutant yet
    ("m33-failed-write-answered-success", "a WRITE the plugin failed is answered success", [
        ("core/transmission.cpp",
         "  } else if (err != 0) {\n    reply_error(slot_index, errno_to_nbd(err, s.req.flags));",
         "  } else if (err != 0 && !is_cmd(s.req, nbd::Cmd::write)) {\n    reply_error(slot_index, errno_to_nbd(err, s.req.flags));"),
    ]),
    ("m34-inflight-answered-eshutdown", "a request that completes while draining is answered ESHUTDOWN instead of its result", [
        ("core/transmission.cpp",
         "  } else if (err != 0) {\n    reply_error(slot_index, errno_to_nbd(err, s.req.flags));",
         "  } else if (err != 0 || status_ != Status::active) {\n    reply_error(slot_index, err != 0 ? errno_to_nbd(err, s.req.flags) : nbd::Error::eshutdown);"),
    ]),
    ("m35-call-offset-rounded-down", "the plugin is called at the request's offset rounded down to 512", [
        ("core/transmission.cpp",
         "  pc.offset = r.offset;",
         "  pc.offset = r.offset - r.offset % 512;"),
    ]),
    ("m36-finish-waits-for-acks-after-abort", "after Close{abort} the connection waits for SendDones that never come: it never finishes", [
        ("core/connection.cpp",
         "(aborted_ || unacked_.empty())",
         "unacked_.empty()"),
    ]),
    # issue 27: the server's forced shutdown
    ("m37-forced-shutdown-waits-in-handshake", "a second signal only drains a connection still in the handshake (it waits for the grace period)", [
        ("core/connection.cpp",
         "                   begin_draining();\n                   abort(EndReason::shutdown_forced);",
         "                   begin_draining();\n                   if (phase_ == Phase::transmission) abort(EndReason::shutdown_forced);"),
    ]),
    # issue 24: STARTTLS and the TLS modes
    ("m38-tls-required-lets-list-through", "with --tls=require, NBD_OPT_LIST is answered before TLS", [
        ("core/handshake.cpp",
         "    case nbd::Opt::starttls: handle_starttls(data); return;\n    case nbd::Opt::export_name: abort(EndReason::tls_required); return;",
         "    case nbd::Opt::starttls: handle_starttls(data); return;\n    case nbd::Opt::list: handle_list(data); return;\n    case nbd::Opt::export_name: abort(EndReason::tls_required); return;"),
    ]),
    ("m39-tls-failure-closes-gracefully", "a failed TLS handshake closes with flush_then_close instead of abort", [
        ("core/handshake.cpp",
         "    abort(EndReason::tls_failed);",
         "    begin_closing(EndReason::tls_failed);"),
    ]),
    ("m40-starttls-twice-accepted", "a second STARTTLS once TLS is up is acknowledged and starts TLS again", [
        ("core/handshake.cpp",
         "  if (tls_up_) return option_error(nbd::Rep::err_invalid, \"TLS is already on\");\n",
         ""),
    ]),
    ("m41-tls-keeps-structured-replies", "structured replies negotiated before STARTTLS survive it", [
        ("core/handshake.cpp",
         "  structured_ = false;\n  extended_ = false;\n  meta_selected_ = false;",
         "  extended_ = false;\n  meta_selected_ = false;"),
    ]),
    ("m42-tls-reqd-after-tls", "with --tls=require, options are still refused ERR_TLS_REQD after TLS is up", [
        ("core/connection_impl.hpp",
         "return config_.tls == TlsMode::require && !tls_up_;",
         "return config_.tls == TlsMode::require;"),
    ]),
    ("m43-shutdown-grace-never-forces", "the shutdown's grace period runs out and nothing is forced: a stuck call keeps the server", [
        ("core/server_state.cpp",
         "  force();  // the grace period ran out with connections still live",
         "  (void)0;  // the grace period ran out with connections still live"),
    ]),
]


def main():
    root = os.getcwd()
    out_dir = os.path.join(root, "sim", "mutants")
    ok = True
    for name, why, edits in MUTANTS:
        originals, mutated = {}, {}
        for path, old, new in edits:
            if path not in mutated:
                with open(os.path.join(root, path)) as f:
                    originals[path] = mutated[path] = f.read()
            count = mutated[path].count(old)
            if count != 1:
                print(f"{name}: {path}: expected the text once, found it {count} times", file=sys.stderr)
                ok = False
                break
            mutated[path] = mutated[path].replace(old, new)
        else:
            lines = [f"# {name}: {why}\n"]
            for path in originals:
                lines += difflib.unified_diff(originals[path].splitlines(keepends=True),
                                              mutated[path].splitlines(keepends=True),
                                              fromfile="a/" + path, tofile="b/" + path, n=2)
            with open(os.path.join(out_dir, name + ".patch"), "w") as f:
                f.writelines(lines)
            print(f"wrote sim/mutants/{name}.patch")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
