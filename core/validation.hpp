// Request checks against the export and what was negotiated -> the NBD error to answer.
// One function, in nbdkit's order; see docs/core.md for the table.
#pragma once
#include <cstdint>

#include "core/export_info.hpp"
#include "core/protocol_constants.hpp"
#include "core/request_parser.hpp"

namespace nbdd::core {

// What a request is validated against, fixed when transmission starts.
struct TransmissionContext {
  std::uint16_t eflags = 0;        // transmission flags sent to the client
  std::uint64_t size_bytes = 0;
  bool structured = false;         // structured replies or extended headers
  bool extended = false;           // extended headers
  bool meta_selected = false;      // base:allocation selected for this export
  std::uint32_t request_bytes_max = 0;
  std::uint32_t minimum_block = 1;
};

// Transmission flags for an export given what was negotiated (§4).
std::uint16_t transmission_flags(const ExportInfo& info, bool read_only, bool structured, bool extended);

// nbd::Error::ok when the request may go to the plugin. DISC is not validated here.
nbd::Error validate_request(const ParsedRequest& req, const TransmissionContext& ctx);

}  // namespace nbdd::core
