// Family "lifecycle": plugin calls, the plugin handle and the end of a connection.
//   INV-OPEN-AT-GO             open only while an INFO/GO/EXPORT_NAME is the option being answered
//   INV-ONE-HANDLE             at most one handle at a time: no open while an open runs or a
//                              handle is open or closing
//   INV-CLOSE-ONCE-AFTER-LAST  close only for an open handle, once per handle, on lifecycle_slot,
//                              when no other call of the connection runs
//   INV-EVERY-OPEN-CLOSED      every successful open gets its close, and it has returned before
//                              Finished (so Unload, which waits for every Finished, follows every close)
//   INV-DATA-CALL-WINDOW       data calls only in transmission, with the GO'd handle open
//   INV-CALL-FOR-REQUEST       every data call belongs to a parsed, not yet answered request
//   INV-GRACEFUL-NO-NEW-CALL   no request parsed after the graceful moment reaches the plugin
//   INV-FORCE-DROPS-QUEUED     no data call starts after DisconnectRequested{true}
//   INV-FINISHED-LAST          Finished once, last, with nothing running
//   INV-THREAD-MODEL           the plugin is never called more concurrently than its model allows
//   INV-PLUGIN-DONE-MATCHES    PluginDone only for a running slot (driver contract)
// The handshake's own rules about preconnect, list_exports and open are in handshake.cpp.
#include <cerrno>

#include "sim/invariants/checker_state.hpp"

namespace nbdd::sim {

namespace {
bool compatible(core::CallKind kind, const wire::Request& rq, const core::PluginCall& call) {
  using core::CallKind;
  switch (kind) {
    case CallKind::pread: return rq.type == wire::cmd::read && call.offset == rq.offset && call.count == rq.length;
    case CallKind::pwrite: return rq.type == wire::cmd::write && call.offset == rq.offset && call.count == rq.length;
    case CallKind::flush: return rq.type == wire::cmd::flush;
    case CallKind::trim: return rq.type == wire::cmd::trim && call.offset == rq.offset && call.count == rq.length;
    case CallKind::zero: return rq.type == wire::cmd::write_zeroes && call.offset == rq.offset && call.count == rq.length;
    case CallKind::cache: return rq.type == wire::cmd::cache && call.offset == rq.offset;
    case CallKind::extents: return rq.type == wire::cmd::block_status && call.offset == rq.offset;
    default: return false;
  }
}
}  // namespace

bool InvariantChecker::match_call(Conn& c, core::Instant now, const core::PluginCall& call, bool& after_graceful,
                                  std::uint64_t& key) {
  (void)now;
  for (auto& [k, r] : c.requests) {
    if (r.called || !r.payload_done) continue;
    if (!compatible(call.kind, r.req, call)) continue;
    r.called = true;
    after_graceful = r.after_graceful && r.strict;
    key = k;
    return true;
  }
  return false;
}

void InvariantChecker::lifecycle_action(Conn& c, core::Instant now, const core::Action& act) {
  if (std::holds_alternative<core::action::Finished>(act)) {
    if (!c.running.empty())
      fail("INV-FINISHED-LAST", c.id, now, "Finished while " + std::to_string(c.running.size()) + " plugin calls run");
    if (c.handle != Conn::Handle::none || c.closes_done != c.opens_ok)
      fail("INV-EVERY-OPEN-CLOSED", c.id, now,
           std::to_string(c.opens_ok) + " successful opens, " + std::to_string(c.closes_done) +
               " closes returned at Finished");
    if (!c.close_emitted) fail("INV-FINISHED-LAST", c.id, now, "Finished without a Close");
    c.finished = true;
    finished_.insert(c.id);
    marks_.hit(c.opens_ok ? "finished_after_close_call" : "finished_without_open");
    return;
  }
  const auto* cp = std::get_if<core::action::CallPlugin>(&act);
  if (!cp) return;
  const core::PluginCall& call = cp->call;
  const auto slot = static_cast<std::uint32_t>(cp->slot);
  if (c.running.count(slot)) fail("INV-PLUGIN-DONE-MATCHES", c.id, now, "CallPlugin on a slot whose call still runs");
  Conn::Call rc{call.kind, 0, core::is_lifecycle(call.kind), false};
  if (rc.lifecycle) {
    lifecycle_call(c, now, *cp);
    handshake_call(c, now, *cp);
    tls_call(c, now, *cp);
  } else {
    const bool go_handle_open = c.handle == Conn::Handle::open && (c.transmission || c.wire_broken);
    if (!go_handle_open) fail("INV-DATA-CALL-WINDOW", c.id, now, "data call without the GO'd handle open");
    if (c.force) fail("INV-FORCE-DROPS-QUEUED", c.id, now, "data call started after DisconnectRequested{force=true}");
    bool after = false;
    if (!match_call(c, now, call, after, rc.cookie))
      fail("INV-CALL-FOR-REQUEST", c.id, now, "data call that matches no parsed, unanswered request: " + core::describe(act));
    else
      rc.matched = true;
    if (rc.matched && after)
      fail("INV-GRACEFUL-NO-NEW-CALL", c.id, now, "request parsed after the graceful moment reached the plugin: " + core::describe(act));
    if (c.graceful) marks_.hit("call_started_while_draining");
  }
  thread_model_call(c, now, call);
  c.running.emplace(slot, rc);
  if (c.running.size() > 1) marks_.hit("parallel_calls");
}

// The handle moves none -> opening -> open | none, open -> closing -> none.
void InvariantChecker::lifecycle_call(Conn& c, core::Instant now, const core::action::CallPlugin& cp) {
  const core::PluginCall& call = cp.call;
  if (cp.slot != core::lifecycle_slot)
    fail("INV-PLUGIN-DONE-MATCHES", c.id, now, std::string(core::describe(core::Action{cp})) + " not on lifecycle_slot");
  if (call.kind == core::CallKind::open) {
    if (c.handle != Conn::Handle::none)
      fail("INV-ONE-HANDLE", c.id, now, "open while a handle is " +
                                            std::string(c.handle == Conn::Handle::opening ? "opening"
                                                        : c.handle == Conn::Handle::open ? "open"
                                                                                          : "closing"));
    c.handle = Conn::Handle::opening;
    c.open_info = call.info;
    // (Once the client broke framing the options are no longer tracked: not judged.)
    const bool front_opens = !c.wire_broken && !c.options.empty() && (c.options.front().option == wire::opt::go ||
                                                    c.options.front().option == wire::opt::info ||
                                                    c.options.front().option == wire::opt::export_name);
    if (!c.wire_broken && !front_opens)
      fail("INV-OPEN-AT-GO", c.id, now, "open called while no INFO/GO/EXPORT_NAME is being answered");
    c.handle_for_go = front_opens && c.options.front().option != wire::opt::info;
    if (front_opens) {
      Conn::Option& o = c.options.front();
      if (o.open_called) fail("INV-ONE-HANDLE", c.id, now, "a second open for one option");
      o.open_called = true;
      if (!c.shutdown_seen) marks_.hit(o.option == wire::opt::info ? "open_for_info" : "open_for_go");
    }
    if (!call.info) fail("INV-OPEN-AT-GO", c.id, now, "open without an ExportInfo to fill");
  } else if (call.kind == core::CallKind::close) {
    if (c.handle != Conn::Handle::open)
      fail("INV-CLOSE-ONCE-AFTER-LAST", c.id, now,
           c.handle == Conn::Handle::closing ? "close called twice for one handle" : "close called with no open handle");
    if (!c.running.empty())
      fail("INV-CLOSE-ONCE-AFTER-LAST", c.id, now, "close called while " + std::to_string(c.running.size()) + " calls run");
    c.handle = Conn::Handle::closing;
    if (c.force) marks_.hit("close_call_after_force");
    if (!c.transmission) marks_.hit(c.shutdown_seen ? "close_in_handshake_after_shutdown" : "close_in_handshake");
  }
}

void InvariantChecker::thread_model_call(Conn& c, core::Instant now, const core::PluginCall& call) {
  using core::ThreadModel;
  const ThreadModel model = config_.thread_model;
  if (model == ThreadModel::serialize_all_requests && running_all_ > 0)
    fail("INV-THREAD-MODEL", c.id, now, std::string("serialize_all_requests: ") + core::describe(core::Action{core::action::CallPlugin{core::lifecycle_slot, call}}) + " while another call runs");
  if (model == ThreadModel::serialize_connections) {
    // One connection at a time from its open until its close returned; no other
    // connection's call (lifecycle ones included) in between.
    if (exclusive_holder_ && *exclusive_holder_ != c.id)
      fail("INV-THREAD-MODEL", c.id, now,
           "serialize_connections: a call while connection " + std::to_string(*exclusive_holder_) + " has a handle");
    if (call.kind == core::CallKind::open) exclusive_holder_ = c.id;
  }
  ++running_all_;
  if (model != ThreadModel::parallel && !c.running.empty())
    fail("INV-THREAD-MODEL", c.id, now, std::string(core::to_string(model)) + ": two calls at once on one connection");
}

void InvariantChecker::lifecycle_input(Conn& c, core::Instant now, const core::Input& in) {
  const auto& done = std::get<core::input::PluginDone>(in);
  const auto slot = static_cast<std::uint32_t>(done.slot);
  auto it = c.running.find(slot);
  if (it == c.running.end()) {
    fail("INV-PLUGIN-DONE-MATCHES", c.id, now, "PluginDone for a slot with no running call");
    return;
  }
  const Conn::Call call = it->second;
  c.running.erase(it);
  --running_all_;
  if (c.aborted) marks_.hit("plugin_done_after_abort");
  switch (call.kind) {
    case core::CallKind::open:
      handshake_done(c, now, call.kind, done.err);  // reads *open_info before core does
      if (done.err == 0) {
        c.handle = Conn::Handle::open;
        ++c.opens_ok;
      } else {
        c.handle = Conn::Handle::none;
        marks_.hit("open_failed");
        if (exclusive_holder_ == c.id) exclusive_holder_.reset();
      }
      c.open_info = nullptr;
      return;
    case core::CallKind::close:
      c.handle = Conn::Handle::none;
      ++c.closes_done;
      if (exclusive_holder_ == c.id) exclusive_holder_.reset();
      return;
    case core::CallKind::preconnect:
    case core::CallKind::list_exports:
      handshake_done(c, now, call.kind, done.err);
      return;
    default:
      break;
  }
  if (done.err != 0) {
    marks_.hit("plugin_errno");
    // The plugin's own ESHUTDOWN maps to NBD_ESHUTDOWN: that reply is not a drain.
    if (done.err == ESHUTDOWN && call.matched)
      if (auto r = c.requests.find(call.cookie); r != c.requests.end()) r->second.plugin_eshutdown = true;
  }
}

}  // namespace nbdd::sim
