// Inputs, the byte reader, status transitions and how a connection ends.
// Everything that changes Status lives in this file.
#include <algorithm>
#include <cstring>

#include "core/assert.hpp"
#include "core/connection_impl.hpp"
#include "core/overloaded.hpp"

namespace nbdd::core {
namespace {

// How much the driver may read at once when nothing larger is expected: several
// pipelined requests per syscall in transmission, small reads during the handshake.
constexpr std::size_t handshake_read_bytes = 4096;
constexpr std::size_t transmission_read_bytes = 64 * 1024;
// A WRITE payload at least this large is read straight into its slot (read_window), which
// saves copying it out of the stage. A smaller one is read into the stage with whatever
// follows it, so one read can carry many small writes and the headers after them (issue
// 26: a read per request otherwise); copying a few KiB costs far less than a read.
constexpr std::uint64_t direct_payload_bytes_min = 64 * 1024;

}  // namespace

Connection::Impl::Impl(const ConnectionConfig& config) : config_(config), limits_(config_.limits) {
  NBDD_ASSERT(limits_.in_flight_max > 0);
  NBDD_ASSERT(limits_.request_bytes_max <= limits_.slot_buffer_bytes_max);
  const bool strict = config_.thread_model == ThreadModel::serialize_connections ||
                      config_.thread_model == ThreadModel::serialize_all_requests;
  NBDD_ASSERT(!strict || config_.gate != nullptr);
  now_ = config_.accepted_at;
  // Slots are built on demand (most connections use a handful of the in_flight_max); the
  // reservation keeps every Slot where it is as more are added.
  slots_.reserve(limits_.in_flight_max);
  free_slots_.reserve(limits_.in_flight_max);
  actions_.reserve(16);
  stage_make_room(handshake_read_bytes);
  start_lifecycle(CallKind::preconnect);  // the greeting follows its success
}

// ---- inputs ---------------------------------------------------------------------------

void Connection::Impl::handle(Instant now, const Input& input) {
  NBDD_ASSERT(!finished_);
  if (now > now_) now_ = now;  // tolerate equal or stale clocks; time never runs back
  dispatch(input);
  run_reader();
  start_calls();
  check_end();
  update_idle();
}

void Connection::Impl::dispatch(const Input& input) {
  std::visit(Overloaded{
                 [&](const input::BytesReceived& in) { on_bytes(in.bytes); },
                 [&](const input::PeerClosed&) {
                   window_ = {};
                   if (status_ < Status::closing) {
                     drop_unstarted_work();
                     begin_closing(EndReason::peer_closed);
                   }
                 },
                 [&](const input::SendDone&) { on_send_done(); },
                 [&](const input::SendFailed&) {
                   if (!unacked_.empty()) unacked_.pop_front();  // that Send is over too
                   abort(EndReason::send_failed);
                 },
                 [&](const input::PluginDone& in) { on_plugin_done(in.slot, in.err); },
                 [&](const input::ShutdownRequested&) { begin_draining(); },
                 [&](const input::ShutdownForced&) {
                   // Any phase, handshake included: nothing more is sent, running calls
                   // are still reported, an open handle is still closed.
                   begin_draining();
                   abort(EndReason::shutdown_forced);
                 },
                 [&](const input::TlsDone& in) { on_tls_done(in.ok); },
                 [&](const input::DisconnectRequested& in) {
                   // Only meaningful from a connected callback (nbdkit_disconnect(3)).
                   if (!disconnect_effective()) {
                     ++stats_.ignored_disconnects;
                   } else if (in.force) {
                     abort(EndReason::forced);
                   } else {
                     begin_draining();
                   }
                 },
                 [&](const input::DeadlineReached&) { on_deadline(); },
                 [&](const input::GateOpened&) {
                   // A handover that raced with our cancel is stale: the gate already
                   // passed on when we cancelled (see call_gate.hpp).
                   if (stale_gate_opened_ > 0) {
                     --stale_gate_opened_;
                     return;
                   }
                   NBDD_ASSERT(gate_ == GateState::waiting);  // one GateOpened per handover
                   gate_ = GateState::held;
                 },
             },
             input);
}

void Connection::Impl::on_bytes(std::span<const std::byte> bytes) {
  stats_.bytes_received += bytes.size();
  const bool in_window = !window_.empty() && bytes.data() == window_.data();
  if (in_window) {
    NBDD_ASSERT(bytes.size() <= window_.size());
    window_ = {};
    if (reader_ == Reader::stopped) return;
    if (window_is_slot_) {
      slots_[receiving_slot_].payload_filled += bytes.size();
      on_payload_bytes();
    } else {
      stage_end_ += bytes.size();
    }
    return;
  }
  window_ = {};
  if (reader_ == Reader::stopped || bytes.empty()) return;  // late bytes after we stopped reading
  if (reader_ == Reader::awaiting_tls) {
    // The driver must not read while the TLS handshake runs (wants_read() is false): these
    // bytes belong to TLS and cannot be interpreted here.
    abort(EndReason::protocol_violation);
    return;
  }
  // A foreign buffer: copy once, payload bytes straight into their slot.
  if (reader_ == Reader::write_payload && staged() == 0) {
    Slot& s = slots_[receiving_slot_];
    const std::uint64_t want = s.req.length - s.payload_filled;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(want, bytes.size()));
    std::memcpy(s.buffer.get() + s.payload_filled, bytes.data(), n);
    s.payload_filled += n;
    bytes = bytes.subspan(n);
    on_payload_bytes();
  }
  if (reader_ == Reader::payload_discard && staged() == 0) {  // dropped without staging
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(discard_left_, bytes.size()));
    bytes = bytes.subspan(n);
    on_discard_bytes(n);
  }
  if (!bytes.empty() && !stage_append(bytes)) abort(EndReason::protocol_violation);
}

void Connection::Impl::on_plugin_done(SlotId slot, int err) {
  NBDD_ASSERT(stats_.running_calls > 0);
  --stats_.running_calls;
  if (slot == lifecycle_slot) {
    NBDD_ASSERT(lifecycle_running_);
    on_lifecycle_done(err);
    return;
  }
  const auto index = static_cast<std::uint32_t>(slot);
  NBDD_ASSERT(index < slots_.size() && slots_[index].state == SlotState::running);
  on_data_done(index, err);
}

void Connection::Impl::on_deadline() {
  if (close_emitted_ && !aborted_ && close_at_ && !unacked_.empty() &&
      now_ >= *close_at_ + limits_.grace_period) {
    abort(EndReason::grace_expired);  // the peer does not read our last replies
    return;
  }
  if (close_emitted_) return;
  if (idle_since_ && now_ >= *idle_since_ + limits_.grace_period) {
    // A request the client sent but we never took (a WRITE payload still arriving or being
    // discarded, or a header staged behind back-pressure because our replies were not
    // read) can never be answered now: hard-disconnect rather than close as if everything
    // had been answered.
    const bool request_pending = reader_ == Reader::write_payload || reader_ == Reader::payload_discard ||
                                 (reader_ == Reader::request_header && staged() > 0);
    if (request_pending)
      abort(EndReason::grace_expired);
    else
      begin_closing(EndReason::grace_expired);
    return;
  }
  const bool waiting_for_plugin = reader_ == Reader::awaiting_plugin;
  if (phase_ == Phase::handshake && !waiting_for_plugin &&
      now_ >= config_.accepted_at + limits_.handshake_timeout)
    abort(EndReason::handshake_timeout);
}

// ---- reader ---------------------------------------------------------------------------

void Connection::Impl::run_reader() {
  while (!aborted_ && reader_step()) {
  }
}

// One step of the reader; false when it needs more bytes or is blocked.
bool Connection::Impl::reader_step() {
  switch (reader_) {
    case Reader::client_flags:
      if (staged() < 4) return false;
      on_client_flags(staged_span(4));
      return true;
    case Reader::option_header:
      if (staged() < nbd::option_header_bytes) return false;
      on_option_header(staged_span(nbd::option_header_bytes));
      return true;
    case Reader::option_data: {
      if (staged() < option_len_) return false;
      const std::size_t n = option_len_;
      reader_ = Reader::option_header;  // handlers may change it (GO -> awaiting_plugin)
      on_option(staged_span(n));
      consume(n);
      return true;
    }
    case Reader::option_discard: {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(discard_left_, staged()));
      consume(n);
      discard_left_ -= n;
      if (discard_left_ != 0) return false;
      reader_ = Reader::option_header;
      // Spec §3.2.6: every SET_META_CONTEXT replaces the selection, even one that fails.
      if (option_ == static_cast<std::uint32_t>(nbd::Opt::set_meta_context)) meta_selected_ = false;
      if (status_ == Status::draining)
        option_error(nbd::Rep::err_shutdown, "server is shutting down");
      else if (tls_required_now() && option_ != static_cast<std::uint32_t>(nbd::Opt::starttls) &&
               option_ != static_cast<std::uint32_t>(nbd::Opt::abort))
        option_error(nbd::Rep::err_tls_reqd, "TLS is required");
      else
        option_error(nbd::Rep::err_too_big, "option data too long");
      return true;
    }
    case Reader::request_header:
      return try_parse_request();
    case Reader::write_payload: {
      if (staged() == 0) return false;
      Slot& s = slots_[receiving_slot_];
      const std::uint64_t want = s.req.length - s.payload_filled;
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(want, staged()));
      std::memcpy(s.buffer.get() + s.payload_filled, stage_.get() + stage_begin_, n);
      consume(n);
      s.payload_filled += n;
      on_payload_bytes();
      return true;
    }
    case Reader::payload_discard: {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(discard_left_, staged()));
      consume(n);
      on_discard_bytes(n);
      return reader_ != Reader::payload_discard;
    }
    case Reader::awaiting_plugin:
    case Reader::awaiting_tls:
    case Reader::stopped:
      return false;
  }
  return false;
}

bool Connection::Impl::stage_append(std::span<const std::byte> bytes) {
  // Foreign deliveries may arrive on top of a full stage; allow twice the bound, no more.
  const std::size_t cap_max = 2 * std::size_t{limits_.staged_bytes_max};
  if (staged() + bytes.size() > cap_max) return false;
  stage_make_room(bytes.size());
  std::memcpy(stage_.get() + stage_end_, bytes.data(), bytes.size());
  stage_end_ += bytes.size();
  return true;
}

// Makes `want` bytes free after stage_end_, compacting first and growing if needed.
// Never called while a read window into the stage is outstanding.
void Connection::Impl::stage_make_room(std::size_t want) {
  if (stage_cap_ - stage_end_ >= want) return;
  const std::size_t used = staged();
  if (stage_begin_ != 0) {
    if (used != 0) std::memmove(stage_.get(), stage_.get() + stage_begin_, used);
    stage_begin_ = 0;
    stage_end_ = used;
  }
  if (stage_cap_ - stage_end_ >= want) return;
  const std::size_t cap = std::max(used + want, stage_cap_ * 2);
  auto bigger = std::make_unique_for_overwrite<std::byte[]>(cap);
  if (used != 0) std::memcpy(bigger.get(), stage_.get(), used);
  stage_ = std::move(bigger);
  stage_cap_ = cap;
}

// Bytes the reader needs contiguously before it can make progress.
std::size_t Connection::Impl::contiguous_bytes_needed() const {
  switch (reader_) {
    case Reader::client_flags: return 4;
    case Reader::option_header: return nbd::option_header_bytes;
    case Reader::option_data: return option_len_;
    case Reader::request_header: return request_header_bytes(extended_);
    default: return 1;
  }
}

bool Connection::Impl::wants_read() const {
  if (finished_ || status_ >= Status::closing || aborted_) return false;
  switch (reader_) {
    case Reader::stopped:
    case Reader::awaiting_plugin:
    case Reader::awaiting_tls:
      return false;
    case Reader::request_header:
      if (!slot_available() || blocked_on_budget_) return false;  // back-pressure: in_flight_max
      break;
    default: break;
  }
  return staged() < limits_.staged_bytes_max;
}

std::span<std::byte> Connection::Impl::read_window() {
  window_ = {};
  if (!wants_read()) return {};
  if (reader_ == Reader::write_payload && staged() == 0) {
    Slot& s = slots_[receiving_slot_];
    const std::uint64_t left = s.req.length - s.payload_filled;
    if (left >= direct_payload_bytes_min) {
      window_is_slot_ = true;
      window_ = {s.buffer.get() + s.payload_filled, static_cast<std::size_t>(left)};
      return window_;
    }
  }
  const std::size_t chunk = phase_ == Phase::transmission ? transmission_read_bytes : handshake_read_bytes;
  const std::size_t needed = contiguous_bytes_needed();
  const std::size_t want = std::max(chunk, needed > staged() ? needed - staged() : 0);
  stage_make_room(want);
  window_is_slot_ = false;
  window_ = {stage_.get() + stage_end_, stage_cap_ - stage_end_};
  return window_;
}

// ---- status ---------------------------------------------------------------------------

void Connection::Impl::set_status(Status next) {
  NBDD_ASSERT(next >= status_);  // status only ever moves forward
  status_ = next;
}

void Connection::Impl::note_end(EndReason why) {
  if (stats_.end_reason == EndReason::none) stats_.end_reason = why;
}

void Connection::Impl::begin_draining() {
  if (status_ != Status::active) return;
  set_status(Status::draining);
  if (phase_ == Phase::handshake) withdraw_pending_lifecycle();
}

void Connection::Impl::begin_closing(EndReason why) {
  note_end(why);
  if (status_ < Status::closing) set_status(Status::closing);
  // A request whose payload is still arriving never reached the plugin, and a refused one
  // is answered only after its payload: either way it gets no reply now.
  if (reader_ == Reader::write_payload || reader_ == Reader::payload_discard) free_slot(receiving_slot_);
  if (phase_ == Phase::handshake) withdraw_pending_lifecycle();
  reader_ = Reader::stopped;
  window_ = {};
}

void Connection::Impl::abort(EndReason why) {
  if (aborted_) return;
  begin_closing(why);
  drop_unstarted_work();
  aborted_ = true;
  close_emitted_ = true;
  emit(action::Close{CloseMode::abort});
}

// Work whose result someone waits for: queued or running plugin calls.
std::uint32_t Connection::Impl::work_in_flight() const {
  return static_cast<std::uint32_t>(call_queue_.size()) + running_data_calls_ + (lifecycle_running_ ? 1 : 0);
}

// The grace period of a graceful disconnect runs while nothing is in flight.
void Connection::Impl::update_idle() {
  if (status_ != Status::draining || close_emitted_) {
    idle_since_.reset();
    return;
  }
  if (work_in_flight() != 0 || reader_ == Reader::awaiting_plugin)
    idle_since_.reset();
  else if (!idle_since_)
    idle_since_ = now_;
}

// Closes once nothing is left to finish, runs the plugin's close after the last data
// call returned, and emits Finished last.
void Connection::Impl::check_end() {
  if (finished_) return;
  if (status_ == Status::closing && !close_emitted_ && work_in_flight() == 0) {
    close_emitted_ = true;
    close_at_ = now_;
    emit(action::Close{CloseMode::flush_then_close});
  }
  if (!close_emitted_) return;
  if (handle_ == HandleState::open && running_data_calls_ == 0 && !lifecycle_running_) close_handle();
  const bool plugin_done = handle_ == HandleState::none;
  // A stale GateOpened still on its way is waited for, so drivers never deliver to a
  // finished connection.
  if (plugin_done && work_in_flight() == 0 && (aborted_ || unacked_.empty()) && stale_gate_opened_ == 0) {
    if (gate_ != GateState::none) gate_release();
    finished_ = true;
    set_status(Status::dead);
    emit(action::Finished{});
  }
}

// ---- output ---------------------------------------------------------------------------

void Connection::Impl::emit(Action action) { actions_.push_back(std::move(action)); }

void Connection::Impl::emit_send(std::span<const std::byte> header, std::span<const std::byte> payload,
                                 UnackedSend who) {
  NBDD_ASSERT(!aborted_);
  stats_.bytes_sent += header.size() + payload.size();
  unacked_.push_back(who);
  emit(action::Send{header, payload});
}

std::vector<std::byte>& Connection::Impl::handshake_buffer() {
  if (hs_used_ == hs_out_.size()) hs_out_.emplace_back();
  std::vector<std::byte>& out = hs_out_[hs_used_];
  out.clear();
  return out;
}

void Connection::Impl::emit_handshake_buffer() {
  if (aborted_) return;  // the buffer stays a spare
  const std::vector<std::byte>& out = hs_out_[hs_used_++];
  emit_send(out, {}, UnackedSend{false, 0});
}

// Spares are kept for the next option replies, but not all of them and not large ones: a
// LIST reply may be megabytes (exports_listed_max names and descriptions) and a client may
// pipeline up to options_per_handshake_max options, and what stays here stays for the
// connection's life.
void Connection::Impl::trim_handshake_spares() {
  if (hs_out_.size() > handshake_spares_max) hs_out_.resize(handshake_spares_max);
  for (auto& spare : hs_out_)
    if (spare.capacity() > handshake_spare_bytes_max) std::vector<std::byte>().swap(spare);
}

void Connection::Impl::emit_handshake_bytes(std::vector<std::byte> bytes) {
  handshake_buffer() = std::move(bytes);
  emit_handshake_buffer();
}

void Connection::Impl::on_send_done() {
  NBDD_ASSERT(!unacked_.empty());  // driver contract: one SendDone per Send
  const UnackedSend who = unacked_.front();
  unacked_.pop_front();
  if (!who.from_slot) {
    if (++hs_head_ == hs_used_) {  // all acknowledged: every buffer is spare
      hs_head_ = hs_used_ = 0;
      trim_handshake_spares();
    }
    return;
  }
  if (slots_[who.slot].state == SlotState::replying) free_slot(who.slot);
}

std::optional<Action> Connection::Impl::next_action() {
  if (actions_head_ == actions_.size()) {
    actions_.clear();
    actions_head_ = 0;
    return std::nullopt;
  }
  return std::move(actions_[actions_head_++]);
}

std::optional<Instant> Connection::Impl::deadline() const {
  if (finished_) return std::nullopt;
  std::optional<Instant> at;
  auto consider = [&](Instant t) {
    if (!at || t < *at) at = t;
  };
  if (close_emitted_) {
    if (!aborted_ && close_at_ && !unacked_.empty()) consider(*close_at_ + limits_.grace_period);
    return at;
  }
  if (idle_since_) consider(*idle_since_ + limits_.grace_period);
  if (phase_ == Phase::handshake && reader_ != Reader::awaiting_plugin)
    consider(config_.accepted_at + limits_.handshake_timeout);
  return at;
}

// ---- facade ---------------------------------------------------------------------------

Connection::Connection(const ConnectionConfig& config) : impl_(std::make_unique<Impl>(config)) {}
Connection::~Connection() = default;
void Connection::handle(Instant now, const Input& input) { impl_->handle(now, input); }
std::optional<Action> Connection::next_action() { return impl_->next_action(); }
std::optional<Instant> Connection::deadline() const { return impl_->deadline(); }
bool Connection::wants_read() const { return impl_->wants_read(); }
std::span<std::byte> Connection::read_window() { return impl_->read_window(); }
Status Connection::status() const { return impl_->status_; }
Phase Connection::phase() const { return impl_->phase_; }
HandleState Connection::handle_state() const { return impl_->handle_; }
const ConnectionStats& Connection::stats() const { return impl_->stats_; }
std::size_t Connection::handshake_bytes_held() const { return impl_->handshake_bytes_held(); }
std::size_t Connection::Impl::handshake_bytes_held() const {
  std::size_t held = 0;
  for (const auto& buffer : hs_out_) held += buffer.capacity();
  return held;
}
ConnectionId Connection::id() const { return impl_->config_.id; }

}  // namespace nbdd::core
