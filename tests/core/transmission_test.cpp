// Every command and flag, every validation rule, replies in all three styles,
// pipelining and back-pressure.
#include "tests/core/harness.hpp"

namespace nbdd::test {
namespace {

constexpr auto err(nbd::Error e) { return static_cast<std::uint32_t>(e); }

Bytes pattern(std::size_t n, int seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((i * 7 + static_cast<std::size_t>(seed)) & 0xff);
  return b;
}

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct Simple : ::testing::Test {
  Harness h;
  void SetUp() override { h.handshake(); }
};

TEST_F(Simple, WriteThenReadRoundTrips) {
  const Bytes data = pattern(4096, 1);
  h.send(cat(request(nbd::Cmd::write, 1, 8192, 4096), data));
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::pwrite);
  h.complete();
  auto w = h.take_simple_reply();
  EXPECT_EQ(w.error, 0u);
  EXPECT_EQ(w.cookie, 1u);
  h.send(request(nbd::Cmd::read, 2, 8192, 4096));
  h.complete();
  auto r = h.take_simple_reply();
  EXPECT_EQ(r.error, 0u);
  EXPECT_EQ(r.cookie, 2u);
  EXPECT_EQ(h.take(4096), data);
}

TEST_F(Simple, WritePayloadLandsInTheSlotWithoutStaging) {
  const Bytes data = pattern(100000, 2);
  h.send_via_window(cat(request(nbd::Cmd::write, 7, 0, data.size()), data), 3000);
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(Bytes(h.calls[0].call.buffer.begin(), h.calls[0].call.buffer.end()), data);
  h.complete();
  EXPECT_EQ(h.take_simple_reply().error, 0u);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), h.disk.begin()));
}

// Issue 26: the read window after a WRITE header is its slot only for a large payload; a
// small one shares the stage with what follows, so one read can carry several requests.
TEST_F(Simple, SmallWritePayloadsShareTheStageLargeOnesGoToTheirSlot) {
  h.send(request(nbd::Cmd::write, 1, 0, 4096));
  auto small = h.conn->read_window();
  EXPECT_GE(small.size(), 64u * 1024) << "the stage, room for the payload and the requests after it";
  // Two 4 KiB writes and a read in one delivery into that window.
  const Bytes more = cat(cat(pattern(4096, 3), request(nbd::Cmd::write, 2, 4096, 4096)),
                         cat(pattern(4096, 4), request(nbd::Cmd::read, 3, 0, 8192)));
  ASSERT_LE(more.size(), small.size());
  std::memcpy(small.data(), more.data(), more.size());
  h.input(input::BytesReceived{std::span<const std::byte>(small.data(), more.size())});
  EXPECT_EQ(h.calls.size(), 3u) << "every request of the delivery reached the plugin";
  h.complete_all();
  EXPECT_EQ(Bytes(h.disk.begin(), h.disk.begin() + 4096), pattern(4096, 3));
  EXPECT_EQ(Bytes(h.disk.begin() + 4096, h.disk.begin() + 8192), pattern(4096, 4));
  h.send(request(nbd::Cmd::write, 4, 0, 128 * 1024));
  auto large = h.conn->read_window();
  EXPECT_EQ(large.size(), 128u * 1024) << "exactly the payload, in its slot";
}

TEST_F(Simple, EveryCommandReachesThePluginWithItsFlags) {
  h.send(request(nbd::Cmd::flush, 1, 0, 0));
  h.send(request(nbd::Cmd::trim, 2, 0, 4096, nbd::cmd_flag_fua));
  h.send(request(nbd::Cmd::write_zeroes, 3, 0, 4096, nbd::cmd_flag_no_hole));
  h.send(request(nbd::Cmd::write_zeroes, 4, 0, 4096, nbd::cmd_flag_fast_zero));
  h.send(request(nbd::Cmd::cache, 5, 0, 4096));
  ASSERT_EQ(h.calls.size(), 5u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::flush);
  EXPECT_EQ(h.calls[1].call.kind, CallKind::trim);
  EXPECT_EQ(h.calls[1].call.flags, call_flag::fua);
  EXPECT_EQ(h.calls[2].call.kind, CallKind::zero);
  EXPECT_EQ(h.calls[2].call.flags, 0u) << "NO_HOLE: may not trim";
  EXPECT_EQ(h.calls[3].call.flags, call_flag::may_trim | call_flag::fast_zero);
  EXPECT_EQ(h.calls[4].call.kind, CallKind::cache);
  h.complete_all();
  for (std::uint64_t c = 1; c <= 5; ++c) {
    auto r = h.take_simple_reply();
    EXPECT_EQ(r.error, 0u);
    EXPECT_EQ(r.cookie, c);
  }
}

TEST_F(Simple, ValidationFollowsTheSpecAndNbdkit) {
  struct Case {
    Bytes req;
    nbd::Error want;
  } cases[] = {
      {request(nbd::Cmd::read, 1, (1 << 20) - 10, 20), nbd::Error::einval},
      {request(nbd::Cmd::trim, 2, 1 << 20, 1), nbd::Error::einval},
      {request(nbd::Cmd::cache, 3, ~0ull, 2), nbd::Error::einval},
      {request(nbd::Cmd::write_zeroes, 4, (1 << 20) - 1, 2), nbd::Error::enospc},
      {request(nbd::Cmd::read, 5, 0, 512, 1 << 9), nbd::Error::einval},       // unknown flag
      {request(nbd::Cmd::read, 6, 0, 512, nbd::cmd_flag_df), nbd::Error::einval},  // DF needs SR
      {request(nbd::Cmd::flush, 7, 1, 0), nbd::Error::einval},
      {request(nbd::Cmd::block_status, 8, 0, 512), nbd::Error::einval},       // no context
      {request(static_cast<nbd::Cmd>(42), 9, 0, 0), nbd::Error::einval},
      {request(nbd::Cmd::resize, 10, 0, 0), nbd::Error::einval},
      {request(nbd::Cmd::read, 11, 0, (32u << 20) + 1), nbd::Error::einval},  // over max payload
      {request(nbd::Cmd::trim, 12, 0, 512, nbd::cmd_flag_req_one), nbd::Error::einval},
  };
  for (auto& c : cases) {
    h.send(c.req);
    auto r = h.take_simple_reply();
    EXPECT_EQ(r.error, err(c.want)) << "cookie " << r.cookie;
  }
  EXPECT_TRUE(h.calls.empty()) << "refused requests never reach the plugin";
  EXPECT_EQ(h.conn->stats().error_replies, std::size(cases));
}

TEST_F(Simple, OutOfRangeWriteIsEnospcAndItsPayloadIsConsumed) {
  h.send(cat(request(nbd::Cmd::write, 1, (1 << 20) - 100, 200), pattern(200, 3)));
  EXPECT_EQ(h.take_simple_reply().error, err(nbd::Error::enospc));
  h.send(request(nbd::Cmd::read, 2, 0, 16));
  h.complete();
  auto r = h.take_simple_reply();
  EXPECT_EQ(r.cookie, 2u) << "the stream stayed in sync";
}

// A refused WRITE is answered only after its payload's last byte (libnbd, while still
// sending the payload, takes an earlier reply for a broken server): byte by byte through
// foreign buffers, then in pieces through read_window().
void expect_reply_only_after_last_byte(Harness& h, const Bytes& header, std::size_t payload, nbd::Error want,
                                       bool via_window) {
  const std::size_t before = h.out.size();
  h.send(header);
  for (std::size_t i = 0; i + 1 < payload; ++i) {
    if (via_window)
      h.send_via_window(Bytes(1, std::byte{5}));
    else
      h.send(Bytes(1, std::byte{5}));
    ASSERT_EQ(h.out.size(), before) << "reply bytes before payload byte " << i + 1 << " of " << payload;
  }
  EXPECT_TRUE(h.calls.empty()) << "a refused request never reaches the plugin";
  if (via_window)
    h.send_via_window(Bytes(1, std::byte{5}));
  else
    h.send(Bytes(1, std::byte{5}));
  ASSERT_EQ(h.out.size(), before + 16) << "one simple reply right after the last payload byte";
  auto r = h.take_simple_reply();
  EXPECT_EQ(r.error, err(want));
  EXPECT_EQ(r.cookie, wire::load_u64(header.data() + 8));
}

TEST_F(Simple, OutOfRangeWriteIsAnsweredOnlyAfterItsLastPayloadByte) {
  expect_reply_only_after_last_byte(h, request(nbd::Cmd::write, 1, (1 << 20) - 100, 200), 200, nbd::Error::enospc,
                                    false);
  expect_reply_only_after_last_byte(h, request(nbd::Cmd::write, 2, 1 << 20, 300), 300, nbd::Error::enospc, true);
  expect_reply_only_after_last_byte(h, request(nbd::Cmd::write, 3, 0, 64, 1 << 9), 64, nbd::Error::einval, false);
  h.send(request(nbd::Cmd::read, 4, 0, 16));
  h.complete();
  EXPECT_EQ(h.take_simple_reply().cookie, 4u) << "the stream stayed in sync";
  h.take(16);
  EXPECT_EQ(h.conn->stats().in_flight, 0u);
}

TEST(ReadOnly, RefusedWriteIsAnsweredOnlyAfterItsLastPayloadByte) {
  auto c = default_catalog();
  c.read_only = true;
  Harness h(c);
  h.handshake();
  expect_reply_only_after_last_byte(h, request(nbd::Cmd::write, 1, 0, 100), 100, nbd::Error::eperm, false);
  expect_reply_only_after_last_byte(h, request(nbd::Cmd::write, 2, 512, 50), 50, nbd::Error::eperm, true);
}

TEST_F(Simple, OversizedCompactWriteIsDiscardedThenEinval) {
  const std::size_t n = (32u << 20) + 4096;
  Bytes req = request(nbd::Cmd::write, 1, 0, n);
  h.send(req);
  Bytes chunk(256 << 10, std::byte{9});  // foreign deliveries stay within staged_bytes_max
  for (std::size_t left = n; left > 0;) {
    EXPECT_EQ(h.unread(), 0u) << "no reply while " << left << " payload bytes are still to come";
    const std::size_t k = std::min(left, chunk.size());
    h.send(Bytes(chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(k)));
    left -= k;
  }
  EXPECT_EQ(h.take_simple_reply().error, err(nbd::Error::einval));
  h.send(request(nbd::Cmd::flush, 2, 0, 0));
  h.complete();
  EXPECT_EQ(h.take_simple_reply().cookie, 2u);
}

TEST_F(Simple, AbsurdWriteLengthIsAHardDisconnect) {
  h.send(request(nbd::Cmd::write, 1, 0, 0xffffffffu));
  EXPECT_TRUE(h.closed_abort);
  EXPECT_EQ(h.conn->stats().end_reason, EndReason::protocol_violation);
}

TEST_F(Simple, BadRequestMagicClosesTheConnection) {
  Bytes b = request(nbd::Cmd::read, 1, 0, 512);
  b[0] = std::byte{0};
  h.send(b);
  EXPECT_TRUE(h.closed_abort);
  EXPECT_TRUE(h.finished == false) << "close of the plugin still to run";
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::close);
  h.complete();
  EXPECT_TRUE(h.finished);
}

TEST_F(Simple, PluginErrnosAreMappedInOnePlace) {
  h.send(request(nbd::Cmd::read, 1, 0, 512));
  h.complete(0, EIO);
  EXPECT_EQ(h.take_simple_reply().error, err(nbd::Error::eio));
  h.send(request(nbd::Cmd::write_zeroes, 2, 0, 512));
  h.complete(0, ENOTSUP);
  EXPECT_EQ(h.take_simple_reply().error, err(nbd::Error::einval)) << "ENOTSUP only with FAST_ZERO";
  h.send(request(nbd::Cmd::write_zeroes, 3, 0, 512, nbd::cmd_flag_fast_zero));
  h.complete(0, ENOTSUP);
  EXPECT_EQ(h.take_simple_reply().error, err(nbd::Error::enotsup));
  h.send(request(nbd::Cmd::trim, 4, 0, 512));
  h.complete(0, EROFS);
  EXPECT_EQ(h.take_simple_reply().error, err(nbd::Error::eperm));
  h.send(request(nbd::Cmd::flush, 5, 0, 0));
  h.complete(0, EDQUOT);
  EXPECT_EQ(h.take_simple_reply().error, err(nbd::Error::enospc));
}

TEST_F(Simple, ZeroLengthRequestsSucceedWithoutAPluginCall) {
  h.send(request(nbd::Cmd::read, 1, 0, 0));
  h.send(request(nbd::Cmd::trim, 2, 1 << 20, 0));
  EXPECT_EQ(h.take_simple_reply().error, 0u);
  EXPECT_EQ(h.take_simple_reply().error, 0u);
  EXPECT_TRUE(h.calls.empty());
}

TEST_F(Simple, PipelinedRequestsCompleteOutOfOrderEachRepliedOnce) {
  const auto max = Limits{}.in_flight_max;
  for (std::uint32_t i = 0; i < max; ++i) h.send(request(nbd::Cmd::read, 100 + i, i * 512, 512));
  EXPECT_EQ(h.calls.size(), max);
  EXPECT_FALSE(h.conn->wants_read()) << "back-pressure at in_flight_max";
  EXPECT_TRUE(h.conn->read_window().empty());
  std::vector<int> seen(max, 0);
  for (std::uint32_t i = 0; i < max; ++i) {
    h.complete(h.calls.size() - 1);  // newest first
    auto r = h.take_simple_reply();
    h.take(512);
    ASSERT_GE(r.cookie, 100u);
    ++seen[r.cookie - 100];
    EXPECT_TRUE(h.conn->wants_read());
  }
  for (int s : seen) EXPECT_EQ(s, 1);
}

TEST_F(Simple, UnackedRepliesHoldTheirSlots) {
  h.auto_ack = false;
  const auto max = Limits{}.in_flight_max;
  for (std::uint32_t i = 0; i < max; ++i) h.send(request(nbd::Cmd::flush, i, 0, 0));
  h.complete_all();
  EXPECT_EQ(h.unacked, max);
  EXPECT_FALSE(h.conn->wants_read());
  h.input(input::SendDone{});
  --h.unacked;
  EXPECT_TRUE(h.conn->wants_read());
}

TEST(Budget, LargeReadsWaitForBufferSpace) {
  Limits lim;
  lim.slot_buffer_bytes_max = 64u << 20;
  Harness h(default_catalog(64u << 20), lim);
  h.handshake();
  h.send(request(nbd::Cmd::read, 1, 0, 32u << 20));
  h.send(request(nbd::Cmd::read, 2, 0, 32u << 20));
  h.send(request(nbd::Cmd::read, 3, 0, 32u << 20));
  EXPECT_EQ(h.calls.size(), 2u) << "the third waits: 96 MiB > budget";
  EXPECT_FALSE(h.conn->wants_read());
  h.complete();
  EXPECT_EQ(h.calls.size(), 2u) << "its buffer is free again after the reply was sent";
}

TEST(ReadOnly, WritesAreEpermAndFlagsSaySo) {
  auto c = default_catalog();
  c.read_only = true;
  Harness h(c);
  h.handshake();
  EXPECT_TRUE(h.eflags & nbd::flag_read_only);
  EXPECT_FALSE(h.eflags & nbd::flag_send_trim);
  h.send(cat(request(nbd::Cmd::write, 1, 0, 512), pattern(512, 0)));
  EXPECT_EQ(h.take_simple_reply().error, err(nbd::Error::eperm));
  h.send(request(nbd::Cmd::trim, 2, 0, 512));
  EXPECT_EQ(h.take_simple_reply().error, err(nbd::Error::eperm));
  h.send(request(nbd::Cmd::read, 3, 0, 512));
  EXPECT_EQ(h.calls.size(), 1u);
}

struct Structured : ::testing::Test {
  Harness h;
  void SetUp() override {
    h.handshake("", {option(nbd::Opt::structured_reply),
                     option(nbd::Opt::set_meta_context, meta_request("", {"base:allocation"}))});
  }
};

TEST_F(Structured, ReadIsOneOffsetDataChunk) {
  h.send(request(nbd::Cmd::read, 5, 4096, 1000, nbd::cmd_flag_df));
  h.complete();
  auto c = h.take_chunk();
  EXPECT_EQ(c.flags, nbd::reply_flag_done);
  EXPECT_EQ(c.type, static_cast<std::uint16_t>(nbd::Chunk::offset_data));
  EXPECT_EQ(c.cookie, 5u);
  ASSERT_EQ(c.payload.size(), 1008u);
  EXPECT_EQ(wire::load_u64(c.payload.data()), 4096u);
}

TEST_F(Structured, ReadErrorsAreErrorChunksOtherErrorsSimple) {
  h.send(request(nbd::Cmd::read, 1, 0, 512));
  h.complete(0, EIO);
  auto c = h.take_chunk();
  EXPECT_EQ(c.type, static_cast<std::uint16_t>(nbd::Chunk::error));
  EXPECT_EQ(wire::load_u32(c.payload.data()), err(nbd::Error::eio));
  h.send(request(nbd::Cmd::trim, 2, 1 << 20, 512));
  EXPECT_EQ(h.take_simple_reply().error, err(nbd::Error::einval));
}

TEST_F(Structured, OverlongReadIsEoverflow) {
  h.send(request(nbd::Cmd::read, 1, 0, (32u << 20) + 512));
  auto c = h.take_chunk();
  EXPECT_EQ(wire::load_u32(c.payload.data()), err(nbd::Error::eoverflow));
}

TEST_F(Structured, BlockStatusMergesClipsAndHonoursReqOne) {
  h.extent_bytes = 4096;
  h.send(request(nbd::Cmd::block_status, 1, 1024, 10000));
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].call.kind, CallKind::extents);
  h.complete();
  auto c = h.take_chunk();
  EXPECT_EQ(c.type, static_cast<std::uint16_t>(nbd::Chunk::block_status));
  EXPECT_EQ(wire::load_u32(c.payload.data()), 1u);
  ASSERT_EQ(c.payload.size(), 4u + 3 * 8);
  EXPECT_EQ(wire::load_u32(c.payload.data() + 4), 4096u - 1024);
  EXPECT_EQ(wire::load_u32(c.payload.data() + 8), 0u);
  EXPECT_EQ(wire::load_u32(c.payload.data() + 12), 4096u);
  EXPECT_EQ(wire::load_u32(c.payload.data() + 16), nbd::state_hole | nbd::state_zero);
  EXPECT_EQ(wire::load_u32(c.payload.data() + 20), 10000u - 3072 - 4096);
  h.send(request(nbd::Cmd::block_status, 2, 0, 100000, nbd::cmd_flag_req_one));
  EXPECT_EQ(h.calls[0].call.extents_max, 1u);
  h.complete();
  auto one = h.take_chunk();
  ASSERT_EQ(one.payload.size(), 12u);
}

TEST_F(Structured, ZeroLengthReadIsANoneChunk) {
  h.send(request(nbd::Cmd::read, 9, 0, 0));
  auto c = h.take_chunk();
  EXPECT_EQ(c.type, static_cast<std::uint16_t>(nbd::Chunk::none));
  EXPECT_EQ(c.flags, nbd::reply_flag_done);
}

TEST(MetaContext, SelectionForAnotherExportDoesNotCarryOver) {
  Harness h;
  h.handshake("", {option(nbd::Opt::structured_reply),
                   option(nbd::Opt::set_meta_context, meta_request("small", {"base:allocation"}))});
  h.send(request(nbd::Cmd::block_status, 1, 0, 512));
  EXPECT_EQ(wire::load_u32(h.take_chunk().payload.data()), err(nbd::Error::einval));
}

struct Extended : ::testing::Test {
  Harness h;
  void SetUp() override {
    h.handshake("", {option(nbd::Opt::extended_headers),
                     option(nbd::Opt::set_meta_context, meta_request("", {"base:allocation"}))});
  }
};

TEST_F(Extended, WriteNeedsPayloadLenAndSuccessIsANoneChunk) {
  const Bytes data = pattern(512, 5);
  h.send(cat(request(nbd::Cmd::write, 1, 0, 512, nbd::cmd_flag_payload_len, true), data));
  h.complete();
  auto c = h.take_chunk(true);
  EXPECT_EQ(c.type, static_cast<std::uint16_t>(nbd::Chunk::none));
  EXPECT_EQ(c.flags, nbd::reply_flag_done);
  h.send(request(nbd::Cmd::write, 2, 0, 512, 0, true));  // no PAYLOAD_LEN: no payload either
  auto e = h.take_chunk(true);
  EXPECT_EQ(e.type, static_cast<std::uint16_t>(nbd::Chunk::error)) << "no simple replies with extended headers";
  EXPECT_EQ(wire::load_u32(e.payload.data()), err(nbd::Error::einval));
  h.send(request(nbd::Cmd::read, 3, 0, 512, 0, true));
  h.complete();
  auto r = h.take_chunk(true);
  EXPECT_EQ(r.type, static_cast<std::uint16_t>(nbd::Chunk::offset_data));
  EXPECT_EQ(Bytes(r.payload.begin() + 8, r.payload.end()), data);
}

TEST_F(Extended, PayloadOnOtherCommandsIsConsumedAndRefused) {
  h.send(cat(request(nbd::Cmd::block_status, 1, 0, 12, nbd::cmd_flag_payload_len, true), Bytes(12)));
  EXPECT_EQ(h.take_chunk(true).type, static_cast<std::uint16_t>(nbd::Chunk::error));
  h.send(request(nbd::Cmd::flush, 2, 0, 0, 0, true));
  h.complete();
  EXPECT_EQ(h.take_chunk(true).cookie, 2u);
}

TEST_F(Extended, OverlongPayloadIsAHardDisconnect) {
  h.send(request(nbd::Cmd::write, 1, 0, (32ull << 20) + 1, nbd::cmd_flag_payload_len, true));
  EXPECT_TRUE(h.closed_abort);
}

TEST_F(Extended, BlockStatusUsesTheExtChunk) {
  h.send(request(nbd::Cmd::block_status, 1, 0, 200000, 0, true));
  h.complete();
  auto c = h.take_chunk(true);
  EXPECT_EQ(c.type, static_cast<std::uint16_t>(nbd::Chunk::block_status_ext));
  EXPECT_EQ(wire::load_u32(c.payload.data() + 4), 4u) << "extent count";
  EXPECT_EQ(wire::load_u64(c.payload.data() + 8), 65536u);
}

}  // namespace
}  // namespace nbdd::test
