#include "core/reply_builder.hpp"

#include "core/wire.hpp"

namespace nbdd::core {
namespace {

std::size_t simple_reply(ReplyHeader& out, nbd::Error err, std::uint64_t cookie) {
  wire::store_u32(out.data(), nbd::simple_reply_magic);
  wire::store_u32(out.data() + 4, static_cast<std::uint32_t>(err));
  wire::store_u64(out.data() + 8, cookie);
  return nbd::simple_reply_bytes;
}

// Structured (20 bytes) or extended (32 bytes) chunk header.
std::size_t chunk_header(ReplyHeader& out, bool extended, std::uint16_t flags, nbd::Chunk type,
                         std::uint64_t cookie, std::uint64_t offset, std::uint64_t payload) {
  std::byte* p = out.data();
  wire::store_u32(p, extended ? nbd::extended_reply_magic : nbd::structured_reply_magic);
  wire::store_u16(p + 4, flags);
  wire::store_u16(p + 6, static_cast<std::uint16_t>(type));
  wire::store_u64(p + 8, cookie);
  if (!extended) {
    wire::store_u32(p + 16, static_cast<std::uint32_t>(payload));
    return nbd::structured_reply_header_bytes;
  }
  wire::store_u64(p + 16, offset);
  wire::store_u64(p + 24, payload);
  return nbd::extended_reply_header_bytes;
}

}  // namespace

std::size_t encode_done(ReplyHeader& out, ReplyStyle style, std::uint64_t cookie, std::uint64_t offset) {
  if (style != ReplyStyle::extended) return simple_reply(out, nbd::Error::ok, cookie);
  return chunk_header(out, true, nbd::reply_flag_done, nbd::Chunk::none, cookie, offset, 0);
}

std::size_t encode_none(ReplyHeader& out, ReplyStyle style, std::uint64_t cookie, std::uint64_t offset) {
  return chunk_header(out, style == ReplyStyle::extended, nbd::reply_flag_done, nbd::Chunk::none, cookie, offset, 0);
}

std::size_t encode_error(ReplyHeader& out, ReplyStyle style, bool structured_error, nbd::Error err,
                         std::uint64_t cookie, std::uint64_t offset) {
  if (style == ReplyStyle::simple || (style == ReplyStyle::structured && !structured_error))
    return simple_reply(out, err, cookie);
  const std::size_t n =
      chunk_header(out, style == ReplyStyle::extended, nbd::reply_flag_done, nbd::Chunk::error, cookie, offset, 6);
  wire::store_u32(out.data() + n, static_cast<std::uint32_t>(err));
  wire::store_u16(out.data() + n + 4, 0);  // no message
  return n + 6;
}

std::size_t encode_read_data(ReplyHeader& out, ReplyStyle style, std::uint64_t cookie, std::uint64_t offset,
                             std::uint64_t length) {
  if (style == ReplyStyle::simple) return simple_reply(out, nbd::Error::ok, cookie);
  const std::size_t n = chunk_header(out, style == ReplyStyle::extended, nbd::reply_flag_done,
                                     nbd::Chunk::offset_data, cookie, offset, 8 + length);
  wire::store_u64(out.data() + n, offset);
  return n + 8;
}

std::size_t encode_block_status_header(ReplyHeader& out, ReplyStyle style, std::uint64_t cookie,
                                       std::uint64_t offset, std::uint64_t payload_bytes) {
  const bool ext = style == ReplyStyle::extended;
  return chunk_header(out, ext, nbd::reply_flag_done, ext ? nbd::Chunk::block_status_ext : nbd::Chunk::block_status,
                      cookie, offset, payload_bytes);
}

std::size_t block_status_payload_bytes(ReplyStyle style, std::size_t extents) {
  return style == ReplyStyle::extended ? 8 + 16 * extents : 4 + 8 * extents;
}

std::size_t encode_block_status_payload(std::span<std::byte> out, ReplyStyle style, std::uint32_t context_id,
                                        std::span<const WireExtent> extents) {
  std::byte* p = out.data();
  wire::store_u32(p, context_id);
  if (style == ReplyStyle::extended) {
    wire::store_u32(p + 4, static_cast<std::uint32_t>(extents.size()));
    p += 8;
    for (const auto& e : extents) {
      wire::store_u64(p, e.length);
      wire::store_u64(p + 8, e.flags);
      p += 16;
    }
  } else {
    p += 4;
    for (const auto& e : extents) {
      wire::store_u32(p, static_cast<std::uint32_t>(e.length));
      wire::store_u32(p + 4, e.flags);
      p += 8;
    }
  }
  return static_cast<std::size_t>(p - out.data());
}

std::size_t start_option_reply(std::vector<std::byte>& out, std::uint32_t option, nbd::Rep type) {
  const std::size_t at = out.size();
  out.resize(at + nbd::option_reply_header_bytes);
  wire::store_u64(out.data() + at, nbd::rep_magic);
  wire::store_u32(out.data() + at + 8, option);
  wire::store_u32(out.data() + at + 12, static_cast<std::uint32_t>(type));
  wire::store_u32(out.data() + at + 16, 0);  // the length: finish_option_reply()
  return at;
}

void finish_option_reply(std::vector<std::byte>& out, std::size_t at) {
  wire::store_u32(out.data() + at + 16, static_cast<std::uint32_t>(out.size() - at - nbd::option_reply_header_bytes));
}

void append_option_reply(std::vector<std::byte>& out, std::uint32_t option, nbd::Rep type,
                         std::span<const std::byte> data) {
  const std::size_t at = start_option_reply(out, option, type);
  out.insert(out.end(), data.begin(), data.end());
  finish_option_reply(out, at);
}

std::vector<std::byte> encode_greeting(std::uint16_t handshake_flags) {
  std::vector<std::byte> out(nbd::greeting_bytes);
  wire::store_u64(out.data(), nbd::init_passwd);
  wire::store_u64(out.data() + 8, nbd::opts_magic);
  wire::store_u16(out.data() + 16, handshake_flags);
  return out;
}

std::vector<std::byte> encode_export_name_reply(std::uint64_t size, std::uint16_t eflags, bool no_zeroes) {
  std::vector<std::byte> out(10 + (no_zeroes ? 0 : nbd::export_name_reply_zeroes));
  wire::store_u64(out.data(), size);
  wire::store_u16(out.data() + 8, eflags);
  return out;
}

std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace nbdd::core
