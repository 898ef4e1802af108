// Family "lifecycle": plugin calls and the end of a connection.
//   INV-OPEN-AT-GO             open only while a GO/EXPORT_NAME is outstanding; again only after a failed open
//   INV-DATA-CALL-WINDOW       data calls only after open succeeded and before close
//   INV-CALL-FOR-REQUEST       every data call belongs to a parsed, not yet answered request
//   INV-GRACEFUL-NO-NEW-CALL   no request parsed after the graceful moment reaches the plugin
//   INV-FORCE-DROPS-QUEUED     no data call starts after DisconnectRequested{true}
//   INV-CLOSE-ONCE-AFTER-LAST  close only if open succeeded, once, when no other call runs
//   INV-FINISHED-LAST          Finished once, last, with nothing running and close returned
//   INV-THREAD-MODEL           the plugin is never called more concurrently than its model allows
//   INV-PLUGIN-DONE-MATCHES    PluginDone only for a running slot (driver contract)
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
  for (std::uint64_t k : c.order) {
    Conn::Req& r = c.requests.at(k);
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
    if (c.open_ok && !c.close_done) fail("INV-CLOSE-ONCE-AFTER-LAST", c.id, now, "Finished although open succeeded and close never returned");
    if (!c.close_emitted) fail("INV-FINISHED-LAST", c.id, now, "Finished without a Close");
    c.finished = true;
    finished_.insert(c.id);
    marks_.hit(c.open_ok ? "finished_after_close_call" : "finished_without_open");
    return;
  }
  const auto* cp = std::get_if<core::action::CallPlugin>(&act);
  if (!cp) return;
  const core::PluginCall& call = cp->call;
  const auto slot = static_cast<std::uint32_t>(cp->slot);
  if (c.running.count(slot)) fail("INV-PLUGIN-DONE-MATCHES", c.id, now, "CallPlugin on a slot whose call still runs");
  Conn::Call rc{call.kind, 0, false, false};
  if (call.kind == core::CallKind::open) {
    rc.lifecycle = true;
    if (c.open_called && (!c.open_done || c.open_ok))
      fail("INV-OPEN-AT-GO", c.id, now, "open called again although an earlier open succeeded or still runs");
    c.open_done = false;
    if (c.options.empty() || (c.options.back() != wire::opt::go && c.options.back() != wire::opt::export_name))
      fail("INV-OPEN-AT-GO", c.id, now, "open called without an outstanding GO/EXPORT_NAME");
    if (cp->slot != core::lifecycle_slot) fail("INV-OPEN-AT-GO", c.id, now, "open not on lifecycle_slot");
    c.open_called = true;
    if (config_.thread_model == core::ThreadModel::serialize_connections) {
      if (exclusive_holder_ && *exclusive_holder_ != c.id)
        fail("INV-THREAD-MODEL", c.id, now,
             "serialize_connections: open while connection " + std::to_string(*exclusive_holder_) + " is open");
      exclusive_holder_ = c.id;
    }
  } else if (call.kind == core::CallKind::close) {
    rc.lifecycle = true;
    if (!c.open_ok) fail("INV-CLOSE-ONCE-AFTER-LAST", c.id, now, "close called although open did not succeed");
    if (c.close_called) fail("INV-CLOSE-ONCE-AFTER-LAST", c.id, now, "close called twice");
    if (!c.running.empty())
      fail("INV-CLOSE-ONCE-AFTER-LAST", c.id, now, "close called while " + std::to_string(c.running.size()) + " calls run");
    if (cp->slot != core::lifecycle_slot) fail("INV-CLOSE-ONCE-AFTER-LAST", c.id, now, "close not on lifecycle_slot");
    c.close_called = true;
    if (c.force) marks_.hit("close_call_after_force");
  } else {
    if (!c.open_ok || c.close_called) fail("INV-DATA-CALL-WINDOW", c.id, now, "data call outside open..close");
    if (c.force) fail("INV-FORCE-DROPS-QUEUED", c.id, now, "data call started after DisconnectRequested{force=true}");
    bool after = false;
    if (!match_call(c, now, call, after, rc.cookie))
      fail("INV-CALL-FOR-REQUEST", c.id, now, "data call that matches no parsed, unanswered request: " + core::describe(act));
    else
      rc.matched = true;
    if (rc.matched && after)
      fail("INV-GRACEFUL-NO-NEW-CALL", c.id, now, "request parsed after the graceful moment reached the plugin: " + core::describe(act));
    if (config_.thread_model == core::ThreadModel::serialize_all_requests && running_all_ > 0)
      fail("INV-THREAD-MODEL", c.id, now, "serialize_all_requests: two plugin calls at once");
    if (config_.thread_model == core::ThreadModel::serialize_connections && exclusive_holder_ != c.id)
      fail("INV-THREAD-MODEL", c.id, now, "serialize_connections: data call while another connection holds the plugin");
    if (c.graceful) marks_.hit("call_started_while_draining");
  }
  if (rc.lifecycle && config_.thread_model == core::ThreadModel::serialize_all_requests && running_all_ > 0)
    fail("INV-THREAD-MODEL", c.id, now, "serialize_all_requests: open/close while another call runs");
  ++running_all_;
  if (config_.thread_model != core::ThreadModel::parallel && !c.running.empty())
    fail("INV-THREAD-MODEL", c.id, now, std::string(core::to_string(config_.thread_model)) + ": two calls at once on one connection");
  c.running.emplace(slot, rc);
  if (c.running.size() > 1) marks_.hit("parallel_calls");
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
  if (call.kind == core::CallKind::open) {
    c.open_done = true;
    c.open_ok = done.err == 0;
    if (!c.open_ok) marks_.hit("open_failed");
    if (!c.open_ok && exclusive_holder_ == c.id) exclusive_holder_.reset();
  } else if (call.kind == core::CallKind::close) {
    c.close_done = true;
    if (exclusive_holder_ == c.id) exclusive_holder_.reset();
  } else if (done.err != 0) {
    marks_.hit("plugin_errno");
    // The plugin's own ESHUTDOWN maps to NBD_ESHUTDOWN: that reply is not a drain.
    if (done.err == ESHUTDOWN && call.matched)
      if (auto r = c.requests.find(call.cookie); r != c.requests.end()) r->second.plugin_eshutdown = true;
  }
}

}  // namespace nbdd::sim
