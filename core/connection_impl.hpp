// Private to core/: the state behind core::Connection, split over four files:
//   connection.cpp    inputs, the byte reader, status transitions, how a connection ends
//   handshake.cpp     option negotiation (fixed newstyle)
//   lifecycle.cpp     the plugin's lifecycle calls: preconnect, list_exports, open, close
//   transmission.cpp  request slots, plugin calls (thread-model gating), replies
// Orthogonal machines (h11's lesson): Reader (what bytes we expect next), Status
// (active -> draining -> closing -> dead, only forward), HandleState (the plugin handle,
// set_handle) and per-slot SlotState.
#pragma once
#include <array>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/connection.hpp"
#include "core/reply_builder.hpp"
#include "core/request_parser.hpp"
#include "core/validation.hpp"
#include "core/vector_fifo.hpp"

namespace nbdd::core {

enum class Reader : std::uint8_t {
  client_flags,     // 4 bytes after the greeting
  option_header,    // IHAVEOPT, option, length
  option_data,      // buffer the whole option payload (bounded)
  option_discard,   // oversized option: drop it, then NBD_REP_ERR_TOO_BIG
  awaiting_plugin,  // preconnect, LIST, INFO/GO/EXPORT_NAME wait for their plugin call
  awaiting_tls,     // STARTTLS acknowledged: the driver runs the TLS handshake (TlsDone)
  request_header,   // 28 or 32 bytes
  write_payload,    // WRITE data straight into its slot buffer
  payload_discard,  // payload of a refused request: consumed to keep framing
  stopped,          // read nothing more (DISC, EOF, close)
};
const char* to_string(Reader reader);

enum class SlotState : std::uint8_t {
  free,
  receiving,  // header parsed, WRITE payload still arriving (into the buffer, or
              // discarded when the request is refused: its reply waits for the last byte)
  queued,     // accepted; waits for the thread model to allow its plugin call
  running,    // CallPlugin emitted, PluginDone not yet received
  replying,   // reply Send emitted, SendDone not yet received
};

struct Slot {
  SlotState state = SlotState::free;
  ParsedRequest req;
  std::uint64_t payload_filled = 0;
  nbd::Error refused = nbd::Error::ok;  // receiving a refused request's payload: its error
  std::unique_ptr<std::byte[]> buffer;  // pooled: grows, reused, released only under budget pressure
  std::size_t capacity = 0;
  ReplyHeader header{};
  std::vector<Extent> extents;  // filled by the driver during an extents call; reused
};

enum class GateState : std::uint8_t { none, waiting, held };

// A plugin call waiting for the thread model to allow it. Lifecycle calls (is_lifecycle)
// run on lifecycle_slot; data calls on `slot`.
struct QueuedCall {
  CallKind kind;
  std::uint32_t slot;
  bool lifecycle() const { return is_lifecycle(kind); }
};

// The option whose plugin call the reader waits for (LIST, INFO, GO, EXPORT_NAME).
struct PendingOption {
  nbd::Opt option = nbd::Opt::go;
  bool wants_name = false;
  bool wants_description = false;
  bool wants_block_size = false;
};

// A Send emitted and not yet acknowledged. Sends complete in emission order.
struct UnackedSend {
  bool from_slot;
  std::uint32_t slot;
};

class Connection::Impl {
 public:
  explicit Impl(const ConnectionConfig& config);

  void handle(Instant now, const Input& input);
  std::optional<Action> next_action();
  std::optional<Instant> deadline() const;
  bool wants_read() const;
  std::span<std::byte> read_window();
  std::size_t handshake_bytes_held() const;

  ConnectionConfig config_;
  const Limits& limits_;
  Status status_ = Status::active;
  Phase phase_ = Phase::handshake;
  ConnectionStats stats_;
  HandleState handle_ = HandleState::none;

 private:
  // ---- connection.cpp: inputs, reader, endings
  void dispatch(const Input& input);
  void on_bytes(std::span<const std::byte> bytes);
  void on_plugin_done(SlotId slot, int err);
  void on_deadline();
  void run_reader();
  bool reader_step();
  std::size_t staged() const { return stage_end_ - stage_begin_; }
  std::span<const std::byte> staged_span(std::size_t n) const { return {stage_.get() + stage_begin_, n}; }
  void consume(std::size_t n) { stage_begin_ += n; }
  bool stage_append(std::span<const std::byte> bytes);
  void stage_make_room(std::size_t want);
  std::size_t contiguous_bytes_needed() const;
  void set_status(Status next);
  void begin_draining();
  void begin_closing(EndReason why);  // stop reading; finish in-flight; then close
  void abort(EndReason why);          // Close{abort} now; no more replies
  void check_end();
  void update_idle();
  std::uint32_t work_in_flight() const;
  void emit(Action action);
  void emit_send(std::span<const std::byte> header, std::span<const std::byte> payload, UnackedSend who);
  void emit_handshake_bytes(std::vector<std::byte> bytes);
  // Handshake output built in place: handshake_buffer() is an empty buffer (a spare one,
  // capacity kept from an earlier Send) that emit_handshake_buffer() sends. Nothing else may
  // be emitted in between. No allocation per option reply once a connection has sent a few.
  std::vector<std::byte>& handshake_buffer();
  void emit_handshake_buffer();
  void trim_handshake_spares();  // once every handshake Send is acknowledged
  void on_send_done();
  void note_end(EndReason why);

  // ---- handshake.cpp
  void on_client_flags(std::span<const std::byte> data);
  void on_option_header(std::span<const std::byte> data);
  void on_option(std::span<const std::byte> data);
  void on_option_while_draining(std::span<const std::byte> data);
  void option_reply(nbd::Rep type, std::span<const std::byte> data = {});
  void option_error(nbd::Rep type, std::string_view message);
  void refuse_shutting_down();
  void handle_export_name(std::span<const std::byte> data);
  void handle_list(std::span<const std::byte> data);
  void handle_info_or_go(std::span<const std::byte> data, bool go);
  void handle_meta_context(std::span<const std::byte> data, bool set);
  void handle_flag_option(std::span<const std::byte> data);
  void on_option_before_tls(std::span<const std::byte> data);
  void handle_starttls(std::span<const std::byte> data);
  void on_tls_done(bool ok);
  bool tls_required_now() const { return config_.tls == TlsMode::require && !tls_up_; }
  std::uint16_t offered_handshake_flags() const {
    return static_cast<std::uint16_t>((nbd::flag_fixed_newstyle | nbd::flag_no_zeroes) & config_.handshake_flags_mask);
  }
  void send_list();
  void answer_opened();
  void enter_transmission();
  std::uint16_t export_flags() const;
  void append_info_replies(std::vector<std::byte>& out) const;

  // ---- lifecycle.cpp
  void start_lifecycle(CallKind kind);
  void withdraw_pending_lifecycle();
  void on_lifecycle_done(int err);
  void on_preconnect_done(int err);
  void on_list_done(int err);
  void on_open_done(int err);
  void close_handle();
  void set_handle(HandleState next);
  bool disconnect_effective() const;

  // ---- transmission.cpp
  bool try_parse_request();
  bool refuse_request(std::uint32_t slot_index, const ParsedRequest& req, nbd::Error err, std::uint64_t payload);
  void accept_request(std::uint32_t slot_index);
  void on_payload_bytes();
  void on_discard_bytes(std::size_t n);
  void reply_error(std::uint32_t slot_index, nbd::Error err);
  void on_data_done(std::uint32_t slot_index, int err);
  void reply_success(std::uint32_t slot_index);
  bool encode_block_status_reply(std::uint32_t slot_index);
  std::optional<std::uint32_t> pick_slot(std::uint64_t buffer_bytes);
  bool ensure_buffer(Slot& s, std::uint64_t bytes, bool over_budget_ok);
  // A slot is free, or another may still be built (in_flight_max bounds both).
  bool slot_available() const { return !free_slots_.empty() || slots_.size() < limits_.in_flight_max; }
  void take_slot(std::uint32_t slot_index);
  void free_slot(std::uint32_t slot_index);
  void start_calls();
  bool may_start(const QueuedCall& call);
  void emit_call(const QueuedCall& call);
  static CallKind data_call_kind(const ParsedRequest& req);
  PluginCall data_call(CallKind kind, std::uint32_t slot_index);
  void release_gate_if_idle();
  void drop_unstarted_work();
  bool gate_required() const;
  void gate_release();
  void slot_state(Slot& s, SlotState next);

  // time
  Instant now_{};
  std::optional<Instant> idle_since_;  // draining and no work in flight since then
  std::optional<Instant> close_at_;    // Close{flush_then_close} emitted at

  // reader and staging
  Reader reader_ = Reader::client_flags;
  std::unique_ptr<std::byte[]> stage_;
  std::size_t stage_cap_ = 0;
  std::size_t stage_begin_ = 0;
  std::size_t stage_end_ = 0;
  std::span<std::byte> window_;  // last read_window() handed out, until BytesReceived
  bool window_is_slot_ = false;

  // handshake
  bool no_zeroes_ = false;
  bool structured_ = false;
  bool extended_ = false;
  std::uint32_t option_ = 0;
  std::uint32_t option_len_ = 0;
  std::uint64_t discard_left_ = 0;
  bool meta_selected_ = false;
  bool tls_up_ = false;               // TlsDone{ok} after STARTTLS: everything travels in TLS
  std::string meta_export_;           // the export the last SET_META_CONTEXT named
  PendingOption pending_;       // the option whose plugin call runs (awaiting_plugin)
  std::string requested_name_;  // the export name of the last INFO/GO/EXPORT_NAME, as sent
  ExportInfo export_;           // filled by the open call; the GO'd export in transmission
  std::vector<ExportEntry> listing_;  // filled by the list_exports call
  // Handshake bytes not yet acknowledged (SendDone): [hs_head_, hs_used_) of hs_out_, in
  // order; entries past hs_used_ are spare buffers kept for their capacity. Growing hs_out_
  // moves the vectors, not their bytes, so the spans of Sends in flight stay valid.
  std::vector<std::vector<std::byte>> hs_out_;
  std::size_t hs_head_ = 0, hs_used_ = 0;
  static constexpr std::size_t handshake_spares_max = 4;
  static constexpr std::size_t handshake_spare_bytes_max = 16 * 1024;

  // transmission
  TransmissionContext tctx_;
  ReplyStyle style_ = ReplyStyle::simple;
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::uint64_t buffer_bytes_ = 0;  // sum of slot capacities
  std::uint32_t receiving_slot_ = 0;  // the slot of write_payload / payload_discard
  std::deque<QueuedCall> call_queue_;
  std::uint32_t running_data_calls_ = 0;
  bool lifecycle_running_ = false;
  CallKind lifecycle_kind_ = CallKind::open;
  GateState gate_ = GateState::none;
  std::uint32_t stale_gate_opened_ = 0;  // handovers that raced with our cancel
  bool blocked_on_budget_ = false;
  std::vector<WireExtent> wire_extents_;  // scratch, reused

  // output
  std::vector<Action> actions_;
  std::size_t actions_head_ = 0;
  VectorFifo<UnackedSend> unacked_;

  // ending
  bool close_emitted_ = false;  // a Close{flush_then_close} or Close{abort} went out
  bool aborted_ = false;        // Close{abort}: no reply will ever be sent again
  bool finished_ = false;
};

}  // namespace nbdd::core
