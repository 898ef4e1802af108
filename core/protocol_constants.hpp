// NBD wire constants. Each carries the spec's name so `grep NBD_CMD_TRIM` finds it.
// Source: ../shared/docs/nbd-protocol.md (condensed NBD proto.md + extended headers).
#pragma once
#include <cstdint>

namespace nbdd::core::nbd {

// Magics (§2)
inline constexpr std::uint64_t init_passwd = 0x4e42444d41474943ull;     // NBDMAGIC
inline constexpr std::uint64_t opts_magic = 0x49484156454F5054ull;      // IHAVEOPT
inline constexpr std::uint64_t rep_magic = 0x0003e889045565a9ull;       // NBD_REP_MAGIC
inline constexpr std::uint32_t request_magic = 0x25609513;              // NBD_REQUEST_MAGIC
inline constexpr std::uint32_t extended_request_magic = 0x21e41c71;     // NBD_EXTENDED_REQUEST_MAGIC
inline constexpr std::uint32_t simple_reply_magic = 0x67446698;         // NBD_SIMPLE_REPLY_MAGIC
inline constexpr std::uint32_t structured_reply_magic = 0x668e33ef;     // NBD_STRUCTURED_REPLY_MAGIC
inline constexpr std::uint32_t extended_reply_magic = 0x6e8a278c;       // NBD_EXTENDED_REPLY_MAGIC

// Handshake flags, u16 (§3.2)
inline constexpr std::uint16_t flag_fixed_newstyle = 1 << 0;  // NBD_FLAG_FIXED_NEWSTYLE
inline constexpr std::uint16_t flag_no_zeroes = 1 << 1;       // NBD_FLAG_NO_ZEROES
// Client flags, u32
inline constexpr std::uint32_t flag_c_fixed_newstyle = 1 << 0;  // NBD_FLAG_C_FIXED_NEWSTYLE
inline constexpr std::uint32_t flag_c_no_zeroes = 1 << 1;       // NBD_FLAG_C_NO_ZEROES

// Options (§3.5)
enum class Opt : std::uint32_t {
  export_name = 1,         // NBD_OPT_EXPORT_NAME
  abort = 2,               // NBD_OPT_ABORT
  list = 3,                // NBD_OPT_LIST
  peek_export = 4,         // NBD_OPT_PEEK_EXPORT (withdrawn)
  starttls = 5,            // NBD_OPT_STARTTLS
  info = 6,                // NBD_OPT_INFO
  go = 7,                  // NBD_OPT_GO
  structured_reply = 8,    // NBD_OPT_STRUCTURED_REPLY
  list_meta_context = 9,   // NBD_OPT_LIST_META_CONTEXT
  set_meta_context = 10,   // NBD_OPT_SET_META_CONTEXT
  extended_headers = 11,   // NBD_OPT_EXTENDED_HEADERS
};

// Option reply types (§3.6)
enum class Rep : std::uint32_t {
  ack = 1,                          // NBD_REP_ACK
  server = 2,                       // NBD_REP_SERVER
  info = 3,                         // NBD_REP_INFO
  meta_context = 4,                 // NBD_REP_META_CONTEXT
  err_unsup = 0x80000001,           // NBD_REP_ERR_UNSUP
  err_policy = 0x80000002,          // NBD_REP_ERR_POLICY
  err_invalid = 0x80000003,         // NBD_REP_ERR_INVALID
  err_platform = 0x80000004,        // NBD_REP_ERR_PLATFORM
  err_tls_reqd = 0x80000005,        // NBD_REP_ERR_TLS_REQD
  err_unknown = 0x80000006,         // NBD_REP_ERR_UNKNOWN
  err_shutdown = 0x80000007,        // NBD_REP_ERR_SHUTDOWN
  err_block_size_reqd = 0x80000008, // NBD_REP_ERR_BLOCK_SIZE_REQD
  err_too_big = 0x80000009,         // NBD_REP_ERR_TOO_BIG
  err_ext_header_reqd = 0x8000000A, // NBD_REP_ERR_EXT_HEADER_REQD
};

// NBD_REP_INFO types (§3.9)
enum class Info : std::uint16_t {
  export_ = 0,      // NBD_INFO_EXPORT
  name = 1,         // NBD_INFO_NAME
  description = 2,  // NBD_INFO_DESCRIPTION
  block_size = 3,   // NBD_INFO_BLOCK_SIZE
};

// Transmission flags, u16 (§4)
inline constexpr std::uint16_t flag_has_flags = 1 << 0;              // NBD_FLAG_HAS_FLAGS
inline constexpr std::uint16_t flag_read_only = 1 << 1;              // NBD_FLAG_READ_ONLY
inline constexpr std::uint16_t flag_send_flush = 1 << 2;             // NBD_FLAG_SEND_FLUSH
inline constexpr std::uint16_t flag_send_fua = 1 << 3;               // NBD_FLAG_SEND_FUA
inline constexpr std::uint16_t flag_rotational = 1 << 4;             // NBD_FLAG_ROTATIONAL
inline constexpr std::uint16_t flag_send_trim = 1 << 5;              // NBD_FLAG_SEND_TRIM
inline constexpr std::uint16_t flag_send_write_zeroes = 1 << 6;      // NBD_FLAG_SEND_WRITE_ZEROES
inline constexpr std::uint16_t flag_send_df = 1 << 7;                // NBD_FLAG_SEND_DF
inline constexpr std::uint16_t flag_can_multi_conn = 1 << 8;         // NBD_FLAG_CAN_MULTI_CONN
inline constexpr std::uint16_t flag_send_resize = 1 << 9;            // NBD_FLAG_SEND_RESIZE
inline constexpr std::uint16_t flag_send_cache = 1 << 10;            // NBD_FLAG_SEND_CACHE
inline constexpr std::uint16_t flag_send_fast_zero = 1 << 11;        // NBD_FLAG_SEND_FAST_ZERO
inline constexpr std::uint16_t flag_block_status_payload = 1 << 12;  // NBD_FLAG_BLOCK_STATUS_PAYLOAD

// Commands (§5.4)
enum class Cmd : std::uint16_t {
  read = 0,          // NBD_CMD_READ
  write = 1,         // NBD_CMD_WRITE
  disc = 2,          // NBD_CMD_DISC
  flush = 3,         // NBD_CMD_FLUSH
  trim = 4,          // NBD_CMD_TRIM
  cache = 5,         // NBD_CMD_CACHE
  write_zeroes = 6,  // NBD_CMD_WRITE_ZEROES
  block_status = 7,  // NBD_CMD_BLOCK_STATUS
  resize = 8,        // NBD_CMD_RESIZE (experimental; never advertised)
};

// Command flags, u16 (§5.5)
inline constexpr std::uint16_t cmd_flag_fua = 1 << 0;          // NBD_CMD_FLAG_FUA
inline constexpr std::uint16_t cmd_flag_no_hole = 1 << 1;      // NBD_CMD_FLAG_NO_HOLE
inline constexpr std::uint16_t cmd_flag_df = 1 << 2;           // NBD_CMD_FLAG_DF
inline constexpr std::uint16_t cmd_flag_req_one = 1 << 3;      // NBD_CMD_FLAG_REQ_ONE
inline constexpr std::uint16_t cmd_flag_fast_zero = 1 << 4;    // NBD_CMD_FLAG_FAST_ZERO
inline constexpr std::uint16_t cmd_flag_payload_len = 1 << 5;  // NBD_CMD_FLAG_PAYLOAD_LEN

// Reply chunk flags and types (§5.7, §5.8)
inline constexpr std::uint16_t reply_flag_done = 1 << 0;  // NBD_REPLY_FLAG_DONE
enum class Chunk : std::uint16_t {
  none = 0,                 // NBD_REPLY_TYPE_NONE
  offset_data = 1,          // NBD_REPLY_TYPE_OFFSET_DATA
  offset_hole = 2,          // NBD_REPLY_TYPE_OFFSET_HOLE
  block_status = 5,         // NBD_REPLY_TYPE_BLOCK_STATUS
  block_status_ext = 6,     // NBD_REPLY_TYPE_BLOCK_STATUS_EXT
  error = 0x8001,           // NBD_REPLY_TYPE_ERROR
  error_offset = 0x8002,    // NBD_REPLY_TYPE_ERROR_OFFSET
};

// base:allocation state bits (§8.3)
inline constexpr std::uint32_t state_hole = 1 << 0;  // NBD_STATE_HOLE
inline constexpr std::uint32_t state_zero = 1 << 1;  // NBD_STATE_ZERO

// Errors on the wire (§6.1)
enum class Error : std::uint32_t {
  ok = 0,
  eperm = 1,        // NBD_EPERM
  eio = 5,          // NBD_EIO
  enomem = 12,      // NBD_ENOMEM
  einval = 22,      // NBD_EINVAL
  enospc = 28,      // NBD_ENOSPC
  eoverflow = 75,   // NBD_EOVERFLOW
  enotsup = 95,     // NBD_ENOTSUP
  eshutdown = 108,  // NBD_ESHUTDOWN
};

// Sizes of fixed wire structures.
inline constexpr std::size_t greeting_bytes = 18;
inline constexpr std::size_t option_header_bytes = 16;
inline constexpr std::size_t option_reply_header_bytes = 20;
inline constexpr std::size_t compact_request_bytes = 28;
inline constexpr std::size_t extended_request_bytes = 32;
inline constexpr std::size_t simple_reply_bytes = 16;
inline constexpr std::size_t structured_reply_header_bytes = 20;
inline constexpr std::size_t extended_reply_header_bytes = 32;
inline constexpr std::size_t export_name_reply_zeroes = 124;

// The one meta context nbdd serves, and the id it gets once selected.
inline constexpr char base_allocation[] = "base:allocation";
inline constexpr std::uint32_t base_allocation_id = 1;

}  // namespace nbdd::core::nbd
