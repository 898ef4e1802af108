// Family "replies": every byte the server sends parses (INV-WIRE-PARSES), at most one reply
// per request and none for unknown cookies or DISC (INV-REPLY-ONCE, via the decoder), the
// graceful-disconnect reply rules (INV-GRACEFUL-ESHUTDOWN, INV-GRACEFUL-INFLIGHT-REAL-REPLY)
// and the handshake shutdown rule (INV-HANDSHAKE-SHUTDOWN).
#include "sim/invariants/checker_state.hpp"

namespace nbdd::sim {

namespace {
bool write_like(std::uint16_t type) {
  return type == wire::cmd::write || type == wire::cmd::write_zeroes || type == wire::cmd::trim;
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
  std::vector<wire::ClientStreamDecoder::Event> evs;
  c.cdec.feed(bytes, evs);
  process_client_events(c, now, evs);
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
        c.options.push_back(ev.value);
        c.option_after_shutdown.push_back(c.shutdown_seen);
        if (c.shutdown_seen) marks_.hit("option_after_shutdown");
        if (ev.value == wire::opt::go || ev.value == wire::opt::export_name)
          c.export_name = name_of_option(ev.data, ev.value);
        break;
      case K::request_header: {
        const wire::Request& rq = ev.request;
        if (rq.type == wire::cmd::disc) {
          c.disc = true;
          c.sdec.request_sent(rq);
          marks_.hit(c.graceful ? "disc_while_draining" : "disc");
          break;
        }
        if (c.requests.count(rq.cookie)) {
          marks_.hit("duplicate_cookie");  // a client bug; the reply cannot be attributed
          break;
        }
        Conn::Req r;
        r.req = rq;
        r.after_graceful = c.graceful;
        r.strict = c.requests.size() + c.unacked_sends < config_.limits.in_flight_max;
        r.parse_tick = tick_;
        c.sdec.request_sent(rq);
        if (c.graceful) marks_.hit(rq.type == wire::cmd::write ? "write_after_graceful" : "request_after_graceful");
        if (rq.type == wire::cmd::read) disk_read_started(c, rq);
        const bool has_payload = rq.type == wire::cmd::write ||
                                 (rq.flags & wire::cflag::payload_len && c.sdec.extended());
        r.payload_done = !has_payload;
        c.requests.emplace(rq.cookie, std::move(r));
        c.order.push_back(rq.cookie);
        break;
      }
      case K::request_complete: {
        auto it = c.requests.find(ev.request.cookie);
        if (it == c.requests.end()) break;  // already answered (early error) or DISC
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
  if (c.wire_broken || bytes.empty()) return;
  std::vector<wire::ServerStreamDecoder::Event> evs;
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
        if (!c.option_after_shutdown.empty() && c.option_after_shutdown.front())
          fail("INV-HANDSHAKE-SHUTDOWN", c.id, now, "EXPORT_NAME served after shutdown was requested");
        if (!c.options.empty()) c.options.pop_front();
        if (!c.option_after_shutdown.empty()) c.option_after_shutdown.pop_front();
        c.transmission = true;
        marks_.hit("export_name");
        if (c.shutdown_seen && !c.graceful) {
          c.graceful = true;
          c.graceful_tick = tick_;
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
  const std::uint32_t option = c.options.front();
  const bool after_shutdown = c.option_after_shutdown.front();
  if (after_shutdown && option != wire::opt::abort && ev.type != wire::rep::err_shutdown)
    fail("INV-HANDSHAKE-SHUTDOWN", c.id, now,
         std::string(wire::option_name(option)) + " received after shutdown answered type " + std::to_string(ev.type) +
             " instead of NBD_REP_ERR_SHUTDOWN");
  if (ev.type == wire::rep::err_shutdown) marks_.hit("handshake_err_shutdown");
  if (!ev.final_reply) {
    // later replies of the same option are judged by its first one
    c.option_after_shutdown.front() = false;
    return;
  }
  c.options.pop_front();
  c.option_after_shutdown.pop_front();
  marks_.hit(ev.type == wire::rep::ack ? "option_ack" : "option_error");
  if (option == wire::opt::go) {
    std::vector<wire::ClientStreamDecoder::Event> cevs;
    if (ev.type == wire::rep::ack) {
      c.transmission = true;
      marks_.hit(c.sdec.extended() ? "go_extended" : c.sdec.structured() ? "go_structured" : "go_simple");
      if (c.shutdown_seen && !c.graceful) {
        c.graceful = true;
        c.graceful_tick = tick_;
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
  if (r.after_graceful && r.strict && !eshutdown)
    fail("INV-GRACEFUL-ESHUTDOWN", c.id, now,
         std::string(wire::command_name(r.req.type)) + " cookie " + std::to_string(r.req.cookie) +
             " parsed after the graceful moment got error " + std::to_string(done.error) + ", not ESHUTDOWN");
  if (!r.after_graceful && r.strict && eshutdown)
    fail("INV-GRACEFUL-INFLIGHT-REAL-REPLY", c.id, now,
         std::string(wire::command_name(r.req.type)) + " cookie " + std::to_string(r.req.cookie) +
             " parsed before the graceful moment was answered ESHUTDOWN");
  if (eshutdown) marks_.hit("eshutdown_reply");
  if (!r.after_graceful && c.graceful) marks_.hit(r.called ? "inflight_completed_while_draining" : "queued_completed_while_draining");
  if (done.error != 0 && !eshutdown) marks_.hit("error_reply");
  if (r.req.type == wire::cmd::read && done.error == 0) disk_read_done(c, now, done);
  if (write_like(r.req.type)) disk_write_done(c, r.req, done.error == 0);
  for (auto o = c.order.begin(); o != c.order.end(); ++o)
    if (*o == done.request.cookie) {
      c.order.erase(o);
      break;
    }
  c.requests.erase(it);
}

}  // namespace nbdd::sim
