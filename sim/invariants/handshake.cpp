// Family "handshake": how the plugin's lifecycle calls meet the NBD handshake.
//   INV-NO-LIFECYCLE-AFTER-SHUTDOWN  no preconnect, list_exports or open starts after the
//                                    connection's ShutdownRequested (or after its Close)
//   INV-GREETING-AFTER-PRECONNECT    preconnect first and once; nothing is sent before it
//                                    succeeded; a failed preconnect is followed by Close{abort}
//                                    (any Close if the connection was already ending)
//                                    before the next input, with nothing sent
//   INV-SHUTDOWN-DURING-OPEN         an INFO/GO/EXPORT_NAME still unanswered when shutdown came
//                                    (its open running, or not started yet) is answered
//                                    NBD_REP_ERR_SHUTDOWN; an EXPORT_NAME is never served
//                                    (what it opened is closed: INV-EVERY-OPEN-CLOSED)
//   INV-LIST-FROM-PLUGIN             a LIST's SERVER replies are the valid entries of the
//                                    list_exports call made for that LIST, in order, then ACK;
//                                    a failed list_exports is answered NBD_REP_ERR_PLATFORM
//   INV-EXPORT-INFO-MATCHES-OPEN     INFO/GO replies and the EXPORT_NAME block carry the size,
//                                    flags, name, description and block size that this option's
//                                    open reported for this connection
#include <algorithm>

#include "sim/invariants/checker_state.hpp"

namespace nbdd::sim {

namespace {
bool opens_export(std::uint32_t option) {
  return option == wire::opt::info || option == wire::opt::go || option == wire::opt::export_name;
}
// What an NBD string may carry (nbd-protocol.md: at most 4096 bytes, no NUL; core's bound
// is Limits::string_bytes_max).
bool valid_name(const std::string& s, const core::Limits& limits) {
  return s.size() <= limits.string_bytes_max && s.find('\0') == std::string::npos;
}
// The transmission flags nbdkit derives from the plugin's answers (protocol-handshake.c):
// nothing writable when read-only; FUA, TRIM, WRITE_ZEROES only when writable; FAST_ZERO
// only with WRITE_ZEROES. DF and BLOCK_STATUS_PAYLOAD follow the negotiation (not judged here).
constexpr std::uint16_t judged_flags = wire::eflag::read_only | wire::eflag::send_flush | wire::eflag::send_fua |
                                       wire::eflag::rotational | wire::eflag::send_trim |
                                       wire::eflag::send_write_zeroes | wire::eflag::multi_conn |
                                       wire::eflag::send_cache | wire::eflag::send_fast_zero;
std::uint16_t expected_flags(const core::Capabilities& c, bool server_read_only) {
  const bool writable = c.can_write && !server_read_only;
  std::uint16_t f = 0;
  if (!writable) f |= wire::eflag::read_only;
  if (c.can_flush) f |= wire::eflag::send_flush;
  if (writable && c.can_fua) f |= wire::eflag::send_fua;
  if (c.is_rotational) f |= wire::eflag::rotational;
  if (writable && c.can_trim) f |= wire::eflag::send_trim;
  if (writable && c.can_zero) f |= wire::eflag::send_write_zeroes;
  if (writable && c.can_zero && c.can_fast_zero) f |= wire::eflag::send_fast_zero;
  if (c.can_multi_conn) f |= wire::eflag::multi_conn;
  if (c.can_cache) f |= wire::eflag::send_cache;
  return f;
}
std::string string_at(std::span<const std::byte> data, std::size_t from) {
  if (data.size() < from) return {};
  return {reinterpret_cast<const char*>(data.data() + from), data.size() - from};
}
}  // namespace

// ShutdownRequested: marks, and which unanswered options must now be refused.
void InvariantChecker::handshake_shutdown(Conn& c, core::Instant) {
  if (c.transmission) return;
  if (!c.preconnect_called) marks_.hit("shutdown_before_preconnect");
  if (const auto it = c.running.find(static_cast<std::uint32_t>(core::lifecycle_slot)); it != c.running.end()) {
    switch (it->second.kind) {
      case core::CallKind::preconnect: marks_.hit("shutdown_during_preconnect"); break;
      case core::CallKind::list_exports: marks_.hit("shutdown_during_list"); break;
      case core::CallKind::open: marks_.hit("shutdown_during_open"); break;
      case core::CallKind::close: marks_.hit("shutdown_during_close"); break;
      default: break;
    }
  }
  if (c.wire_broken) return;
  for (Conn::Option& o : c.options) {
    if (!opens_export(o.option) || o.after_shutdown) continue;
    o.shutdown_pending = true;
    if (!o.open_called) marks_.hit("shutdown_with_open_queued");
  }
}

void InvariantChecker::handshake_call(Conn& c, core::Instant now, const core::action::CallPlugin& cp) {
  const core::CallKind kind = cp.call.kind;
  if (kind == core::CallKind::close) return;
  if (c.shutdown_seen || c.close_emitted)
    fail("INV-NO-LIFECYCLE-AFTER-SHUTDOWN", c.id, now,
         core::describe(core::Action{cp}) + " started after " + (c.shutdown_seen ? "ShutdownRequested" : "Close"));
  if (kind == core::CallKind::preconnect) {
    if (c.preconnect_called) fail("INV-GREETING-AFTER-PRECONNECT", c.id, now, "a second preconnect");
    if (c.sends_emitted) fail("INV-GREETING-AFTER-PRECONNECT", c.id, now, "preconnect after bytes were sent");
    c.preconnect_called = true;
    return;
  }
  if (!c.preconnect_ok)
    fail("INV-GREETING-AFTER-PRECONNECT", c.id, now, core::describe(core::Action{cp}) + " before preconnect succeeded");
  if (kind != core::CallKind::list_exports) return;
  if (c.wire_broken) return;
  if (c.options.empty() || c.options.front().option != wire::opt::list) {
    fail("INV-LIST-FROM-PLUGIN", c.id, now, "list_exports while no LIST is being answered");
    return;
  }
  Conn::Option& o = c.options.front();
  if (o.list_called) fail("INV-LIST-FROM-PLUGIN", c.id, now, "a second list_exports for one LIST");
  o.list_called = true;
  c.list_out = cp.call.exports;
  if (!c.list_out) fail("INV-LIST-FROM-PLUGIN", c.id, now, "list_exports without a vector to fill");
}

// PluginDone of a lifecycle call, before core reads what the driver filled in.
void InvariantChecker::handshake_done(Conn& c, core::Instant, core::CallKind kind, std::int32_t err) {
  if (kind == core::CallKind::preconnect) {
    c.preconnect_ok = err == 0;
    if (err != 0) {
      marks_.hit("preconnect_refused");
      // Close{abort} at once — unless the connection was already ending (the peer left,
      // a send failed, a timeout): then its Close, of either mode, had nothing to send.
      const bool ending = c.peer_closed || c.send_failed || (c.status && *c.status >= core::Status::closing);
      c.preconnect_refused_wants_close = !c.close_emitted;
      c.preconnect_refusal_must_abort = !ending;
    }
    return;
  }
  Conn::Option* o = c.wire_broken || c.options.empty() ? nullptr : &c.options.front();
  if (kind == core::CallKind::list_exports) {
    std::vector<core::ExportEntry>* out = c.list_out;
    c.list_out = nullptr;
    if (!o || o->option != wire::opt::list || !o->list_called) return;
    o->list_done = true;
    o->list_err = err;
    if (err != 0) {
      marks_.hit("list_failed");
      return;
    }
    if (!out) return;
    for (const auto& e : *out) {
      if (o->listed.size() == config_.limits.exports_listed_max) break;
      if (valid_name(e.name, config_.limits))
        o->listed.push_back(e);
      else
        marks_.hit("list_invalid_name_from_plugin");
    }
    return;
  }
  // open
  if (err != 0 || !c.open_info || !o || !opens_export(o->option) || !o->open_called) return;
  o->open_ok = true;
  o->opened = *c.open_info;
  auto [it, fresh] = sizes_seen_.emplace(o->opened.name, o->opened.size_bytes);
  if (!fresh && it->second != o->opened.size_bytes) {
    marks_.hit("size_differs_between_opens");
    it->second = o->opened.size_bytes;
  }
}

void InvariantChecker::handshake_send(Conn& c, core::Instant now) {
  if (!c.preconnect_ok && !c.sends_emitted)
    fail("INV-GREETING-AFTER-PRECONNECT", c.id, now,
         c.preconnect_called ? "bytes sent although preconnect did not succeed" : "bytes sent before preconnect");
  c.sends_emitted = true;
}

void InvariantChecker::handshake_close(Conn& c, core::Instant now, const core::action::Close& close) {
  if (c.preconnect_refused_wants_close && c.preconnect_refusal_must_abort && close.mode != core::CloseMode::abort)
    fail("INV-GREETING-AFTER-PRECONNECT", c.id, now, "a failed preconnect closed with flush_then_close");
  c.preconnect_refused_wants_close = false;
}

void InvariantChecker::check_pending_refusal(Conn& c, core::Instant now) {
  if (!c.preconnect_refused_wants_close) return;
  c.preconnect_refused_wants_close = false;
  if (!c.close_emitted) fail("INV-GREETING-AFTER-PRECONNECT", c.id, now, "a failed preconnect was not followed by Close{abort}");
}

// Every reply to the front option (before it is popped when final).
void InvariantChecker::check_option_answer(Conn& c, core::Instant now, const wire::ServerStreamDecoder::Event& ev) {
  Conn::Option& o = c.options.front();
  const char* name = wire::option_name(o.option);
  if (o.shutdown_pending) {
    if (ev.type != wire::rep::err_shutdown)
      fail("INV-SHUTDOWN-DURING-OPEN", c.id, now,
           std::string(name) + " unanswered when shutdown came was answered type " + std::to_string(ev.type) +
               " instead of NBD_REP_ERR_SHUTDOWN");
    else
      marks_.hit(o.open_called ? "err_shutdown_after_running_open" : "err_shutdown_for_queued_open");
    o.shutdown_pending = false;  // later replies of the option are judged by its first one
  }
  if (o.option == wire::opt::list) {
    const bool listed_ok = o.list_done && o.list_err == 0;
    if (ev.type == wire::rep::server) {
      if (!listed_ok) {
        fail("INV-LIST-FROM-PLUGIN", c.id, now, "NBD_REP_SERVER without a successful list_exports for this LIST");
      } else if (o.list_replies >= o.listed.size()) {
        fail("INV-LIST-FROM-PLUGIN", c.id, now, "more NBD_REP_SERVER replies than the plugin listed valid names");
      } else {
        const core::ExportEntry& want = o.listed[o.list_replies];
        const std::size_t n = ev.data.size() >= 4 ? std::min<std::size_t>(wire::load32(ev.data.data()), ev.data.size() - 4) : 0;
        const std::string got = string_at(std::span(ev.data).first(4 + n), 4);
        const std::string desc = string_at(ev.data, 4 + n);
        if (got != want.name)
          fail("INV-LIST-FROM-PLUGIN", c.id, now, "NBD_REP_SERVER names '" + got + "', the plugin listed '" + want.name + "'");
        else if (want.description.compare(0, desc.size(), desc) != 0)
          fail("INV-LIST-FROM-PLUGIN", c.id, now, "NBD_REP_SERVER description is not the plugin's");
      }
      ++o.list_replies;
    } else if (ev.type == wire::rep::ack) {
      if (!listed_ok)
        fail("INV-LIST-FROM-PLUGIN", c.id, now, "LIST acknowledged without a successful list_exports for it");
      else if (o.list_replies != o.listed.size())
        fail("INV-LIST-FROM-PLUGIN", c.id, now,
             "LIST answered " + std::to_string(o.list_replies) + " of the " + std::to_string(o.listed.size()) +
                 " valid names the plugin listed");
      else
        marks_.hit("list_answered_from_plugin");
    } else if (o.list_done && o.list_err != 0 && ev.type != wire::rep::err_platform &&
               ev.type != wire::rep::err_shutdown) {
      fail("INV-LIST-FROM-PLUGIN", c.id, now, "a failed list_exports answered " + std::to_string(ev.type) + ", not ERR_PLATFORM");
    } else if (ev.type == wire::rep::err_platform) {
      if (!o.list_done || o.list_err == 0)
        fail("INV-LIST-FROM-PLUGIN", c.id, now, "NBD_REP_ERR_PLATFORM without a failed list_exports");
      else
        marks_.hit("list_err_platform");
    }
    return;
  }
  if (o.option == wire::opt::go && o.open_ok && ev.final_reply && ev.type != wire::rep::ack)
    marks_.hit(ev.type == wire::rep::err_block_size_reqd ? "go_refused_block_size" : "go_refused_after_open");
  if ((o.option != wire::opt::info && o.option != wire::opt::go) || ev.type != wire::rep::info) return;
  if (!o.open_ok) {
    fail("INV-EXPORT-INFO-MATCHES-OPEN", c.id, now, std::string(name) + " answered NBD_REP_INFO without a successful open for it");
    return;
  }
  const core::ExportInfo& e = o.opened;
  const std::uint16_t type = wire::load16(ev.data.data());  // length checked by the decoder
  if (type == 0) {
    const std::uint64_t size = wire::load64(ev.data.data() + 2);
    const std::uint16_t flags = wire::load16(ev.data.data() + 10);
    const std::uint16_t want = expected_flags(e.caps, config_.read_only);
    if (size != e.size_bytes || (flags & judged_flags) != want)
      fail("INV-EXPORT-INFO-MATCHES-OPEN", c.id, now,
           std::string(name) + " announced size " + std::to_string(size) + " flags " + std::to_string(flags & judged_flags) +
               ", the open reported size " + std::to_string(e.size_bytes) + " flags " + std::to_string(want));
  } else if (type == 1 && string_at(ev.data, 2) != e.name) {
    fail("INV-EXPORT-INFO-MATCHES-OPEN", c.id, now, std::string(name) + " NBD_INFO_NAME is not the canonical name the open reported");
  } else if (type == 2 && string_at(ev.data, 2) != e.description) {
    fail("INV-EXPORT-INFO-MATCHES-OPEN", c.id, now, std::string(name) + " NBD_INFO_DESCRIPTION is not the plugin's");
  } else if (type == 3 && (wire::load32(ev.data.data() + 2) != e.block_size.minimum ||
                           wire::load32(ev.data.data() + 6) != e.block_size.preferred ||
                           wire::load32(ev.data.data() + 10) != e.block_size.maximum)) {
    fail("INV-EXPORT-INFO-MATCHES-OPEN", c.id, now, std::string(name) + " NBD_INFO_BLOCK_SIZE is not the plugin's");
  }
}

void InvariantChecker::check_export_block(Conn& c, core::Instant now, const wire::ServerStreamDecoder::Event& ev) {
  if (c.options.empty()) return;
  const Conn::Option& o = c.options.front();
  if (o.shutdown_pending)
    fail("INV-SHUTDOWN-DURING-OPEN", c.id, now, "EXPORT_NAME served although shutdown came before it was answered");
  if (!o.open_ok) {
    fail("INV-EXPORT-INFO-MATCHES-OPEN", c.id, now, "EXPORT_NAME served without a successful open for it");
    return;
  }
  const std::uint16_t want = expected_flags(o.opened.caps, config_.read_only);
  if (ev.size != o.opened.size_bytes || (ev.eflags & judged_flags) != want)
    fail("INV-EXPORT-INFO-MATCHES-OPEN", c.id, now,
         "EXPORT_NAME announced size " + std::to_string(ev.size) + " flags " + std::to_string(ev.eflags & judged_flags) +
             ", the open reported size " + std::to_string(o.opened.size_bytes) + " flags " + std::to_string(want));
}

// Entering transmission with the front option (GO or EXPORT_NAME): its export's read model.
void InvariantChecker::served_export(Conn& c) {
  if (c.options.empty()) return;
  const Conn::Option& o = c.options.front();
  c.export_key = config_.one_disk_for_all_names ? std::string() : o.open_ok ? o.opened.name : o.name;
  c.disk = nullptr;  // looked up again (disk_for) under the new key
  if (o.open_ok) {
    c.block_min = o.opened.block_size.minimum;
    c.block_max = o.opened.block_size.maximum;
  }
  if (c.info_answered) marks_.hit("go_after_info");
}

}  // namespace nbdd::sim
