#include "net/call_log.hpp"

#include <cerrno>

#include "core/plugin_call.hpp"

namespace nbdd::net {
namespace {

int bit(std::uint32_t flags, std::uint32_t flag) { return (flags & flag) != 0 ? 1 : 0; }

// Export names come from clients: quoted, with control characters and '"' escaped, and cut
// at 256 bytes so a log line stays one bounded line.
std::string quoted(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  const std::size_t shown = text.size() > 256 ? 256 : text.size();
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  if (shown < text.size()) out += "...";
  return out;
}

}  // namespace

std::string errno_name(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case EPIPE: return "EPIPE";
    case ERANGE: return "ERANGE";
    case ENOSYS: return "ENOSYS";
    case ENOTSUP: return "ENOTSUP";
    case EOVERFLOW: return "EOVERFLOW";
    case ESHUTDOWN: return "ESHUTDOWN";
    case ECONNRESET: return "ECONNRESET";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EDQUOT: return "EDQUOT";
    case ECANCELED: return "ECANCELED";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    default: return "errno " + std::to_string(err);
  }
}

std::string describe_plugin_call(std::string_view plugin_name, const core::PluginCall& call, int err) {
  namespace f = core::call_flag;
  const auto count = std::to_string(call.count);
  const auto offset = std::to_string(call.offset);
  std::string line(plugin_name);
  line += ": ";
  line += core::to_string(call.kind);
  switch (call.kind) {
    case core::CallKind::preconnect:
    case core::CallKind::list_exports:
      line += " readonly=" + std::to_string(call.readonly ? 1 : 0);
      break;
    case core::CallKind::open:
      line += " readonly=" + std::to_string(call.readonly ? 1 : 0) + " exportname=" + quoted(call.export_name);
      break;
    case core::CallKind::close:
      break;
    case core::CallKind::pread:
    case core::CallKind::cache:
      line += " count=" + count + " offset=" + offset;
      break;
    case core::CallKind::pwrite:
    case core::CallKind::trim:
      line += " count=" + count + " offset=" + offset + " fua=" + std::to_string(bit(call.flags, f::fua));
      break;
    case core::CallKind::flush:
      break;
    case core::CallKind::zero:
      line += " count=" + count + " offset=" + offset + " may_trim=" + std::to_string(bit(call.flags, f::may_trim)) +
              " fua=" + std::to_string(bit(call.flags, f::fua)) +
              " fast=" + std::to_string(bit(call.flags, f::fast_zero));
      break;
    case core::CallKind::extents:
      line += " count=" + count + " offset=" + offset + " req_one=" + std::to_string(bit(call.flags, f::req_one));
      break;
  }
  if (err != 0) return line + " -> error " + errno_name(err);
  line += " -> 0";
  // What the call produced, where the core handed the driver somewhere to put it.
  if (call.kind == core::CallKind::open && call.info != nullptr)
    line += " exportname=" + quoted(call.info->name) + " size=" + std::to_string(call.info->size_bytes);
  else if (call.kind == core::CallKind::extents && call.extents != nullptr)
    line += " extents=" + std::to_string(call.extents->size());
  else if (call.kind == core::CallKind::list_exports && call.exports != nullptr)
    line += " exports=" + std::to_string(call.exports->size());
  return line;
}

}  // namespace nbdd::net
