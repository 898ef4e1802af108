#include "core/request_parser.hpp"

#include "core/protocol_constants.hpp"
#include "core/wire.hpp"

namespace nbdd::core {

std::size_t request_header_bytes(bool extended) {
  return extended ? nbd::extended_request_bytes : nbd::compact_request_bytes;
}

std::optional<ParsedRequest> parse_request_header(std::span<const std::byte> header, bool extended) {
  if (header.size() != request_header_bytes(extended)) return std::nullopt;
  const std::byte* p = header.data();
  const std::uint32_t magic = wire::load_u32(p);
  if (magic != (extended ? nbd::extended_request_magic : nbd::request_magic)) return std::nullopt;
  ParsedRequest req;
  req.flags = wire::load_u16(p + 4);
  req.type = wire::load_u16(p + 6);
  req.cookie = wire::load_u64(p + 8);
  req.offset = wire::load_u64(p + 16);
  req.length = extended ? wire::load_u64(p + 24) : wire::load_u32(p + 24);
  return req;
}

std::uint64_t request_payload_bytes(const ParsedRequest& req, bool extended) {
  if (extended) return (req.flags & nbd::cmd_flag_payload_len) ? req.length : 0;
  return req.type == static_cast<std::uint16_t>(nbd::Cmd::write) ? req.length : 0;
}

}  // namespace nbdd::core
