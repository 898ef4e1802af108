// Encoders for everything the server sends. Transmission reply headers go into a
// caller-provided fixed buffer (the payload travels separately in a gather write);
// handshake replies are appended to a byte vector (not a hot path).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/protocol_constants.hpp"

namespace nbdd::core {

enum class ReplyStyle : std::uint8_t { simple, structured, extended };

// Large enough for any reply header nbdd builds (extended chunk 32 + 8 offset or
// 32 + 6 error fields), kept per slot.
inline constexpr std::size_t reply_header_bytes_max = 48;
using ReplyHeader = std::array<std::byte, reply_header_bytes_max>;

// Success without payload: a simple reply (simple/structured) or NONE+DONE (extended).
std::size_t encode_done(ReplyHeader& out, ReplyStyle style, std::uint64_t cookie, std::uint64_t offset);
// Success as a chunk: NONE+DONE (structured or extended). For a zero-length READ,
// which must not be a simple reply once chunks were negotiated.
std::size_t encode_none(ReplyHeader& out, ReplyStyle style, std::uint64_t cookie, std::uint64_t offset);
// Failure: a simple reply, or an ERROR chunk with DONE and an empty message.
// `structured_error` chooses the chunk form in structured mode (READ and BLOCK_STATUS
// must use it there).
std::size_t encode_error(ReplyHeader& out, ReplyStyle style, bool structured_error, nbd::Error err,
                         std::uint64_t cookie, std::uint64_t offset);
// READ success: header before `length` data bytes (simple reply, or OFFSET_DATA+DONE).
std::size_t encode_read_data(ReplyHeader& out, ReplyStyle style, std::uint64_t cookie, std::uint64_t offset,
                             std::uint64_t length);
// BLOCK_STATUS: chunk header for a payload built by encode_block_status_payload.
std::size_t encode_block_status_header(ReplyHeader& out, ReplyStyle style, std::uint64_t cookie,
                                       std::uint64_t offset, std::uint64_t payload_bytes);

struct WireExtent {
  std::uint64_t length;
  std::uint32_t flags;
};
// Payload bytes a block status chunk needs for n extents.
std::size_t block_status_payload_bytes(ReplyStyle style, std::size_t extents);
// Writes context id and extents (compact: u32 pairs; extended: count + u64 pairs).
std::size_t encode_block_status_payload(std::span<std::byte> out, ReplyStyle style, std::uint32_t context_id,
                                        std::span<const WireExtent> extents);

// Handshake messages.
void append_option_reply(std::vector<std::byte>& out, std::uint32_t option, nbd::Rep type,
                         std::span<const std::byte> data = {});
// The same reply with its data appended to `out` by the caller, between the two calls (no
// vector for the data): start_ writes the header and returns where it is, finish_ sets its
// length from what followed.
std::size_t start_option_reply(std::vector<std::byte>& out, std::uint32_t option, nbd::Rep type);
void finish_option_reply(std::vector<std::byte>& out, std::size_t at);
// handshake_flags: NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES, less what --mask-handshake clears.
std::vector<std::byte> encode_greeting(std::uint16_t handshake_flags);
// NBD_OPT_EXPORT_NAME success block; 124 zeroes unless no_zeroes.
std::vector<std::byte> encode_export_name_reply(std::uint64_t size, std::uint16_t eflags, bool no_zeroes);

std::span<const std::byte> as_bytes(std::string_view s);

}  // namespace nbdd::core
