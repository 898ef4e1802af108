// Handshake option payloads -> typed views (§3.8 INFO/GO, §8.2 META_CONTEXT).
// Stateless; every length is checked against the payload and the named limits.
// Views point into the caller's payload buffer.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/limits.hpp"

namespace nbdd::core {

// Spec §1: at most 4096 bytes, no NUL.
bool valid_nbd_string(std::string_view s, const Limits& limits);

struct InfoRequest {
  std::string_view export_name;
  bool wants_name = false;
  bool wants_description = false;
  bool wants_block_size = false;
};

// false: malformed (answer NBD_REP_ERR_INVALID).
bool parse_info_request(std::span<const std::byte> data, const Limits& limits, InfoRequest& out);

struct MetaContextRequest {
  std::string_view export_name;
  std::vector<std::string_view> queries;  // at most Limits::meta_queries_max
};

// false: malformed (answer NBD_REP_ERR_INVALID), including too many queries.
bool parse_meta_context_request(std::span<const std::byte> data, const Limits& limits,
                                MetaContextRequest& out);

}  // namespace nbdd::core
