// sim::wire: an NBD wire model written independently of core/ (its own constants, its own
// decoders), so that a bug in core's encoder or constants is not mirrored by the oracle.
//
// ClientStreamDecoder parses what a client sends (client flags, options, requests);
// ServerStreamDecoder parses what a server sends and checks every rule of
// ../shared/docs/nbd-protocol.md that can be checked from the bytes alone (greeting, option
// replies, export block, simple/structured/extended reply chunks, chunk rules per command).
// Both are incremental: feed any segmentation, get the same events.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sim/fifo.hpp"

namespace nbdd::sim::wire {

// ---- constants (own copy; cross-checked against the spec text, not against core) --------
inline constexpr std::uint64_t nbdmagic = 0x4e42444d41474943ull;
inline constexpr std::uint64_t ihaveopt = 0x49484156454f5054ull;
inline constexpr std::uint64_t rep_magic = 0x0003e889045565a9ull;
inline constexpr std::uint32_t request_magic = 0x25609513u;
inline constexpr std::uint32_t ext_request_magic = 0x21e41c71u;
inline constexpr std::uint32_t simple_magic = 0x67446698u;
inline constexpr std::uint32_t structured_magic = 0x668e33efu;
inline constexpr std::uint32_t extended_magic = 0x6e8a278cu;

namespace opt {
inline constexpr std::uint32_t export_name = 1, abort = 2, list = 3, starttls = 5, info = 6, go = 7,
                               structured_reply = 8, list_meta = 9, set_meta = 10, extended_headers = 11;
}
namespace rep {
inline constexpr std::uint32_t ack = 1, server = 2, info = 3, meta_context = 4;
inline constexpr std::uint32_t err_unsup = 0x80000001u, err_policy = 0x80000002u, err_invalid = 0x80000003u,
                               err_platform = 0x80000004u, err_tls_reqd = 0x80000005u,
                               err_unknown = 0x80000006u, err_shutdown = 0x80000007u,
                               err_block_size_reqd = 0x80000008u, err_too_big = 0x80000009u,
                               err_ext_header_reqd = 0x8000000au;
inline bool is_error(std::uint32_t type) { return (type & 0x80000000u) != 0; }
}  // namespace rep
namespace cmd {
inline constexpr std::uint16_t read = 0, write = 1, disc = 2, flush = 3, trim = 4, cache = 5, write_zeroes = 6,
                               block_status = 7;
}
namespace cflag {
inline constexpr std::uint16_t fua = 1, no_hole = 2, df = 4, req_one = 8, fast_zero = 16, payload_len = 32;
}
namespace eflag {
inline constexpr std::uint16_t has_flags = 1, read_only = 2, send_flush = 4, send_fua = 8, rotational = 16,
                               send_trim = 32, send_write_zeroes = 64, send_df = 128, multi_conn = 256,
                               send_resize = 512, send_cache = 1024, send_fast_zero = 2048,
                               block_status_payload = 4096;
}
namespace err {
inline constexpr std::uint32_t eperm = 1, eio = 5, enomem = 12, einval = 22, enospc = 28, eoverflow = 75,
                               enotsup = 95, eshutdown = 108;
}
inline constexpr std::uint32_t state_hole = 1, state_zero = 2;

// ---- big-endian helpers -----------------------------------------------------------------
// Inline: the decoders call them for every field of every message.
inline std::uint16_t load16(const std::byte* p) {
  return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8) | std::to_integer<unsigned>(p[1]));
}
inline std::uint32_t load32(const std::byte* p) {
  return (static_cast<std::uint32_t>(load16(p)) << 16) | load16(p + 2);
}
inline std::uint64_t load64(const std::byte* p) {
  return (static_cast<std::uint64_t>(load32(p)) << 32) | load32(p + 4);
}
void put16(std::vector<std::byte>& out, std::uint16_t v);
void put32(std::vector<std::byte>& out, std::uint32_t v);
void put64(std::vector<std::byte>& out, std::uint64_t v);
void put_bytes(std::vector<std::byte>& out, std::string_view s);

const char* command_name(std::uint16_t type);
const char* option_name(std::uint32_t option);

struct Request {
  std::uint16_t flags = 0;
  std::uint16_t type = 0;
  std::uint64_t cookie = 0;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;         // effect length (compact WRITE: payload length)
  std::vector<std::byte> payload;   // WRITE data (or any PAYLOAD_LEN payload)
};

// Encoders used by the simulated clients.
std::vector<std::byte> encode_option(std::uint32_t option, std::span<const std::byte> data);
// An option's 16-byte header (IHAVEOPT, option, data length) written at `out`.
void encode_option_header(std::byte* out, std::uint32_t option, std::size_t data_bytes);
std::vector<std::byte> encode_request(const Request& req, bool extended);
// Appends the request's header only (the payload is the caller's to append).
void encode_request_header(std::vector<std::byte>& out, const Request& req, bool extended);
// The header's size, and the header written at `out` (that many bytes).
inline std::size_t request_header_bytes(bool extended) { return extended ? 32 : 28; }
void encode_request_header(std::byte* out, const Request& req, bool extended);

// ---- client -> server ---------------------------------------------------------------------
class ClientStreamDecoder {
 public:
  struct Event {
    enum class Kind : std::uint8_t { client_flags, option, request_header, request_complete, error } kind;
    std::uint32_t value = 0;       // client flags, or option number
    std::vector<std::byte> data;   // option data
    Request request;               // request_header: no payload yet; request_complete: with payload
    std::string error;
  };
  // Bytes that follow a GO/EXPORT_NAME wait until the owner tells the outcome.
  void feed(std::span<const std::byte> bytes, std::vector<Event>& out);
  void enter_transmission(bool extended, std::vector<Event>& out);
  void resume_options(std::vector<Event>& out);
  // STARTTLS also waits for its outcome: refused -> resume_options(); accepted -> the
  // server's TLS layer took `early` bytes already sent after it (core's action::StartTls),
  // which are dropped here, and options resume inside TLS.
  void tls_started(std::size_t early, std::vector<Event>& out);
  bool in_transmission() const { return state_ == State::request_header || state_ == State::payload; }
  // After NBD_CMD_DISC the client MUST NOT send anything more (the server stops reading at
  // DISC): later bytes are ignored, not decoded into requests nor buffered.
  bool ended() const { return state_ == State::ended; }

 private:
  enum class State : std::uint8_t { client_flags, option_header, option_data, awaiting_outcome, request_header, payload, ended, broken };
  void run(std::vector<Event>& out);
  void use_buffer() {
    src_ = buf_.data();
    src_size_ = buf_.size();
  }
  // Undecoded bytes: run() decodes src_[pos_..src_size_), which is buf_ or, during a feed()
  // with nothing buffered, the caller's bytes (one copy fewer; only a tail is kept in buf_).
  std::vector<std::byte> buf_;
  const std::byte* src_ = nullptr;
  std::size_t src_size_ = 0;
  std::size_t pos_ = 0;
  State state_ = State::client_flags;
  bool extended_ = false;
  std::uint32_t option_ = 0;
  std::uint64_t need_ = 0;
  Request current_;
};

// ---- server -> client ---------------------------------------------------------------------
// Outcome of one request, assembled from its reply (simple, or every chunk up to DONE).
// A successful READ's data is kept as the runs the server sent (OFFSET_DATA / OFFSET_HOLE
// chunks, or the one simple reply), not as a buffer of the requested length: nothing is
// allocated for a READ before its data arrives (a wire length field alone never sizes an
// allocation), and the read oracle compares whole runs.
// `runs` and `bytes` view the decoder's storage for this request: valid until the decoder's
// next feed() (the storage is reused by a later request, so a reply costs no allocation).
struct ReplyDone {
  struct Run {
    std::uint64_t offset = 0;      // relative to the request's offset
    std::uint64_t length = 0;
    std::uint64_t pos = 0;         // data run: index of its first byte in `bytes`
    bool hole = false;             // OFFSET_HOLE: reads as zeroes, no bytes stored
  };
  Request request;                 // as sent (payload dropped)
  std::uint32_t error = 0;         // 0, or the first error seen
  std::span<const Run> runs;       // READ success: disjoint, covering the request, in arrival order
  std::span<const std::byte> bytes;  // the data runs' bytes, concatenated
  std::uint32_t chunks = 0;
};

class ServerStreamDecoder {
 public:
  struct Event {
    enum class Kind : std::uint8_t { greeting, option_reply, export_block, reply_done, error } kind;
    std::uint32_t option = 0;      // option_reply: which option; greeting: handshake flags
    std::uint32_t type = 0;        // option_reply: NBD_REP_*
    bool final_reply = false;      // option_reply: ends this option
    std::vector<std::byte> data;   // option_reply data
    std::uint64_t size = 0;        // export_block / GO's NBD_INFO_EXPORT
    std::uint16_t eflags = 0;
    ReplyDone reply;
    std::string error;
  };
  // The client's side of the conversation, in the order the client sent it.
  void client_flags(std::uint32_t flags) { client_flags_ = flags; }
  // A client whose TLS layer (simulated) receives `bytes` of server handshake right after a
  // STARTTLS ACK: they are dropped, not decoded. The checker (which sees only core's Sends)
  // leaves it 0.
  void set_tls_hello_bytes(std::size_t bytes) { tls_hello_bytes_ = bytes; }
  // A reader that only needs each reply's outcome (a simulated client): READ data is checked
  // for framing and coverage as always but not kept (ReplyDone::bytes stays empty), nor is
  // an option reply's data (Event::data stays empty; it is checked as always).
  void keep_read_data(bool keep) { keep_read_data_ = keep; }
  void option_sent(std::uint32_t option, std::span<const std::byte> data);
  void request_sent(const Request& req);  // DISC too (so a reply to it is caught)
  void feed(std::span<const std::byte> bytes, std::vector<Event>& out);

  bool in_transmission() const { return state_ == State::transmission || state_ == State::read_data; }
  bool structured() const { return structured_; }
  bool extended() const { return extended_; }
  std::uint16_t eflags() const { return eflags_; }
  std::uint64_t export_size() const { return export_size_; }
  bool broken() const { return state_ == State::broken; }
  std::size_t outstanding() const { return outstanding_; }
  bool mid_frame() const { return pos_ < buf_.size() || state_ == State::read_data; }
  bool meta_selected() const { return !meta_ids_.empty(); }
  // Largest BLOCK_STATUS chunk payload seen so far (bytes a server had to buffer for it).
  std::uint64_t status_payload_max() const { return status_payload_max_; }
  // Requests sent and not yet completely answered (DISC excluded).
  bool has_outstanding(std::uint64_t cookie) const {
    for (const Slot& s : slot_)
      if (s.state == SlotState::outstanding && s.cookie == cookie) return true;
    return false;
  }

 private:
  // read_data: a READ reply's data (a simple reply's, or an OFFSET_DATA chunk's after its
  // offset) is taken as it arrives instead of being buffered whole first.
  enum class State : std::uint8_t { greeting, options, export_block, transmission, read_data, broken };
  // One request sent and not yet completely answered. The slots are reused (their vectors
  // keep their capacity): a slot completed during a feed() is free again at the next one, so
  // the spans of its ReplyDone stay valid meanwhile.
  struct Pending {
    Request req;                   // payload never stored
    std::uint32_t error = 0;
    std::uint32_t chunks = 0;
    bool any_error = false;
    bool none_seen = false;
    std::uint32_t content_chunks = 0;
    std::uint32_t status_chunks = 0;
    std::vector<ReplyDone::Run> runs;
    std::vector<std::byte> bytes;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> covered;  // [begin, end) relative
    std::vector<std::uint64_t> error_offsets;
  };
  struct OptionInProgress {
    std::uint32_t option = 0;
    bool info_export_seen = false;
    std::vector<std::uint32_t> meta_ids;
    std::uint64_t size = 0;
    std::uint16_t eflags = 0;
  };
  bool fail(std::vector<Event>& out, std::string why);
  bool step(std::vector<Event>& out);  // false: need more bytes
  bool option_reply(std::vector<Event>& out, std::uint32_t option, std::uint32_t type, std::span<const std::byte> data);
  // streamed: an OFFSET_DATA chunk whose payload holds only its offset so far; that many
  // data bytes follow (State::read_data), then chunk_end().
  bool chunk(std::vector<Event>& out, std::uint64_t cookie, std::uint16_t flags, std::uint16_t type,
             std::uint64_t offset_field, bool has_offset_field, std::span<const std::byte> payload,
             std::uint64_t streamed = 0);
  bool chunk_end(std::vector<Event>& out, Pending& pend, bool done);
  bool read_data(std::vector<Event>& out);
  bool complete(std::vector<Event>& out, Pending& pend);
  bool cover(Pending& p, std::uint64_t begin, std::uint64_t end, std::vector<Event>& out);
  Pending* find(std::uint64_t cookie);  // the outstanding request with this cookie

  State state_ = State::greeting;
  // Undecoded bytes: step() decodes src_[pos_..src_size_), which is buf_ or, during a feed()
  // with nothing buffered, the caller's bytes (one copy fewer; only a tail is kept in buf_).
  std::vector<std::byte> buf_;
  const std::byte* src_ = nullptr;
  std::size_t src_size_ = 0;
  std::size_t pos_ = 0;
  std::uint16_t handshake_flags_ = 0;
  std::uint32_t client_flags_ = 0;
  Fifo<std::uint32_t> options_;              // sent, not yet finally answered
  Fifo<std::vector<std::byte>> option_data_;
  std::optional<OptionInProgress> current_;
  bool structured_ = false, extended_ = false;
  bool structured_acked_ = false;
  std::uint16_t eflags_ = 0;
  std::uint64_t export_size_ = 0;
  std::vector<std::uint32_t> meta_ids_;       // selected by the last SET_META_CONTEXT
  std::string meta_export_;                   // ...for this export name (GO keeps it only for the same name)
  std::vector<std::uint32_t> pending_meta_;   // replies of the SET in progress
  // Slots, searched linearly (a client pipelines a few dozen requests at most) through the
  // compact slot_ index: slot_[i] is pending_[i]'s cookie and state.
  enum class SlotState : std::uint8_t { free, outstanding, done };
  struct Slot {
    std::uint64_t cookie = 0;
    SlotState state = SlotState::free;
  };
  std::vector<Slot> slot_;
  std::vector<Pending> pending_;
  std::size_t outstanding_ = 0;
  std::map<std::uint64_t, std::uint32_t> disc_cookies_;
  std::uint64_t status_payload_max_ = 0;
  std::size_t tls_hello_bytes_ = 0;
  bool keep_read_data_ = true;
  std::size_t skip_ = 0;  // bytes of the TLS handshake still to drop
  // State::read_data: whose data (index in pending_), how much is still to come, and what
  // ends it (a simple reply completes; a chunk goes on to chunk_end with its DONE flag)
  std::size_t data_slot_ = 0;
  std::uint64_t data_left_ = 0;
  bool data_chunk_ = false, data_chunk_done_ = false;
};

}  // namespace nbdd::sim::wire
