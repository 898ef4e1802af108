#include "net/connection_session.hpp"

#include <boost/asio/post.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "core/assert.hpp"
#include "core/overloaded.hpp"
#include "net/busy_poll.hpp"
#include "net/call_log.hpp"
#include "net/exit_watchdog.hpp"
#include "net/log.hpp"
#include "net/real_clock.hpp"
#include "net/session_tap.hpp"
#include "net/uring_loop.hpp"
#include "net/worker_pool.hpp"
#include "plugins/nbdkit/connection_events.hpp"

namespace nbdd::net {
namespace asio = boost::asio;

using core::Overloaded;

namespace {
constexpr std::size_t fallback_bytes = 64 * 1024;

// The disconnect the plugin asked for during the call running on this thread (see
// note_plugin_disconnect). Cleared when the call's completion is taken.
struct NotedDisconnect {
  core::ConnectionId id = 0;
  std::uint8_t level = 0;  // 0 none, 1 graceful, 2 forced (a force wins)
};
thread_local NotedDisconnect noted_disconnect;
}  // namespace

void note_plugin_disconnect(core::ConnectionId id, bool force) {
  NotedDisconnect& n = noted_disconnect;
  if (n.level != 0 && n.id != id) n.level = 0;  // left over from another connection's call
  n.id = id;
  n.level = std::max<std::uint8_t>(n.level, force ? 2 : 1);
}

ConnectionSession::Completion ConnectionSession::completed(core::SlotId slot, int err) {
  NotedDisconnect& n = noted_disconnect;
  Completion c{{slot, err}, n.id == id_ ? n.level : std::uint8_t{0}};
  n = NotedDisconnect{};
  return c;
}

// Worker path: each input fed, then its actions drained (the driver contract).
void ConnectionSession::feed_completion(const Completion& c) {
  if (c.disconnect != 0) feed_one(core::input::DisconnectRequested{c.disconnect == 2});
  feed_one(c.done);
}

// Inline path: queued, fed one at a time by drain_actions once the actions before are run.
void ConnectionSession::queue_inline(const Completion& c) {
  if (c.disconnect != 0) inline_inputs_.push_back(core::input::DisconnectRequested{c.disconnect == 2});
  inline_inputs_.push_back(c.done);
}

ConnectionSession::ConnectionSession(const Strand& strand, std::unique_ptr<Stream> stream,
                                     const core::ConnectionConfig& config, SessionContext& context)
    : strand_(strand),
      stream_(std::move(stream)),
      id_(config.id),
      conn_(config),
      context_(context),
      tap_(session_tap()),
      loop_(UringLoop::of(strand.context())),
      timer_(strand) {
  plugin_state_.id = config.id;
  plugin_state_.readonly = config.read_only;
  if (tap_) tap_->on_connection(config, context_.host.plugin().name());
}

ConnectionSession::~ConnectionSession() {
  // Loans live only while the stream is open (do_close gives them all back, and nothing is
  // lent after), so a finished session holds none: the plugin may be unloaded by now. A
  // session torn down with its stream open (the server destroyed mid-run) gives them back.
  if (stream_closed_) NBDD_ASSERT(loans_held_ == 0);
  else give_back_all();
}

void ConnectionSession::start() {
  post_and_wake(strand_, loop_, [self = shared_from_this()] {
    // The core's constructor queued the plugin's preconnect (a CallPlugin on the lifecycle
    // slot, so on a worker); the greeting follows its PluginDone. Nothing is read before.
    self->drain_actions();
    self->kick();
  });
}

void ConnectionSession::post_input(const core::Input& input) {
  NBDD_ASSERT(!std::holds_alternative<core::input::BytesReceived>(input));
  post_and_wake(strand_, loop_, [self = shared_from_this(), input] { self->feed(input); });
}

void ConnectionSession::log(const char* direction, const std::string& text) const {
  log::debug("conn=" + std::to_string(id_) + " " + direction + " " + text);
}

void ConnectionSession::feed(const core::Input& input) {
  feed_one(input);
  kick();
}

void ConnectionSession::feed_one(const core::Input& input) {
  if (finished_) return;
  handle(input);
  drain_actions();
}

void ConnectionSession::handle(const core::Input& input) {
  if (log::verbose()) log("in ", core::describe(input));
  if (tap_) tap_->on_input(id_, input);
  conn_.handle(now(), input);
}

void ConnectionSession::drain_actions() {
  while (!finished_) {
    auto action = conn_.next_action();
    if (!action) {
      if (inline_head_ == inline_inputs_.size()) {
        inline_inputs_.clear();  // keeps its capacity: no allocation
        inline_head_ = 0;
        if (tap_) tap_->on_status(id_, conn_.status());  // the loop runs only while !finished_
        break;
      }
      // One input, then drain what it produced, as the contract asks; calls it starts
      // inline queue their completions behind the rest.
      const core::Input next = inline_inputs_[inline_head_++];
      handle(next);
      continue;
    }
    if (log::verbose()) log("act", core::describe(*action));
    if (tap_) tap_->on_action(id_, *action);
    execute(*action);
  }
}

void ConnectionSession::execute(core::Action& action) {
  std::visit(Overloaded{
                 [&](core::action::Send& send) {
                   if (stream_closed_) return;
                   SlotLoan* loan = loans_held_ > 0 && !send.payload.empty() ? claim_loan(send.payload) : nullptr;
                   unsent_.push_back(QueuedSend{send, loan});
                 },
                 [&](core::action::CallPlugin& call) { do_call(call); },
                 [&](core::action::Close& close) {
                   close_mode_ = close.mode;
                   plugin::nbdkit_abi::connection_ending(id_);
                   if (close.mode == core::CloseMode::abort) {
                     drop_unsent();  // a forced close sends nothing more
                     do_close();
                   }
                 },
                 [&](core::action::StartTls& start) { tls_pending_ = start.early; },
                 [&](core::action::Finished&) {
                   finished_ = true;
                   timer_at_.reset();
                   ++timer_generation_;
                   timer_.cancel();
                   if (!stream_closed_) do_close();  // gives back every loan before on_finished
                   if (log::verbose())
                     log("end", std::string("reason=") + core::to_string(conn_.stats().end_reason) +
                                    " requests=" + std::to_string(conn_.stats().requests));
                   context_.on_finished(id_);
                 },
             },
             action);
}

void ConnectionSession::kick() {
  if (finished_) return;
  if (!stream_closed_ && !writing_ && !unsent_.empty()) do_write();
  if (!stream_closed_ && close_mode_ && !writing_ && unsent_.empty()) do_close();
  if (tls_pending_ && !stream_closed_ && !close_mode_ && !writing_ && unsent_.empty()) {
    const auto early = *tls_pending_;
    tls_pending_.reset();
    do_start_tls(early);
  }
  if (!stream_closed_ && !close_mode_ && !peer_closed_ && !send_failed_ && !reading_ && conn_.wants_read())
    do_read();
  arm_timer();
}

void ConnectionSession::do_read() {
  read_target_ = conn_.read_window();
  read_into_window_ = !read_target_.empty();
  if (!read_into_window_) {
    fallback_.resize(fallback_bytes);
    read_target_ = fallback_;
  }
  // The rest of a large write payload: wake once a good part of it is here (see
  // bulk_receive_bytes). A mark of 1 is the kernel's default, for everything else.
  const bool bulk = read_into_window_ && read_target_.size() >= bulk_receive_bytes;
  bulk_wait_ = stream_->set_receive_low_water(bulk ? bulk_receive_bytes : 1) && bulk;
  read_wait_begin(bulk_wait_);
  reading_ = true;
  stream_->async_read_some(read_target_, [self = shared_from_this()](const boost::system::error_code& ec,
                                                                     std::size_t n) { self->on_read(ec, n); });
}

void ConnectionSession::on_read(const boost::system::error_code& ec, std::size_t n) {
  reading_ = false;
  read_wait_end(bulk_wait_);
  bulk_wait_ = false;
  if (finished_ || stream_closed_) return;
  if (ec) {
    if (ec == asio::error::operation_aborted || peer_closed_) return;
    peer_closed_ = true;  // EOF, reset, or any read error: the peer is gone
    plugin::nbdkit_abi::connection_ending(id_);  // this connection's nbdkit_nanosleep wakes
    feed(core::input::PeerClosed{});
    return;
  }
  feed(core::input::BytesReceived{std::span<const std::byte>(read_target_.data(), n)});
}

void ConnectionSession::do_write() {
  gather_.clear();
  std::size_t sends = 0;
  for (const auto& [send, loan] : unsent_) {
    const std::size_t pieces = 1 + (loan ? loan->loan.pieces().size() : 1);
    if (sends > 0 && gather_.size() + pieces > gather_pieces_max) break;
    if (!send.header.empty()) gather_.emplace_back(send.header.data(), send.header.size());
    if (loan) {
      for (const auto& piece : loan->loan.pieces()) gather_.emplace_back(piece.data, piece.size);
    } else if (!send.payload.empty()) {
      gather_.emplace_back(send.payload.data(), send.payload.size());
    }
    ++sends;
  }
  writing_ = true;
  stream_->async_write(gather_, [self = shared_from_this(), sends](const boost::system::error_code& ec,
                                                                   std::size_t) { self->on_write(ec, sends); });
}

void ConnectionSession::on_write(const boost::system::error_code& ec, std::size_t sends) {
  writing_ = false;
  if (finished_ || stream_closed_) return;  // aborted: these Sends were dropped
  if (ec) {
    drop_unsent();
    if (!send_failed_) {
      send_failed_ = true;  // also after PeerClosed: the core still waits for these Sends
      feed(core::input::SendFailed{});
    }
    return;
  }
  // Pop first: feeding may emit new Sends, which queue behind the remaining ones.
  for (std::size_t i = 0; i < sends; ++i) {
    if (SlotLoan* loan = unsent_.front().loan) give_back(*loan);
    unsent_.pop_front();
  }
  for (std::size_t i = 0; i < sends; ++i) feed_one(core::input::SendDone{});
  kick();
}

int ConnectionSession::run_call(const core::PluginCall& call) {
  int err = 0;
  {
    const RunningCall running(id_, call.kind);  // named in the exit watchdog's report if it never returns
    err = context_.host.run(plugin_state_, call);
  }
  log_call(call, err);
  return logged(err);
}

// -v: the call with its arguments and result, as nbdkit's debug output shows it.
void ConnectionSession::log_call(const core::PluginCall& call, int err) const {
  if (!log::verbose()) return;
  log::debug("conn=" + std::to_string(id_) + " " + describe_plugin_call(context_.host.plugin().name(), call, err));
}

int ConnectionSession::logged(int err) {
  if (err == 0) return 0;
  // As nbdkit: a message the plugin attached is an error line, a bare errno a debug line.
  const std::string& message = plugin::PluginHost::last_error();
  const std::string line = "conn=" + std::to_string(id_) + " plugin: " +
                           (message.empty() ? std::string(std::strerror(err)) : message);
  if (message.empty()) log::debug(line);
  else log::error(line);
  return err;
}

bool runs_inline(bool nonblocking_plugin, const core::action::CallPlugin& call) {
  if (!nonblocking_plugin || call.slot == core::lifecycle_slot) return false;
  const bool copies_payload = call.call.kind == core::CallKind::pread || call.call.kind == core::CallKind::pwrite;
  return !copies_payload || call.call.count <= inline_copy_bytes_max;
}

void ConnectionSession::do_call(const core::action::CallPlugin& call) {
  if (runs_inline(context_.inline_data_calls, call)) {
    const bool lend = context_.lend_reads && call.call.kind == core::CallKind::pread &&
                      call.call.count >= loan_bytes_min && !stream_closed_;
    const int err = lend ? run_lent_read(call) : run_call(call.call);
    queue_inline(completed(call.slot, err));
    return;
  }
  context_.workers->submit(
      [self = shared_from_this(), call] { self->on_worker_done(self->completed(call.slot, self->run_call(call.call))); });
}

int ConnectionSession::run_lent_read(const core::action::CallPlugin& call) {
  const auto index = static_cast<std::size_t>(call.slot);
  if (index >= loans_.size()) loans_.resize(index + 1);
  if (!loans_[index]) loans_[index] = std::make_unique<SlotLoan>();  // once per slot
  SlotLoan& held = *loans_[index];
  give_back(held);  // a loan whose reply was never sent (the slot was freed unanswered)
  int err = 0;
  {
    const RunningCall running(id_, call.call.kind);
    err = context_.host.lend(plugin_state_, call.call, held.loan);
  }
  if (err != ENOTSUP) log_call(call.call, err);
  if (err == ENOTSUP) return run_call(call.call);
  if (err != 0) return logged(err);
  held.buffer = call.call.buffer.first(static_cast<std::size_t>(call.call.count));
  ++loans_held_;
  return 0;
}

// The loan behind a Send's payload. The core sends a read's whole buffer as one payload
// (reply_success in core/transmission.cpp); a payload covering only part of a lent buffer
// would send bytes nobody wrote, so it is asserted against rather than handled.
ConnectionSession::SlotLoan* ConnectionSession::claim_loan(std::span<const std::byte> payload) {
  for (auto& held : loans_) {
    if (!held || held->loan.empty()) continue;
    const std::byte* begin = held->buffer.data();
    const std::byte* end = begin + held->buffer.size();
    if (payload.data() >= end || payload.data() + payload.size() <= begin) continue;
    NBDD_ASSERT(payload.data() == begin && payload.size() == held->buffer.size());
    return held.get();
  }
  return nullptr;
}

void ConnectionSession::give_back(SlotLoan& held) {
  if (held.loan.empty()) return;
  context_.host.return_loan(held.loan);
  --loans_held_;
}

// Safe once nothing is being written: after a write completes, or once the stream is
// closed (closing a socket waits out a send in progress on another thread).
void ConnectionSession::give_back_all() {
  for (auto& held : loans_)
    if (held) give_back(*held);
}

void ConnectionSession::drop_unsent() {
  for (auto& queued : unsent_)
    if (queued.loan) give_back(*queued.loan);
  unsent_.clear();
}

void ConnectionSession::on_worker_done(const Completion& c) {
  bool first = false;
  {
    const std::lock_guard lock(worker_done_mutex_);
    first = worker_done_.empty();
    worker_done_.push_back(c);
  }
  if (first) post_and_wake(strand_, loop_, [self = shared_from_this()] { self->feed_worker_done(); });
}

void ConnectionSession::feed_worker_done() {
  {
    const std::lock_guard lock(worker_done_mutex_);
    worker_batch_.swap(worker_done_);  // both keep their capacity: no allocation
  }
  for (const auto& done : worker_batch_) feed_completion(done);
  worker_batch_.clear();
  kick();
}

void ConnectionSession::do_close() {
  if (stream_closed_) return;
  stream_closed_ = true;
  if (close_mode_ == core::CloseMode::flush_then_close) stream_->shutdown_and_close();
  else stream_->close();
  give_back_all();  // nothing can send them now; Finished relies on this (on_finished may unload)
}

void ConnectionSession::arm_timer() {
  const auto deadline = conn_.deadline();
  if (deadline == timer_at_) return;
  timer_at_ = deadline;
  const auto generation = ++timer_generation_;
  if (!deadline) {
    timer_.cancel();
    return;
  }
  timer_.expires_at(to_time_point(*deadline));
  timer_.async_wait([self = shared_from_this(), generation](const boost::system::error_code& ec) {
    self->on_timer(ec, generation);
  });
}

void ConnectionSession::on_timer(const boost::system::error_code& ec, std::uint64_t generation) {
  (void)ec;  // a stale or cancelled wait is recognised by its generation
  if (finished_ || generation != timer_generation_) return;
  timer_at_.reset();
  feed(core::input::DeadlineReached{});
}

}  // namespace nbdd::net
