// Family "replies": every byte the server sends parses (INV-WIRE-PARSES), at most one reply
// per request and none for unknown cookies or DISC (INV-REPLY-ONCE, via the decoder), the
// graceful-disconnect reply rules (INV-GRACEFUL-ESHUTDOWN, INV-GRACEFUL-INFLIGHT-REAL-REPLY),
// the handshake shutdown rule (INV-HANDSHAKE-SHUTDOWN) and no reply before the request's
// payload has all been received (INV-NO-REPLY-BEFORE-PAYLOAD).
#include <algorithm>

#include "sim/invariants/checker_state.hpp"

namespace nbdd::sim {

namespace {
bool write_like(std::uint16_t type) {
  return type == wire::cmd::write || type == wire::cmd::write_zeroes || type == wire::cmd::trim;
}
// core's slot buffers: powers of two from 4 KiB (docs/architecture.md, "slots").
std::uint64_t buffer_capacity_bound(std::uint64_t bytes) {
  if (bytes == 0) return 0;
  std::uint64_t cap = 4096;
  while (cap < bytes) cap *= 2;
  return cap;
}
std::string name_of_option(std::span<const std::byte> data, std::uint32_t option) {
  if (option == wire::opt::export_name) return {reinterpret_cast<const char*>(data.data()), data.size()};
  if (data.size() < 4) return {};
  const std::uint32_t n = wire::load32(data.data());
  if (n > data.size() - 4) return {};
  return {reinterpret_cast<const char*>(data.data() + 4), n};
}
}  // namespace

void InvariantChecker::client_bytes(Conn& c, core::Instant now, std::span<const std::byte> bytes) {
  if (c.wire_broken) return;
  std::vector<wire::ClientStreamDecoder::Event>& evs = client_events_;
  evs.clear();
  c.cdec.feed(bytes, evs);
  if (!evs.empty()) process_client_events(c, now, evs);
}

void InvariantChecker::process_client_events(Conn& c, core::Instant now,
                                             std::vector<wire::ClientStreamDecoder::Event>& evs) {
  using K = wire::ClientStreamDecoder::Event::Kind;
  for (auto& ev : evs) {
    switch (ev.kind) {
      case K::client_flags:
        c.sdec.client_flags(ev.value);
        break;
      case K::option:
        c.sdec.option_sent(ev.value, ev.data);
        c.options.emplace_back();
        c.options.back().option = ev.value;
        c.options.back().after_shutdown = c.shutdown_seen;
        classify_option(c, ev.data.size());
        if (c.shutdown_seen) marks_.hit("option_after_shutdown");
        if (ev.value == wire::opt::go || ev.value == wire::opt::export_name || ev.value == wire::opt::info)
          c.options.back().name = name_of_option(ev.data, ev.value);
        break;
      case K::request_header: {
        const wire::Request& rq = ev.request;
        if (rq.type == wire::cmd::disc) {
          // The decoder stops at DISC: the client MUST NOT send more and core stops
          // reading there, so no later header is registered as a request.
          c.disc = true;
          if (!c.replies_unattributable) c.sdec.request_sent(rq);
          marks_.hit(c.graceful ? "disc_while_draining" : "disc");
          break;
        }
        if (!c.replies_unattributable && c.requests.count(rq.cookie)) {
          // A client bug: two requests in flight with one cookie. Their replies cannot be
          // attributed, so the reply stream is no longer checked byte by byte (as after a
          // client framing error); requests are still registered, under keys of their
          // own, so every data call keeps being matched to one.
          marks_.hit("duplicate_cookie");
          c.replies_unattributable = true;
        }
        std::uint64_t key = rq.cookie;
        if (c.replies_unattributable) {
          key = c.next_synthetic_key++;
          while (c.requests.count(key)) key = c.next_synthetic_key++;
        }
        Conn::Req r;
        r.req = rq;
        r.after_graceful = c.graceful;
        // Slots in use: every unanswered request plus every unacknowledged Send (an upper
        // bound; a slot lives until its reply's SendDone).
        const std::uint64_t occupied = c.requests.size() + c.unacked_sends;
        r.strict = occupied < config_.limits.in_flight_max;
        // Slot buffer budget (Limits::slot_buffer_bytes_max): a READ/WRITE that needs a
        // buffer is staged while the buffers of the slots in use plus its length exceed
        // the budget. Each slot in use holds at most the largest buffer core can have
        // made so far: a power of two covering the longest READ/WRITE or BLOCK_STATUS
        // reply payload seen on this connection.
        const bool needs_buffer = (rq.type == wire::cmd::read || rq.type == wire::cmd::write) && rq.length > 0 &&
                                  rq.length <= config_.limits.request_bytes_max;
        const std::uint64_t cap = buffer_capacity_bound(std::max(c.data_length_max, c.sdec.status_payload_max()));
        const bool budget_ok = !needs_buffer || occupied * cap + rq.length <= config_.limits.slot_buffer_bytes_max;
        if (needs_buffer) c.data_length_max = std::max(c.data_length_max, rq.length);
        bool earlier_staged = false;
        for (const auto& [k, other] : c.requests)
          if (!other.certain && !other.called) {
            earlier_staged = true;
            break;
          }
        r.certain = r.strict && budget_ok && !earlier_staged;
        if (r.strict && !r.certain && !c.graceful) marks_.hit("request_maybe_staged_on_budget");
        r.parse_tick = tick_;
        classify_request(c, rq, r.refuse_must, r.refuse_may);
        if (!c.replies_unattributable) c.sdec.request_sent(rq);
        if (c.graceful) marks_.hit(rq.type == wire::cmd::write ? "write_after_graceful" : "request_after_graceful");
        if (rq.type == wire::cmd::read) disk_read_started(c, rq);
        const bool has_payload = rq.type == wire::cmd::write ||
                                 (rq.flags & wire::cflag::payload_len && c.sdec.extended());
        r.payload_done = !has_payload;
        c.payload_key = key;
        c.requests.emplace(key, std::move(r));
        break;
      }
      case K::request_complete: {
        auto it = c.requests.find(c.payload_key);
        if (it == c.requests.end()) break;  // answered early (reported) or unattributable
        it->second.payload_done = true;
        it->second.payload_tick = tick_;
        if (write_like(ev.request.type)) disk_write(c, ev.request);
        break;
      }
      case K::error:
        c.wire_broken = true;  // the client broke framing (fuzzer input): stop checking bytes
        marks_.hit("client_framing_error");
        break;
    }
  }
  (void)now;
}

void InvariantChecker::server_bytes(Conn& c, core::Instant now, std::span<const std::byte> bytes) {
  if (c.wire_broken || c.replies_unattributable || bytes.empty()) return;
  std::vector<wire::ServerStreamDecoder::Event>& evs = server_events_;
  evs.clear();
  c.sdec.feed(bytes, evs);
  using K = wire::ServerStreamDecoder::Event::Kind;
  for (auto& ev : evs) {
    switch (ev.kind) {
      case K::greeting:
        break;
      case K::option_reply:
        on_option_reply(c, now, ev);
        break;
      case K::export_block: {
        if (!c.options.empty() && c.options.front().after_shutdown)
          fail("INV-HANDSHAKE-SHUTDOWN", c.id, now, "EXPORT_NAME served after shutdown was requested");
        if (tls_required_now(c)) fail("INV-TLS-REQUIRED-SILENCE", c.id, now, "EXPORT_NAME served before TLS");
        check_export_block(c, now, ev);
        served_export(c);
        if (!c.options.empty()) c.options.pop_front();
        c.transmission = true;
        marks_.hit("export_name");
        if (c.shutdown_seen && !c.graceful) {
          c.graceful = true;
        }
        std::vector<wire::ClientStreamDecoder::Event> cevs;
        c.cdec.enter_transmission(c.sdec.extended(), cevs);
        process_client_events(c, now, cevs);
        break;
      }
      case K::reply_done:
        on_reply(c, now, ev.reply);
        break;
      case K::error:
        fail("INV-WIRE-PARSES", c.id, now, ev.error);
        c.wire_broken = true;
        return;
    }
  }
}

void InvariantChecker::on_option_reply(Conn& c, core::Instant now, const wire::ServerStreamDecoder::Event& ev) {
  if (c.options.empty()) return;  // the decoder already reported it
  const std::uint32_t option = c.options.front().option;
  const bool after_shutdown = c.options.front().after_shutdown;
  check_option_size_answer(c, now, ev.type);
  check_option_answer(c, now, ev);
  tls_option_reply(c, now, option, ev.type, ev.final_reply);
  if (after_shutdown && option != wire::opt::abort && ev.type != wire::rep::err_shutdown)
    fail("INV-HANDSHAKE-SHUTDOWN", c.id, now,
         std::string(wire::option_name(option)) + " received after shutdown answered type " + std::to_string(ev.type) +
             " instead of NBD_REP_ERR_SHUTDOWN");
  if (ev.type == wire::rep::err_shutdown) marks_.hit("handshake_err_shutdown");
  if (!ev.final_reply) {
    // later replies of the same option are judged by its first one
    c.options.front().after_shutdown = false;
    return;
  }
  if (option == wire::opt::info && ev.type == wire::rep::ack) c.info_answered = true;
  if (option == wire::opt::go && ev.type == wire::rep::ack) served_export(c);
  c.options.pop_front();
  marks_.hit(ev.type == wire::rep::ack ? "option_ack" : "option_error");
  if (option == wire::opt::go) {
    std::vector<wire::ClientStreamDecoder::Event> cevs;
    if (ev.type == wire::rep::ack) {
      c.transmission = true;
      marks_.hit(c.sdec.extended() ? "go_extended" : c.sdec.structured() ? "go_structured" : "go_simple");
      if (c.shutdown_seen && !c.graceful) {
        c.graceful = true;
      }
      c.cdec.enter_transmission(c.sdec.extended(), cevs);
    } else {
      c.cdec.resume_options(cevs);
    }
    process_client_events(c, now, cevs);
  }
}

void InvariantChecker::on_reply(Conn& c, core::Instant now, const wire::ReplyDone& done) {
  auto it = c.requests.find(done.request.cookie);
  if (it == c.requests.end()) return;
  const Conn::Req& r = it->second;
  const bool eshutdown = done.error == wire::err::eshutdown;
  if (!r.payload_done)
    fail("INV-NO-REPLY-BEFORE-PAYLOAD", c.id, now,
         std::string(wire::command_name(r.req.type)) + " cookie " + std::to_string(r.req.cookie) + " answered (error " +
             std::to_string(done.error) + ") before its payload's last byte was received");
  if (r.after_graceful && r.strict && !eshutdown)
    fail("INV-GRACEFUL-ESHUTDOWN", c.id, now,
         std::string(wire::command_name(r.req.type)) + " cookie " + std::to_string(r.req.cookie) +
             " parsed after the graceful moment got error " + std::to_string(done.error) + ", not ESHUTDOWN");
  // ESHUTDOWN is judged as "draining" only when the plugin did not return the errno
  // ESHUTDOWN for this request (core maps it to NBD_ESHUTDOWN, as nbdkit does).
  if (!r.after_graceful && r.certain && eshutdown && !r.plugin_eshutdown)
    fail("INV-GRACEFUL-INFLIGHT-REAL-REPLY", c.id, now,
         std::string(wire::command_name(r.req.type)) + " cookie " + std::to_string(r.req.cookie) +
             " parsed before the graceful moment was answered ESHUTDOWN");
  check_reply_validity(c, now, r.req, r.refuse_must, r.refuse_may, r.called, done);
  if (eshutdown) marks_.hit("eshutdown_reply");
  if (!r.after_graceful && c.graceful) marks_.hit(r.called ? "inflight_completed_while_draining" : "queued_completed_while_draining");
  if (done.error != 0 && !eshutdown) marks_.hit("error_reply");
  if (r.req.type == wire::cmd::read && done.error == 0) disk_read_done(c, now, done);
  if (write_like(r.req.type)) disk_write_done(c, r.req, done.error == 0);
  c.requests.erase(it);
}

}  // namespace nbdd::sim
