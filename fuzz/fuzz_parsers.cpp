// fuzz_parsers: the stateless parsers and checks of core/, alone (no Connection).
//
// Input layout (plain bytes, so seeds are easy to write by hand; see tools/make_seeds.py):
//   byte 0      which parser: 0 compact request header, 1 extended request header,
//               2 NBD_OPT_INFO/GO payload, 3 SET/LIST_META_CONTEXT payload,
//               4 reply encoders
//   byte 1      which Limits profile (string and query bounds)
//   rest        the parser's bytes; for headers, 28/32 header bytes then a
//               TransmissionContext (eflags u16, size u64, bits u8, request_bytes_max u32,
//               minimum_block u32), zero-filled when short.
// Oracle: typed result or a parse error, never a crash; every accepted result obeys the
// rules stated next to each check (what the rest of core relies on).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "core/errno_map.hpp"
#include "core/option_parser.hpp"
#include "core/protocol_constants.hpp"
#include "core/reply_builder.hpp"
#include "core/request_parser.hpp"
#include "core/validation.hpp"
#include "core/wire.hpp"
#include "fuzz/fuzz_check.hpp"

namespace {

using namespace nbdd::core;

// Reads fixed fields; missing bytes read as zero.
class Fields {
 public:
  explicit Fields(std::span<const std::byte> b) : b_(b) {}
  std::uint64_t take(std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | (pos_ < b_.size() ? std::to_integer<unsigned>(b_[pos_++]) : 0u);
    return v;
  }
  std::span<const std::byte> rest() const { return b_.subspan(std::min(pos_, b_.size())); }

 private:
  std::span<const std::byte> b_;
  std::size_t pos_ = 0;
};

Limits limits_profile(std::uint8_t which) {
  Limits l;
  switch (which % 4) {
    case 0: break;  // production bounds
    case 1: l.string_bytes_max = 16; l.meta_queries_max = 2; break;
    case 2: l.string_bytes_max = 0; l.meta_queries_max = 0; break;
    case 3: l.string_bytes_max = 255; l.meta_queries_max = 64; break;
  }
  return l;
}

bool within(std::string_view v, std::span<const std::byte> data) {
  const auto* b = reinterpret_cast<const char*>(data.data());
  return v.empty() || (v.data() >= b && v.data() + v.size() <= b + data.size());
}

void check_header(std::span<const std::byte> bytes, bool extended) {
  const std::size_t n = request_header_bytes(extended);
  FUZZ_CHECK(n == (extended ? 32u : 28u), "header size");
  if (bytes.size() < n) {
    FUZZ_CHECK(!parse_request_header(bytes, extended), "short header accepted");
    return;
  }
  const auto header = bytes.first(n);
  const auto req = parse_request_header(header, extended);
  const std::uint32_t magic = wire::load_u32(header.data());
  FUZZ_CHECK(req.has_value() == (magic == (extended ? nbd::extended_request_magic : nbd::request_magic)),
             "accepted iff the magic matches the style");
  if (!req) return;
  // Round trip: every field comes from where the spec puts it.
  std::array<std::byte, 32> again{};
  wire::store_u32(again.data(), magic);
  wire::store_u16(again.data() + 4, req->flags);
  wire::store_u16(again.data() + 6, req->type);
  wire::store_u64(again.data() + 8, req->cookie);
  wire::store_u64(again.data() + 16, req->offset);
  if (extended)
    wire::store_u64(again.data() + 24, req->length);
  else
    wire::store_u32(again.data() + 24, static_cast<std::uint32_t>(req->length));
  FUZZ_CHECK(std::memcmp(again.data(), header.data(), n) == 0, "header round trip");

  const std::uint64_t payload = request_payload_bytes(*req, extended);
  FUZZ_CHECK(payload == 0 || payload == req->length, "payload is the length or nothing");
  if (!extended) FUZZ_CHECK(req->length <= 0xffffffffu, "compact length is u32");

  Fields f(bytes.subspan(n));
  TransmissionContext ctx;
  ctx.eflags = static_cast<std::uint16_t>(f.take(2));
  ctx.size_bytes = f.take(8);
  const auto bits = static_cast<std::uint8_t>(f.take(1));
  ctx.structured = bits & 1;
  ctx.extended = extended || (bits & 2);
  ctx.meta_selected = bits & 4;
  ctx.request_bytes_max = static_cast<std::uint32_t>(f.take(4));
  ctx.minimum_block = static_cast<std::uint32_t>(f.take(4));
  const nbd::Error err = validate_request(*req, ctx);
  if (err != nbd::Error::ok || req->type == static_cast<std::uint16_t>(nbd::Cmd::disc)) return;

  // What an accepted request guarantees to the plugin call that follows.
  const auto cmd = static_cast<nbd::Cmd>(req->type);
  FUZZ_CHECK(req->type <= static_cast<std::uint16_t>(nbd::Cmd::block_status), "known command");
  FUZZ_CHECK(req->length <= ctx.size_bytes && req->offset <= ctx.size_bytes - req->length,
             "accepted request inside the export: off=%llu len=%llu size=%llu",
             static_cast<unsigned long long>(req->offset), static_cast<unsigned long long>(req->length),
             static_cast<unsigned long long>(ctx.size_bytes));
  if (cmd == nbd::Cmd::read || cmd == nbd::Cmd::write)
    FUZZ_CHECK(req->length <= ctx.request_bytes_max, "data request above the maximum payload");
  if (ctx.minimum_block > 1)
    FUZZ_CHECK(req->offset % ctx.minimum_block == 0 && req->length % ctx.minimum_block == 0, "alignment");
  const bool read_only = ctx.eflags & nbd::flag_read_only;
  if (cmd == nbd::Cmd::write || cmd == nbd::Cmd::trim || cmd == nbd::Cmd::write_zeroes)
    FUZZ_CHECK(!read_only, "write-like request on a read-only export");
  if (req->flags & nbd::cmd_flag_fua) FUZZ_CHECK(ctx.eflags & nbd::flag_send_fua, "FUA not negotiated");
  if (req->flags & nbd::cmd_flag_fast_zero)
    FUZZ_CHECK(ctx.eflags & nbd::flag_send_fast_zero, "FAST_ZERO not negotiated");
  if (cmd == nbd::Cmd::flush) FUZZ_CHECK(req->offset == 0 && req->length == 0, "flush has no range");
  if (cmd == nbd::Cmd::block_status) FUZZ_CHECK(ctx.meta_selected && req->length > 0, "block status");
  if (ctx.extended && cmd == nbd::Cmd::write)
    FUZZ_CHECK(req->flags & nbd::cmd_flag_payload_len, "extended WRITE without PAYLOAD_LEN");
  if (!ctx.extended) FUZZ_CHECK(!(req->flags & nbd::cmd_flag_payload_len), "PAYLOAD_LEN without extended");
  // Every errno maps to an error the spec defines.
  const nbd::Error mapped = errno_to_nbd(static_cast<int>(req->cookie & 0xff), req->flags);
  FUZZ_CHECK(mapped != nbd::Error::ok || (req->cookie & 0xff) == 0, "errno mapped to success");
}

void check_info(std::span<const std::byte> data, const Limits& limits) {
  InfoRequest out;
  if (!parse_info_request(data, limits, out)) return;
  FUZZ_CHECK(within(out.export_name, data), "name points into the payload");
  FUZZ_CHECK(valid_nbd_string(out.export_name, limits), "accepted name is a valid NBD string");
  const std::size_t count = (data.size() - 6 - out.export_name.size()) / 2;
  FUZZ_CHECK(data.size() == 6 + out.export_name.size() + 2 * count, "L == 6 + N + 2K");
}

void check_meta(std::span<const std::byte> data, const Limits& limits) {
  MetaContextRequest out;
  if (!parse_meta_context_request(data, limits, out)) return;
  FUZZ_CHECK(within(out.export_name, data), "name points into the payload");
  FUZZ_CHECK(valid_nbd_string(out.export_name, limits), "accepted name is valid");
  FUZZ_CHECK(out.queries.size() <= limits.meta_queries_max, "query count bounded");
  std::size_t total = 8 + out.export_name.size();
  for (auto q : out.queries) {
    FUZZ_CHECK(within(q, data), "query points into the payload");
    FUZZ_CHECK(valid_nbd_string(q, limits), "accepted query is valid");
    total += 4 + q.size();
  }
  FUZZ_CHECK(total == data.size(), "every byte accounted for");
}

void check_encoders(Fields f) {
  const auto style = static_cast<ReplyStyle>(f.take(1) % 3);
  const std::uint64_t cookie = f.take(8), offset = f.take(8), length = f.take(8);
  const auto err = static_cast<nbd::Error>(f.take(4));
  const std::size_t extents = f.take(1) % 8;
  ReplyHeader h{};
  std::size_t n = encode_done(h, style, cookie, offset);
  FUZZ_CHECK(n <= h.size(), "done fits");
  n = encode_none(h, style, cookie, offset);
  FUZZ_CHECK(n <= h.size(), "none fits");
  n = encode_error(h, style, (cookie & 1) != 0, err, cookie, offset);
  FUZZ_CHECK(n <= h.size(), "error fits");
  n = encode_read_data(h, style, cookie, offset, length);
  FUZZ_CHECK(n <= h.size(), "read header fits");
  std::array<WireExtent, 8> ext{};
  for (std::size_t i = 0; i < extents; ++i) ext[i] = WireExtent{f.take(8), static_cast<std::uint32_t>(f.take(4))};
  std::array<std::byte, 8 + 16 * 8> payload{};
  const std::size_t want = block_status_payload_bytes(style, extents);
  FUZZ_CHECK(want <= payload.size(), "payload size");
  const std::size_t wrote = encode_block_status_payload(std::span(payload).first(want), style,
                                                         nbd::base_allocation_id, std::span(ext).first(extents));
  FUZZ_CHECK(wrote == want, "block status payload size: %zu vs %zu", wrote, want);
  n = encode_block_status_header(h, style, cookie, offset, want);
  FUZZ_CHECK(n <= h.size(), "block status header fits");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* raw, std::size_t size) {
  if (size < 2) return 0;
  const std::span<const std::byte> all(reinterpret_cast<const std::byte*>(raw), size);
  const auto which = std::to_integer<unsigned>(all[0]) % 5;
  const Limits limits = limits_profile(std::to_integer<std::uint8_t>(all[1]));
  const auto data = all.subspan(2);
  valid_nbd_string({reinterpret_cast<const char*>(data.data()), data.size()}, limits);
  switch (which) {
    case 0: check_header(data, false); break;
    case 1: check_header(data, true); break;
    case 2: check_info(data, limits); break;
    case 3: check_meta(data, limits); break;
    case 4: check_encoders(Fields(data)); break;
  }
  return 0;
}
