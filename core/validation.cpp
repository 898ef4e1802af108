#include "core/validation.hpp"

namespace nbdd::core {
namespace {

using nbd::Cmd;
using nbd::Error;

bool has(std::uint16_t eflags, std::uint16_t flag) { return (eflags & flag) != 0; }

// Which command flags each command accepts at all (§5.5); negotiation is checked after.
std::uint16_t flags_valid_for(Cmd cmd) {
  std::uint16_t f = nbd::cmd_flag_fua | nbd::cmd_flag_payload_len;  // FUA on any command
  switch (cmd) {
    case Cmd::read: return f | nbd::cmd_flag_df;
    case Cmd::write_zeroes: return f | nbd::cmd_flag_no_hole | nbd::cmd_flag_fast_zero;
    case Cmd::block_status: return f | nbd::cmd_flag_req_one;
    default: return f;
  }
}

bool in_range(std::uint64_t offset, std::uint64_t length, std::uint64_t size) {
  return length <= size && offset <= size - length;  // cannot overflow
}

}  // namespace

std::uint16_t transmission_flags(const ExportInfo& info, bool read_only, bool structured, bool extended) {
  const Capabilities& c = info.caps;
  const bool writable = !read_only && c.can_write;
  std::uint16_t f = nbd::flag_has_flags;
  if (!writable) f |= nbd::flag_read_only;
  if (c.can_flush) f |= nbd::flag_send_flush;
  if (writable && c.can_fua) f |= nbd::flag_send_fua;
  if (c.is_rotational) f |= nbd::flag_rotational;
  if (writable && c.can_trim) f |= nbd::flag_send_trim;
  if (writable && c.can_zero) f |= nbd::flag_send_write_zeroes;
  if (writable && c.can_zero && c.can_fast_zero) f |= nbd::flag_send_fast_zero;
  if (structured || extended) f |= nbd::flag_send_df;
  if (c.can_multi_conn) f |= nbd::flag_can_multi_conn;
  if (c.can_cache) f |= nbd::flag_send_cache;
  return f;
}

Error validate_request(const ParsedRequest& req, const TransmissionContext& ctx) {
  if (req.type > static_cast<std::uint16_t>(Cmd::block_status)) return Error::einval;  // incl. RESIZE
  const Cmd cmd = static_cast<Cmd>(req.type);

  // Flags: unknown or inapplicable bits, or bits whose feature was not negotiated.
  if (req.flags & ~flags_valid_for(cmd)) return Error::einval;
  if ((req.flags & nbd::cmd_flag_fua) && !has(ctx.eflags, nbd::flag_send_fua)) return Error::einval;
  if ((req.flags & nbd::cmd_flag_df) && !has(ctx.eflags, nbd::flag_send_df)) return Error::einval;
  if ((req.flags & nbd::cmd_flag_fast_zero) && !has(ctx.eflags, nbd::flag_send_fast_zero)) return Error::einval;
  if (req.flags & nbd::cmd_flag_payload_len) {
    // Only extended headers have it, and only WRITE uses it (no BLOCK_STATUS payload form).
    if (!ctx.extended || cmd != Cmd::write) return Error::einval;
  } else if (ctx.extended && cmd == Cmd::write) {
    return Error::einval;  // extended WRITE MUST set PAYLOAD_LEN
  }

  const bool read_only = has(ctx.eflags, nbd::flag_read_only);
  switch (cmd) {
    case Cmd::write:
    case Cmd::trim:
    case Cmd::write_zeroes:
      if (read_only) return Error::eperm;
      break;
    default: break;
  }
  switch (cmd) {
    case Cmd::flush:
      if (!has(ctx.eflags, nbd::flag_send_flush)) return Error::einval;
      if (req.offset != 0 || req.length != 0) return Error::einval;
      return Error::ok;
    case Cmd::trim:
      if (!has(ctx.eflags, nbd::flag_send_trim)) return Error::einval;
      break;
    case Cmd::write_zeroes:
      if (!has(ctx.eflags, nbd::flag_send_write_zeroes)) return Error::einval;
      break;
    case Cmd::cache:
      if (!has(ctx.eflags, nbd::flag_send_cache)) return Error::einval;
      break;
    case Cmd::block_status:
      if (!ctx.meta_selected || req.length == 0) return Error::einval;
      break;
    default: break;
  }

  // Payload-carrying sizes: the maximum payload bounds READ (the reply) and WRITE.
  if ((cmd == Cmd::read || cmd == Cmd::write) && req.length > ctx.request_bytes_max)
    return (cmd == Cmd::read && ctx.structured) ? Error::eoverflow : Error::einval;

  if (ctx.minimum_block > 1 &&
      ((req.offset % ctx.minimum_block) != 0 || (req.length % ctx.minimum_block) != 0))
    return Error::einval;

  if (!in_range(req.offset, req.length, ctx.size_bytes))
    return (cmd == Cmd::write || cmd == Cmd::write_zeroes) ? Error::enospc : Error::einval;
  return Error::ok;
}

}  // namespace nbdd::core
