// Family "validity": the checker's own model of which requests and options a server must
// refuse, and with which error (INV-REFUSAL-MATCHES-VALIDITY, INV-OPTION-TOO-BIG).
//
// Written from ../shared/docs/nbd-protocol.md (§ "Request types", "Error values", "Block
// size constraints") and nbdkit 1.32's documented behaviour, independently of
// core/validation.cpp: rules are collected, not ordered, so a request that breaks several
// may be refused with the error of any of them.
#include "sim/invariants/checker_state.hpp"

namespace nbdd::sim {

namespace {

// The refusal errors, as bits.
constexpr std::uint8_t bit_eperm = 1, bit_einval = 2, bit_enospc = 4, bit_eoverflow = 8;

std::uint8_t refusal_bit(std::uint32_t error) {
  switch (error) {
    case wire::err::eperm: return bit_eperm;
    case wire::err::einval: return bit_einval;
    case wire::err::enospc: return bit_enospc;
    case wire::err::eoverflow: return bit_eoverflow;
    default: return 0;
  }
}

std::string refusal_names(std::uint8_t bits) {
  std::string s;
  auto add = [&](std::uint8_t b, const char* name) {
    if (!(bits & b)) return;
    if (!s.empty()) s += "/";
    s += name;
  };
  add(bit_eperm, "EPERM");
  add(bit_einval, "EINVAL");
  add(bit_enospc, "ENOSPC");
  add(bit_eoverflow, "EOVERFLOW");
  return s.empty() ? "none" : s;
}

}  // namespace

void InvariantChecker::classify_request(const Conn& c, const wire::Request& rq, std::uint8_t& must,
                                        std::uint8_t& may) const {
  namespace cmd = wire::cmd;
  namespace cf = wire::cflag;
  namespace ef = wire::eflag;
  must = may = 0;
  const std::uint16_t eflags = c.sdec.eflags();
  const bool extended = c.sdec.extended();
  const auto offered = [&](std::uint16_t f) { return (eflags & f) != 0; };
  if (rq.type > cmd::block_status) {  // unknown commands, RESIZE among them (never offered)
    must |= bit_einval;
    return;
  }
  // Flags: each belongs to some commands, and most need the server's offer.
  const bool read = rq.type == cmd::read, write = rq.type == cmd::write, zero = rq.type == cmd::write_zeroes;
  const std::uint16_t known = cf::fua | cf::no_hole | cf::df | cf::req_one | cf::fast_zero | cf::payload_len;
  if (rq.flags & ~known) must |= bit_einval;
  if ((rq.flags & cf::fua) && !offered(ef::send_fua)) must |= bit_einval;
  if ((rq.flags & cf::no_hole) && !zero) must |= bit_einval;
  if ((rq.flags & cf::df) && (!read || !offered(ef::send_df))) must |= bit_einval;
  if ((rq.flags & cf::req_one) && rq.type != cmd::block_status) must |= bit_einval;
  if ((rq.flags & cf::fast_zero) && (!zero || !offered(ef::send_fast_zero))) must |= bit_einval;
  // Extended headers: a WRITE says its payload length; nothing else has a payload (nbdkit
  // offers no BLOCK_STATUS filtering payload).
  if (extended && write && !(rq.flags & cf::payload_len)) must |= bit_einval;
  if ((rq.flags & cf::payload_len) && (!extended || !write)) must |= bit_einval;
  // Writing to a read-only export.
  if ((write || zero || rq.type == cmd::trim) && offered(ef::read_only)) must |= bit_eperm;
  // Commands the server did not offer.
  if (rq.type == cmd::flush && !offered(ef::send_flush)) must |= bit_einval;
  if (rq.type == cmd::trim && !offered(ef::send_trim)) must |= bit_einval;
  if (zero && !offered(ef::send_write_zeroes)) must |= bit_einval;
  if (rq.type == cmd::cache && !offered(ef::send_cache)) must |= bit_einval;
  if (rq.type == cmd::block_status && (!c.sdec.meta_selected() || rq.length == 0)) must |= bit_einval;
  if (rq.type == cmd::flush) {
    if (rq.offset != 0 || rq.length != 0) must |= bit_einval;  // FLUSH has no range
    return;
  }
  // The maximum payload: the server's limit, lowered by the export's maximum block size.
  std::uint64_t payload_max = config_.limits.request_bytes_max;
  if (c.block_max != 0 && c.block_max < payload_max) payload_max = c.block_max;
  if ((read || write) && rq.length > payload_max)
    must |= (read && c.sdec.structured()) ? (bit_einval | bit_eoverflow) : bit_einval;
  // The minimum block size: a client MUST honour it; a server MAY refuse with EINVAL.
  if (c.block_min > 1 && (rq.offset % c.block_min != 0 || rq.length % c.block_min != 0)) may |= bit_einval;
  // Past the end: ENOSPC for the writes that would grow it, EINVAL for everything else.
  const std::uint64_t size = c.sdec.export_size();
  if (rq.length > size || rq.offset > size - rq.length) must |= (write || zero) ? bit_enospc : bit_einval;
}

void InvariantChecker::check_reply_validity(Conn& c, core::Instant now, const wire::Request& rq, std::uint8_t must,
                                            std::uint8_t may, bool called, const wire::ReplyDone& done) {
  if (done.error == wire::err::eshutdown) return;  // the graceful rules judge those
  const std::uint8_t got = refusal_bit(done.error);
  auto what = [&] {  // built only for a report
    return std::string(wire::command_name(rq.type)) + " cookie " + std::to_string(rq.cookie) + " (offset " +
           std::to_string(rq.offset) + ", length " + std::to_string(rq.length) + ", flags " +
           std::to_string(rq.flags) + ", export size " + std::to_string(c.sdec.export_size()) + ")";
  };
  if (must != 0) {
    if (called)
      fail("INV-REFUSAL-MATCHES-VALIDITY", c.id, now, what() + " is invalid but reached the plugin");
    else if (!(got & (must | may)))
      fail("INV-REFUSAL-MATCHES-VALIDITY", c.id, now,
           what() + " is invalid: answered error " + std::to_string(done.error) + ", not " + refusal_names(must | may));
    else
      marks_.hit(rq.type == wire::cmd::write && rq.length > config_.limits.request_bytes_max
                     ? "write_over_limit_discarded"
                     : "invalid_request_refused");
    return;
  }
  // Valid (or a MAY): never refused without asking the plugin, except with a MAY's error.
  if (!called && done.error != 0 && !(got & may))
    fail("INV-REFUSAL-MATCHES-VALIDITY", c.id, now,
         what() + " is valid but was refused with error " + std::to_string(done.error));
  if (done.error != 0) return;
  const std::uint64_t size = c.sdec.export_size();
  if (rq.type != wire::cmd::flush && rq.length > 0 && rq.offset + rq.length == size) marks_.hit("request_at_export_end_served");
  if (rq.type != wire::cmd::flush && rq.length == 0) marks_.hit(rq.offset == size ? "zero_length_at_export_end_served" : "zero_length_served");
  std::uint64_t payload_max = config_.limits.request_bytes_max;
  if (c.block_max != 0 && c.block_max < payload_max) payload_max = c.block_max;
  if ((rq.type == wire::cmd::read || rq.type == wire::cmd::write) && rq.length == std::min(payload_max, size))
    marks_.hit("largest_request_served");
}

// Options: up to Limits::option_data_bytes_max bytes are read and answered; a longer one
// (EXPORT_NAME excepted: it cannot be refused) is read and discarded and answered
// NBD_REP_ERR_TOO_BIG — or ERR_SHUTDOWN once the server is shutting down.
void InvariantChecker::classify_option(Conn& c, std::size_t length) {
  Conn::Option& o = c.options.back();
  o.too_big = length > config_.limits.option_data_bytes_max && o.option != wire::opt::export_name;
}

void InvariantChecker::check_option_size_answer(Conn& c, core::Instant now, std::uint32_t type) {
  const Conn::Option& o = c.options.front();
  if (o.too_big) {
    if (type == wire::rep::err_too_big) {
      marks_.hit("option_over_limit_too_big");
    } else if (type == wire::rep::err_shutdown && c.shutdown_seen) {
      marks_.hit("option_over_limit_err_shutdown");
    } else if (type == wire::rep::err_tls_reqd && tls_required_now(c)) {
      marks_.hit("option_over_limit_err_tls_reqd");
    } else {
      fail("INV-OPTION-TOO-BIG", c.id, now,
           std::string(wire::option_name(o.option)) + " longer than the option limit was answered type " +
               std::to_string(type) + ", not NBD_REP_ERR_TOO_BIG");
    }
  } else if (type == wire::rep::err_too_big) {
    fail("INV-OPTION-TOO-BIG", c.id, now,
         std::string(wire::option_name(o.option)) + " within the option limit was answered NBD_REP_ERR_TOO_BIG");
  }
}

}  // namespace nbdd::sim
