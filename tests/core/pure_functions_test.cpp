// The stateless pieces: errno map, validation table, parsers, encoders.
#include <gtest/gtest.h>

#include <cerrno>

#include "core/errno_map.hpp"
#include "core/option_parser.hpp"
#include "core/reply_builder.hpp"
#include "core/request_parser.hpp"
#include "core/validation.hpp"
#include "core/wire.hpp"

namespace nbdd::core {
namespace {

TEST(ErrnoMap, FollowsNbdkit) {
  EXPECT_EQ(errno_to_nbd(0, 0), nbd::Error::ok);
  EXPECT_EQ(errno_to_nbd(EPERM, 0), nbd::Error::eperm);
  EXPECT_EQ(errno_to_nbd(EROFS, 0), nbd::Error::eperm);
  EXPECT_EQ(errno_to_nbd(EIO, 0), nbd::Error::eio);
  EXPECT_EQ(errno_to_nbd(ENOMEM, 0), nbd::Error::enomem);
  EXPECT_EQ(errno_to_nbd(EFBIG, 0), nbd::Error::enospc);
  EXPECT_EQ(errno_to_nbd(ENOSPC, 0), nbd::Error::enospc);
  EXPECT_EQ(errno_to_nbd(ESHUTDOWN, 0), nbd::Error::eshutdown);
  EXPECT_EQ(errno_to_nbd(ENOTSUP, 0), nbd::Error::einval);
  EXPECT_EQ(errno_to_nbd(ENOTSUP, nbd::cmd_flag_fast_zero), nbd::Error::enotsup);
  EXPECT_EQ(errno_to_nbd(EOVERFLOW, 0), nbd::Error::einval);
  EXPECT_EQ(errno_to_nbd(EOVERFLOW, nbd::cmd_flag_df), nbd::Error::eoverflow);
  EXPECT_EQ(errno_to_nbd(EBADF, 0), nbd::Error::einval);
}

TEST(RequestParser, CompactAndExtendedHeaders) {
  std::array<std::byte, 32> b{};
  wire::store_u32(b.data(), nbd::request_magic);
  wire::store_u16(b.data() + 4, 1);
  wire::store_u16(b.data() + 6, 1);
  wire::store_u64(b.data() + 8, 0xabc);
  wire::store_u64(b.data() + 16, 4096);
  wire::store_u32(b.data() + 24, 512);
  auto r = parse_request_header({b.data(), 28}, false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->cookie, 0xabcu);
  EXPECT_EQ(r->length, 512u);
  EXPECT_EQ(request_payload_bytes(*r, false), 512u);
  EXPECT_FALSE(parse_request_header({b.data(), 28}, true)) << "wrong size for extended";
  EXPECT_FALSE(parse_request_header({b.data(), 32}, true)) << "compact magic in extended mode";
  wire::store_u32(b.data(), nbd::extended_request_magic);
  wire::store_u64(b.data() + 24, 1ull << 40);
  r = parse_request_header(b, true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->length, 1ull << 40);
  EXPECT_EQ(request_payload_bytes(*r, true), 0u) << "no PAYLOAD_LEN, no payload";
}

TEST(OptionParser, RejectsLengthsThatRunPastThePayload) {
  Limits lim;
  InfoRequest info;
  std::vector<std::byte> d(6);
  wire::store_u32(d.data(), 100);
  EXPECT_FALSE(parse_info_request(d, lim, info));
  wire::store_u32(d.data(), 0);
  EXPECT_TRUE(parse_info_request(d, lim, info));
  MetaContextRequest meta;
  std::vector<std::byte> m(8);
  wire::store_u32(m.data() + 4, 1000);  // 1000 queries > meta_queries_max
  EXPECT_FALSE(parse_meta_context_request(m, lim, meta));
  EXPECT_FALSE(valid_nbd_string(std::string(4097, 'a'), lim));
  EXPECT_FALSE(valid_nbd_string(std::string("a\0b", 3), lim));
}

TEST(Validation, TransmissionFlagsFollowCapabilities) {
  ExportInfo e;
  e.caps = Capabilities{};
  e.caps.can_write = false;
  EXPECT_EQ(transmission_flags(e, false, false, false), nbd::flag_has_flags | nbd::flag_read_only);
  e.caps = Capabilities{true, true, true, true, true, true, true, true, true, true};
  const auto f = transmission_flags(e, false, true, false);
  for (auto bit : {nbd::flag_send_flush, nbd::flag_send_fua, nbd::flag_rotational, nbd::flag_send_trim,
                   nbd::flag_send_write_zeroes, nbd::flag_send_df, nbd::flag_can_multi_conn, nbd::flag_send_cache,
                   nbd::flag_send_fast_zero})
    EXPECT_TRUE(f & bit) << bit;
  EXPECT_FALSE(transmission_flags(e, true, true, false) & nbd::flag_send_trim) << "-r hides write flags";
}

TEST(Validation, AlignmentToTheMinimumBlock) {
  TransmissionContext ctx;
  ctx.eflags = nbd::flag_has_flags;
  ctx.size_bytes = 1 << 20;
  ctx.request_bytes_max = 1 << 20;
  ctx.minimum_block = 4096;
  ParsedRequest r;
  r.type = 0;
  r.offset = 4096;
  r.length = 4096;
  EXPECT_EQ(validate_request(r, ctx), nbd::Error::ok);
  r.offset = 512;
  EXPECT_EQ(validate_request(r, ctx), nbd::Error::einval);
}

TEST(ReplyBuilder, SimpleStructuredAndExtendedHeaders) {
  ReplyHeader h;
  EXPECT_EQ(encode_done(h, ReplyStyle::simple, 1, 0), 16u);
  EXPECT_EQ(encode_done(h, ReplyStyle::extended, 1, 0), 32u);
  EXPECT_EQ(encode_read_data(h, ReplyStyle::structured, 1, 0, 10), 28u);
  EXPECT_EQ(encode_read_data(h, ReplyStyle::extended, 1, 0, 10), 40u);
  EXPECT_EQ(encode_error(h, ReplyStyle::structured, true, nbd::Error::eio, 1, 0), 26u);
  EXPECT_EQ(encode_error(h, ReplyStyle::structured, false, nbd::Error::eio, 1, 0), 16u);
  EXPECT_EQ(encode_error(h, ReplyStyle::extended, false, nbd::Error::eio, 1, 0), 38u);
  EXPECT_EQ(block_status_payload_bytes(ReplyStyle::structured, 2), 20u);
  EXPECT_EQ(block_status_payload_bytes(ReplyStyle::extended, 2), 40u);
}

}  // namespace
}  // namespace nbdd::core
