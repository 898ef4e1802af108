// Every bound the core enforces, named with its unit last. A length read from the
// wire is checked against one of these before anything is allocated for it.
#pragma once
#include <cstdint>

#include "core/time.hpp"

namespace nbdd::core {

struct Limits {
  // Option payload we buffer and parse. The largest legitimate option is a
  // SET_META_CONTEXT with a few 4096-byte queries.
  std::uint32_t option_data_bytes_max = 64 * 1024;
  // Larger option payloads are read and dropped, then answered NBD_REP_ERR_TOO_BIG;
  // beyond this we judge the client a DoS and hard-disconnect (nbdkit: 64 MiB).
  std::uint32_t option_discard_bytes_max = 64 * 1024 * 1024;
  // Options per handshake before we judge the client a DoS (nbdkit allows about 32).
  std::uint32_t options_per_handshake_max = 128;
  // Spec: strings MUST be <= 4096 bytes (NBD_MAX_STRING).
  std::uint32_t string_bytes_max = 4096;
  // Queries in one LIST/SET_META_CONTEXT.
  std::uint32_t meta_queries_max = 64;
  // Maximum payload advertised and enforced (spec default 32 MiB).
  std::uint32_t request_bytes_max = 32 * 1024 * 1024;
  // A compact WRITE above request_bytes_max but at most this is read and discarded,
  // then answered EINVAL; beyond it the connection is hard-disconnected.
  std::uint32_t write_discard_bytes_max = 64 * 1024 * 1024;
  // Requests accepted but not yet fully replied to (one slot each).
  std::uint32_t in_flight_max = 64;
  // Bytes of slot buffers one connection may hold at once; a request that would
  // exceed it waits (wants_read() false) until earlier replies are sent.
  std::uint64_t slot_buffer_bytes_max = 96ull * 1024 * 1024;
  // Received bytes staged but not yet parsed (back-pressure beyond this).
  std::uint32_t staged_bytes_max = 256 * 1024;
  // Extents returned for one BLOCK_STATUS (spec: SHOULD NOT exceed 2^20).
  std::uint32_t extents_per_reply_max = 1 << 16;
  // Exports one NBD_OPT_LIST reply may name (nbdkit's limit); more are dropped.
  std::uint32_t exports_listed_max = 10000;
  // Whole handshake, from accept to transmission.
  Duration handshake_timeout = Duration::from_s(10);
  // Graceful disconnect: once nothing is in flight, how long the client has to send DISC.
  Duration grace_period = Duration::from_s(1);
};

}  // namespace nbdd::core
