#include "core/option_parser.hpp"

#include "core/protocol_constants.hpp"
#include "core/wire.hpp"

namespace nbdd::core {
namespace {

std::string_view as_string(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace

bool valid_nbd_string(std::string_view s, const Limits& limits) {
  return s.size() <= limits.string_bytes_max && s.find('\0') == std::string_view::npos;
}

bool parse_info_request(std::span<const std::byte> data, const Limits& limits, InfoRequest& out) {
  wire::Reader r(data);
  std::uint32_t name_len = 0;
  std::span<const std::byte> name;
  std::uint16_t count = 0;
  if (!r.u32(name_len) || name_len > limits.string_bytes_max || !r.bytes(name_len, name) || !r.u16(count))
    return false;
  if (r.remaining() != std::size_t{count} * 2) return false;  // L must equal 6 + N + 2K
  out = InfoRequest{};
  out.export_name = as_string(name);
  if (!valid_nbd_string(out.export_name, limits)) return false;
  for (std::uint16_t i = 0; i < count; ++i) {
    std::uint16_t type = 0;
    r.u16(type);
    switch (static_cast<nbd::Info>(type)) {
      case nbd::Info::name: out.wants_name = true; break;
      case nbd::Info::description: out.wants_description = true; break;
      case nbd::Info::block_size: out.wants_block_size = true; break;
      default: break;  // spec: ignore unknown types; EXPORT is always sent
    }
  }
  return true;
}

bool parse_meta_context_request(std::span<const std::byte> data, const Limits& limits,
                                MetaContextRequest& out) {
  wire::Reader r(data);
  std::uint32_t name_len = 0;
  std::span<const std::byte> name;
  std::uint32_t count = 0;
  if (!r.u32(name_len) || name_len > limits.string_bytes_max || !r.bytes(name_len, name) || !r.u32(count))
    return false;
  if (count > limits.meta_queries_max) return false;
  out.export_name = as_string(name);
  out.queries.clear();
  if (!valid_nbd_string(out.export_name, limits)) return false;
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint32_t len = 0;
    std::span<const std::byte> query;
    if (!r.u32(len) || len > limits.string_bytes_max || !r.bytes(len, query)) return false;
    const std::string_view q = as_string(query);
    if (!valid_nbd_string(q, limits)) return false;
    out.queries.push_back(q);
  }
  return r.remaining() == 0;
}

}  // namespace nbdd::core
