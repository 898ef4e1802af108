// Transmission request headers (§5.2 compact, §5.3 extended) -> ParsedRequest.
// Stateless; the caller provides exactly the header bytes.
#pragma once
#include <cstdint>
#include <optional>
#include <span>

namespace nbdd::core {

struct ParsedRequest {
  std::uint16_t flags = 0;
  std::uint16_t type = 0;
  std::uint64_t cookie = 0;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;  // compact: u32 widened; extended: u64
};

std::size_t request_header_bytes(bool extended);

// nullopt: wrong magic for the negotiated header style (framing is lost).
std::optional<ParsedRequest> parse_request_header(std::span<const std::byte> header, bool extended);

// Bytes that follow the header on the wire: compact WRITE carries `length`; extended
// requests carry `length` only when NBD_CMD_FLAG_PAYLOAD_LEN is set.
std::uint64_t request_payload_bytes(const ParsedRequest& req, bool extended);

}  // namespace nbdd::core
