// The plugin's lifecycle calls, asked for per connection as nbdkit makes them:
//   preconnect   before the greeting; an error closes the connection with nothing sent
//   list_exports for each NBD_OPT_LIST
//   open         for each INFO/GO/EXPORT_NAME (the driver resolves "" with default_export
//                and asks get_size, block_size and every can_* in the same call)
//   close        exactly once for each open that succeeded: after INFO's answer, after a
//                refused GO, and when the connection ends
// Lifecycle calls run one at a time and never beside a data call (may_start). A call still
// queued when shutdown arrives is withdrawn, so none starts after the graceful moment; a
// call already running finishes, and its option is then refused with ERR_SHUTDOWN.
#include <cerrno>

#include "core/assert.hpp"
#include "core/connection_impl.hpp"

namespace nbdd::core {

// The one door of HandleState (see connection.hpp for the legal moves).
void Connection::Impl::set_handle(HandleState next) {
  switch (next) {
    case HandleState::opening: NBDD_ASSERT(handle_ == HandleState::none); break;
    case HandleState::open: NBDD_ASSERT(handle_ == HandleState::opening); break;
    case HandleState::closing: NBDD_ASSERT(handle_ == HandleState::open); break;
    case HandleState::none:
      NBDD_ASSERT(handle_ == HandleState::opening || handle_ == HandleState::closing);
      break;
  }
  handle_ = next;
}

// nbdkit_disconnect(3) acts from a connected callback: between the open that GO served
// and its close. Elsewhere (handshake calls, INFO's handle, after close) it is ignored.
bool Connection::Impl::disconnect_effective() const {
  return phase_ == Phase::transmission && handle_ == HandleState::open;
}

void Connection::Impl::start_lifecycle(CallKind kind) {
  NBDD_ASSERT(kind != CallKind::close);  // close_handle() queues the close
  reader_ = Reader::awaiting_plugin;
  call_queue_.push_back(QueuedCall{kind, 0});
  start_calls();
}

void Connection::Impl::close_handle() {
  set_handle(HandleState::closing);
  call_queue_.push_back(QueuedCall{CallKind::close, 0});
  start_calls();
}

// A preconnect, LIST or INFO/GO/EXPORT_NAME whose call has not started yet (it waits
// for the thread-model gate, or behind INFO's close) is withdrawn when the connection
// starts draining or closing: no lifecycle call starts after the graceful moment.
void Connection::Impl::withdraw_pending_lifecycle() {
  if (reader_ != Reader::awaiting_plugin) return;
  CallKind withdrawn{};
  bool found = false;
  for (auto it = call_queue_.begin(); it != call_queue_.end(); ++it) {
    if (it->lifecycle() && it->kind != CallKind::close) {
      withdrawn = it->kind;
      found = true;
      call_queue_.erase(it);
      break;
    }
  }
  if (!found) return;  // it is running: its completion sees the new status
  if (gate_ == GateState::waiting && call_queue_.empty()) gate_release();
  if (withdrawn == CallKind::preconnect) {
    // Nothing was sent yet, not even the greeting: end without a handshake.
    reader_ = Reader::stopped;
    begin_closing(EndReason::shut_down);
    return;
  }
  if (status_ >= Status::closing) return;
  reader_ = Reader::option_header;
  if (pending_.option == nbd::Opt::export_name)
    abort(EndReason::export_name_failed);
  else
    refuse_shutting_down();
}

void Connection::Impl::on_lifecycle_done(int err) {
  lifecycle_running_ = false;
  switch (lifecycle_kind_) {
    case CallKind::preconnect: on_preconnect_done(err); break;
    case CallKind::list_exports: on_list_done(err); break;
    case CallKind::open: on_open_done(err); break;
    case CallKind::close:
      set_handle(HandleState::none);  // close cannot fail
      ++stats_.closes;
      break;
    default: NBDD_ASSERT(false && "a data call on the lifecycle slot");
  }
  release_gate_if_idle();
}

void Connection::Impl::on_preconnect_done(int err) {
  if (status_ >= Status::closing) return;
  if (err != 0) {
    abort(EndReason::preconnect_refused);  // nbdkit: no handshake at all
    return;
  }
  // A shutdown that came while preconnect ran is answered in the handshake like any
  // other: options get ERR_SHUTDOWN until the client leaves or the grace period ends.
  emit_handshake_bytes(encode_greeting(offered_handshake_flags()));
  reader_ = Reader::client_flags;
}

void Connection::Impl::on_list_done(int err) {
  if (status_ >= Status::closing) return;
  reader_ = Reader::option_header;
  if (status_ == Status::draining) return refuse_shutting_down();
  if (err != 0) return option_error(nbd::Rep::err_platform, "the plugin could not list its exports");
  send_list();
}

void Connection::Impl::on_open_done(int err) {
  if (err != 0) {
    set_handle(HandleState::none);  // the driver closed anything half-opened itself
    if (status_ >= Status::closing) return;
    if (pending_.option == nbd::Opt::export_name) return abort(EndReason::export_name_failed);
    reader_ = Reader::option_header;
#ifdef ESHUTDOWN
    if (err == ESHUTDOWN) return refuse_shutting_down();
#endif
    if (status_ == Status::draining) return refuse_shutting_down();
    // nbdkit 1.32 answers every failed open with ERR_UNKNOWN; the client may try again.
    return option_error(nbd::Rep::err_unknown, "the plugin could not open this export");
  }
  set_handle(HandleState::open);
  ++stats_.opens;
  if (status_ >= Status::closing) return;  // check_end runs the close call
  if (status_ == Status::draining) {
    // Shutdown arrived while open ran: refuse the export and close what was opened.
    close_handle();
    if (pending_.option == nbd::Opt::export_name) return abort(EndReason::export_name_failed);
    reader_ = Reader::option_header;
    return refuse_shutting_down();
  }
  answer_opened();
}

}  // namespace nbdd::core
