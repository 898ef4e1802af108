// Transmission phase: request slots, plugin calls gated by the thread model, replies.
// A slot lives from the request header to the SendDone of its reply; its buffer (READ
// data, WRITE payload, BLOCK_STATUS payload) is pooled and never moves while a plugin
// call or a Send refers to it.
#include <algorithm>

#include "core/assert.hpp"
#include "core/connection_impl.hpp"
#include "core/errno_map.hpp"

namespace nbdd::core {
namespace {

bool is_cmd(const ParsedRequest& req, nbd::Cmd cmd) { return req.type == static_cast<std::uint16_t>(cmd); }

std::size_t round_up_capacity(std::uint64_t bytes) {
  std::size_t cap = 4096;
  while (cap < bytes) cap *= 2;
  return cap;
}

}  // namespace

// ---- requests ---------------------------------------------------------------------------

// Parses one request header if a whole one is staged and a slot is free.
// Returns true when the reader may continue.
bool Connection::Impl::try_parse_request() {
  const std::size_t header_bytes = request_header_bytes(extended_);
  if (staged() < header_bytes || !slot_available()) return false;
  const auto parsed = parse_request_header(staged_span(header_bytes), extended_);
  if (!parsed) {
    abort(EndReason::protocol_violation);  // wrong magic: framing is lost (§6.2)
    return false;
  }
  const ParsedRequest req = *parsed;
  if (is_cmd(req, nbd::Cmd::disc)) {
    consume(header_bytes);
    ++stats_.requests;
    begin_closing(EndReason::client_disc);  // no reply; finish what is in flight, then close
    return false;
  }
  const std::uint64_t payload = request_payload_bytes(req, extended_);
  // Absurd payloads lose us the stream or memory: hard disconnect (§6.2).
  if ((extended_ && payload > tctx_.request_bytes_max) || payload > limits_.write_discard_bytes_max) {
    abort(EndReason::protocol_violation);
    return false;
  }
  // The gate is decided here, once, when the header is parsed.
  const nbd::Error err = status_ != Status::active ? nbd::Error::eshutdown : validate_request(req, tctx_);
  if (err != nbd::Error::ok) {
    const std::uint32_t index = *pick_slot(0);
    consume(header_bytes);
    return refuse_request(index, req, err, payload);
  }
  const bool has_data = is_cmd(req, nbd::Cmd::read) || is_cmd(req, nbd::Cmd::write);
  const auto index = pick_slot(has_data ? req.length : 0);
  if (!index) {
    blocked_on_budget_ = true;  // waits until earlier replies give buffer space back
    return false;
  }
  consume(header_bytes);
  ++stats_.requests;
  take_slot(*index);
  Slot& s = slots_[*index];
  s.req = req;
  if (is_cmd(req, nbd::Cmd::write) && req.length > 0) {
    s.payload_filled = 0;
    slot_state(s, SlotState::receiving);
    receiving_slot_ = *index;
    reader_ = Reader::write_payload;
    return true;
  }
  accept_request(*index);
  return true;
}

// Answers a request without calling the plugin. Its payload is still consumed so the
// stream stays in sync, and the error goes out only after the payload's last byte: a
// client (libnbd) that is still sending the payload takes an earlier reply for a broken
// server and drops the connection with everything in flight (nbdkit answers after it too).
bool Connection::Impl::refuse_request(std::uint32_t slot_index, const ParsedRequest& req, nbd::Error err,
                                      std::uint64_t payload) {
  ++stats_.requests;
  take_slot(slot_index);
  Slot& s = slots_[slot_index];
  s.req = req;
  if (payload == 0) {
    reply_error(slot_index, err);
    return true;
  }
  s.refused = err;
  slot_state(s, SlotState::receiving);
  receiving_slot_ = slot_index;
  discard_left_ = payload;
  reader_ = Reader::payload_discard;
  return true;
}

void Connection::Impl::on_payload_bytes() {
  Slot& s = slots_[receiving_slot_];
  if (s.payload_filled < s.req.length) return;
  reader_ = Reader::request_header;
  accept_request(receiving_slot_);
}

// n bytes of a refused request's payload were dropped; after the last one, its reply.
void Connection::Impl::on_discard_bytes(std::size_t n) {
  discard_left_ -= n;
  if (discard_left_ != 0) return;
  reader_ = Reader::request_header;
  Slot& s = slots_[receiving_slot_];
  const nbd::Error err = s.refused;
  s.refused = nbd::Error::ok;
  reply_error(receiving_slot_, err);
}

void Connection::Impl::accept_request(std::uint32_t slot_index) {
  Slot& s = slots_[slot_index];
  if (s.req.length == 0 && !is_cmd(s.req, nbd::Cmd::flush)) {
    reply_success(slot_index);  // zero length: success with no effect, no plugin call
    return;
  }
  slot_state(s, SlotState::queued);
  call_queue_.push_back(QueuedCall{data_call_kind(s.req), slot_index});
}

// ---- replies ----------------------------------------------------------------------------

void Connection::Impl::reply_error(std::uint32_t slot_index, nbd::Error err) {
  Slot& s = slots_[slot_index];
  if (aborted_) return free_slot(slot_index);
  const bool chunked = is_cmd(s.req, nbd::Cmd::read) || is_cmd(s.req, nbd::Cmd::block_status);
  const std::size_t n = encode_error(s.header, style_, chunked, err, s.req.cookie, s.req.offset);
  ++stats_.replies;
  ++stats_.error_replies;
  if (err == nbd::Error::eshutdown) ++stats_.eshutdown_replies;
  slot_state(s, SlotState::replying);
  emit_send({s.header.data(), n}, {}, UnackedSend{true, slot_index});
}

void Connection::Impl::reply_success(std::uint32_t slot_index) {
  Slot& s = slots_[slot_index];
  if (aborted_) return free_slot(slot_index);
  std::size_t n = 0;
  std::span<const std::byte> payload;
  if (is_cmd(s.req, nbd::Cmd::read) && s.req.length > 0) {
    n = encode_read_data(s.header, style_, s.req.cookie, s.req.offset, s.req.length);
    payload = {s.buffer.get(), static_cast<std::size_t>(s.req.length)};
  } else if (is_cmd(s.req, nbd::Cmd::read) && style_ != ReplyStyle::simple) {
    n = encode_none(s.header, style_, s.req.cookie, s.req.offset);  // content chunks need >= 1 byte
  } else if (is_cmd(s.req, nbd::Cmd::block_status)) {
    if (!encode_block_status_reply(slot_index)) return reply_error(slot_index, nbd::Error::eio);
    return;
  } else {
    n = encode_done(s.header, style_, s.req.cookie, s.req.offset);
  }
  ++stats_.replies;
  slot_state(s, SlotState::replying);
  emit_send({s.header.data(), n}, payload, UnackedSend{true, slot_index});
}

// Turns the plugin's extents into one status chunk: clipped to the request, merged
// where neighbours agree, at most one extent for REQ_ONE. false: nothing usable.
bool Connection::Impl::encode_block_status_reply(std::uint32_t slot_index) {
  Slot& s = slots_[slot_index];
  const std::uint64_t end = s.req.offset + s.req.length;
  const bool req_one = (s.req.flags & nbd::cmd_flag_req_one) != 0;
  std::uint64_t pos = s.req.offset;
  wire_extents_.clear();
  for (const Extent& e : s.extents) {
    if (e.offset > pos) break;                          // a gap: stop at what is known
    if (e.length == 0 || e.offset + e.length <= pos) continue;
    const std::uint64_t len = std::min(e.offset + e.length, end) - pos;
    const std::uint32_t flags = e.type & (nbd::state_hole | nbd::state_zero);
    if (!wire_extents_.empty() && wire_extents_.back().flags == flags)
      wire_extents_.back().length += len;
    else if (wire_extents_.size() < limits_.extents_per_reply_max)
      wire_extents_.push_back(WireExtent{len, flags});
    else
      break;
    pos += len;
    if (pos >= end || req_one) break;
  }
  if (wire_extents_.empty()) return false;
  if (req_one) wire_extents_.resize(1);
  const std::size_t payload_bytes = block_status_payload_bytes(style_, wire_extents_.size());
  ensure_buffer(s, payload_bytes, true);  // bounded by extents_per_reply_max
  encode_block_status_payload({s.buffer.get(), payload_bytes}, style_, nbd::base_allocation_id, wire_extents_);
  const std::size_t n = encode_block_status_header(s.header, style_, s.req.cookie, s.req.offset, payload_bytes);
  ++stats_.replies;
  slot_state(s, SlotState::replying);
  emit_send({s.header.data(), n}, {s.buffer.get(), payload_bytes}, UnackedSend{true, slot_index});
  return true;
}

void Connection::Impl::on_data_done(std::uint32_t slot_index, int err) {
  NBDD_ASSERT(running_data_calls_ > 0);
  --running_data_calls_;
  Slot& s = slots_[slot_index];
  if (aborted_) {
    free_slot(slot_index);  // forced: the result is dropped, the buffer is free again
  } else if (err != 0) {
    reply_error(slot_index, errno_to_nbd(err, s.req.flags));
  } else {
    reply_success(slot_index);
  }
  release_gate_if_idle();
}

// ---- slots and buffers ------------------------------------------------------------------

// A free slot whose buffer can hold `buffer_bytes` within the budget, growing one if
// needed; nullopt when the budget is exhausted by slots still in use.
std::optional<std::uint32_t> Connection::Impl::pick_slot(std::uint64_t buffer_bytes) {
  if (free_slots_.empty()) {
    NBDD_ASSERT(slots_.size() < limits_.in_flight_max);
    free_slots_.push_back(static_cast<std::uint32_t>(slots_.size()));
    slots_.emplace_back();
  }
  if (buffer_bytes == 0) return free_slots_.back();
  // From the back: the slots freed last (LIFO) hold buffers; never-used slots sit in front.
  for (auto it = free_slots_.rbegin(); it != free_slots_.rend(); ++it)
    if (slots_[*it].capacity >= buffer_bytes) return *it;
  const std::uint32_t index = free_slots_.back();
  if (!ensure_buffer(slots_[index], buffer_bytes, false)) return std::nullopt;
  return index;
}

bool Connection::Impl::ensure_buffer(Slot& s, std::uint64_t bytes, bool over_budget_ok) {
  if (s.capacity >= bytes) return true;
  std::size_t cap = round_up_capacity(bytes);
  auto fits = [&](std::size_t c) { return buffer_bytes_ - s.capacity + c <= limits_.slot_buffer_bytes_max; };
  if (!over_budget_ok && !fits(cap)) {
    cap = static_cast<std::size_t>(bytes);
    for (std::uint32_t i : free_slots_) {  // give back idle buffers first
      if (fits(cap)) break;
      Slot& other = slots_[i];
      if (&other == &s || other.capacity == 0) continue;
      buffer_bytes_ -= other.capacity;
      other.buffer.reset();
      other.capacity = 0;
    }
    if (!fits(cap)) return false;
  }
  buffer_bytes_ = buffer_bytes_ - s.capacity + cap;
  s.buffer = std::make_unique_for_overwrite<std::byte[]>(cap);
  s.capacity = cap;
  return true;
}

void Connection::Impl::take_slot(std::uint32_t slot_index) {
  // pick_slot() mostly returns the last free slot: search from the back, so the common
  // case costs one comparison and an erase at the end.
  auto it = std::find(free_slots_.rbegin(), free_slots_.rend(), slot_index);
  NBDD_ASSERT(it != free_slots_.rend());
  free_slots_.erase(std::next(it).base());
  ++stats_.in_flight;
}

void Connection::Impl::free_slot(std::uint32_t slot_index) {
  Slot& s = slots_[slot_index];
  NBDD_ASSERT(s.state != SlotState::free);
  s.state = SlotState::free;
  s.refused = nbd::Error::ok;
  free_slots_.push_back(slot_index);
  --stats_.in_flight;
  blocked_on_budget_ = false;  // retry a request that waited for buffer space
}

void Connection::Impl::slot_state(Slot& s, SlotState next) { s.state = next; }

// ---- plugin calls and the thread model ----------------------------------------------------

bool Connection::Impl::gate_required() const {
  return config_.thread_model == ThreadModel::serialize_connections ||
         config_.thread_model == ThreadModel::serialize_all_requests;
}

void Connection::Impl::start_calls() {
  while (!call_queue_.empty() && may_start(call_queue_.front())) {
    const QueuedCall call = call_queue_.front();
    call_queue_.pop_front();
    emit_call(call);
  }
}

bool Connection::Impl::may_start(const QueuedCall& call) {
  if (lifecycle_running_) return false;                            // open/close run alone
  if (call.lifecycle() && running_data_calls_ > 0) return false;   // close after the last data call
  if (config_.thread_model != ThreadModel::parallel && running_data_calls_ > 0) return false;
  if (!gate_required() || gate_ == GateState::held) return true;
  if (gate_ == GateState::waiting) return false;
  if (config_.gate->try_acquire(config_.id)) {
    gate_ = GateState::held;
    return true;
  }
  gate_ = GateState::waiting;  // input::GateOpened will follow
  return false;
}

void Connection::Impl::emit_call(const QueuedCall& call) {
  ++stats_.plugin_calls;
  ++stats_.running_calls;
  if (call.lifecycle()) {
    lifecycle_running_ = true;
    lifecycle_kind_ = call.kind;
    PluginCall pc;
    pc.kind = call.kind;
    pc.readonly = config_.read_only;
    if (call.kind == CallKind::open) {
      set_handle(HandleState::opening);
      export_ = ExportInfo{};
      pc.export_name = requested_name_;  // unchanged until the call's PluginDone
      pc.info = &export_;
      pc.want_description = pending_.wants_description;
    } else if (call.kind == CallKind::list_exports) {
      listing_.clear();
      pc.exports = &listing_;
      pc.exports_max = limits_.exports_listed_max;
    }
    emit(action::CallPlugin{lifecycle_slot, pc});
    return;
  }
  Slot& s = slots_[call.slot];
  slot_state(s, SlotState::running);
  ++running_data_calls_;
  emit(action::CallPlugin{SlotId{call.slot}, data_call(call.kind, call.slot)});
}

CallKind Connection::Impl::data_call_kind(const ParsedRequest& r) {
  switch (static_cast<nbd::Cmd>(r.type)) {
    case nbd::Cmd::read: return CallKind::pread;
    case nbd::Cmd::write: return CallKind::pwrite;
    case nbd::Cmd::flush: return CallKind::flush;
    case nbd::Cmd::trim: return CallKind::trim;
    case nbd::Cmd::cache: return CallKind::cache;
    case nbd::Cmd::write_zeroes: return CallKind::zero;
    case nbd::Cmd::block_status: return CallKind::extents;
    default: break;
  }
  NBDD_ASSERT(false && "validated command");
  return CallKind::pread;
}

// `kind` is data_call_kind(s.req), chosen once when the request was queued.
PluginCall Connection::Impl::data_call(CallKind kind, std::uint32_t slot_index) {
  Slot& s = slots_[slot_index];
  const ParsedRequest& r = s.req;
  PluginCall pc;
  pc.kind = kind;
  pc.offset = r.offset;
  pc.count = r.length;
  const std::uint32_t fua = (r.flags & nbd::cmd_flag_fua) ? call_flag::fua : 0;
  switch (pc.kind) {
    case CallKind::pread:
      pc.buffer = {s.buffer.get(), static_cast<std::size_t>(r.length)};
      break;
    case CallKind::pwrite:
      pc.buffer = {s.buffer.get(), static_cast<std::size_t>(r.length)};
      pc.flags = fua;
      break;
    case CallKind::trim:
      pc.flags = fua;
      break;
    case CallKind::zero:
      pc.flags = fua | ((r.flags & nbd::cmd_flag_no_hole) ? 0 : call_flag::may_trim) |
                 ((r.flags & nbd::cmd_flag_fast_zero) ? call_flag::fast_zero : 0);
      break;
    case CallKind::extents:
      s.extents.clear();
      pc.extents = &s.extents;
      pc.flags = (r.flags & nbd::cmd_flag_req_one) ? call_flag::req_one : 0;
      pc.extents_max = pc.flags ? 1 : limits_.extents_per_reply_max;
      break;
    default: break;  // flush, cache: offset and count only
  }
  return pc;
}

// serialize_all_requests: the gate is held per call and handed on when idle, so a busy
// connection cannot starve the others. serialize_connections: held from open to close.
void Connection::Impl::release_gate_if_idle() {
  if (gate_ != GateState::held || lifecycle_running_ || running_data_calls_ > 0) return;
  if (config_.thread_model == ThreadModel::serialize_connections && handle_ != HandleState::none) return;
  gate_release();
}

void Connection::Impl::gate_release() {
  if (gate_ == GateState::held)
    config_.gate->release(config_.id);
  else if (gate_ == GateState::waiting && config_.gate->cancel(config_.id))
    ++stale_gate_opened_;  // its GateOpened is already on the way
  gate_ = GateState::none;
}

// Calls not started yet are dropped (forced close, peer gone); a queued plugin close
// is kept: it must still run.
void Connection::Impl::drop_unstarted_work() {
  std::deque<QueuedCall> keep;
  for (const QueuedCall& call : call_queue_) {
    if (call.lifecycle()) {
      if (call.kind == CallKind::close) keep.push_back(call);
    } else {
      free_slot(call.slot);
    }
  }
  call_queue_.swap(keep);
  if (gate_ == GateState::waiting && call_queue_.empty()) gate_release();
}

}  // namespace nbdd::core
