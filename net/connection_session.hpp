// One client connection: owns its core::Connection and its Stream, and runs only on its
// own strand (Beast's shape: shared_from_this, do_x/on_x). It is a pump (architecture §5.2):
// feed one Input, execute every Action in order, read only while wants_read(), arm the
// timer at deadline(). The session lives until action::Finished, so buffers lent to running
// plugin calls stay valid even after a forced close.
#pragma once
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/connection.hpp"
#include "net/stream.hpp"
#include "plugins/plugin_host.hpp"

namespace nbdd::net {

class WorkerPool;
class TlsContext;  // net/tls_context.hpp
class SessionTap;  // net/session_tap.hpp
class UringLoop;   // net/uring_loop.hpp

// What a session needs from the server. Outlives every session.
struct SessionContext {
  WorkerPool* workers;  // set before the first session runs (the pool starts in Server::run)
  plugin::PluginHost& host;
  std::function<void(core::ConnectionId)> on_finished;  // called once, on the session's strand
  bool inline_data_calls = false;  // the plugin is nonblocking(): data calls run on the strand
  bool lend_reads = false;         // ... and lends reads (pread_lend): see loan_bytes_min
  TlsContext* tls = nullptr;       // credentials for STARTTLS (null when --tls=off)
};

// Inline preads of at least this size ask the plugin to lend its bytes (pread_lend) and
// send them from where they are, so the payload is copied once (by the kernel) instead of
// twice. At 1 MiB over TCP that saved a third of the server's CPU per GiB (bench/README.md,
// fix 10). Small reads keep the copy: a few KiB cost well under a microsecond to copy, while
// a loan takes a page reference under the store's lock and gives it back later.
inline constexpr std::uint64_t loan_bytes_min = 32 * 1024;

// A write payload with at least this much still to come is read over TCP with a receive
// low-water mark of this size (Stream::set_receive_low_water): the kernel wakes the I/O
// thread once that much has arrived instead of for every segment, and the thread blocks for
// it instead of spinning unless another of its reads is not a bulk one (read_wait_begin).
// Never above what is still to come, or the read would wait for bytes the client has no
// reason to send. At 1 MiB TCP writes this took the server's CPU per GiB from 0.31-0.39 s
// to 0.20-0.24 s (bench/README.md, fix 12).
inline constexpr std::size_t bulk_receive_bytes = 128 * 1024;

// A nonblocking plugin's pread or pwrite above this size still goes to the worker pool, so
// one huge request (up to the 32 MiB maximum) does not hold up the other connections of its
// I/O shard for milliseconds. Below it, copying on the strand costs less CPU per GiB than
// two thread hand-offs, also at 1 MiB (bench/README.md, fix 5).
inline constexpr std::uint64_t inline_copy_bytes_max = 4 * 1024 * 1024;

// Whether a call runs on the session's strand (true) or on the worker pool.
bool runs_inline(bool nonblocking_plugin, const core::action::CallPlugin& call);

// The plugin's disconnect(force) during a connected callback: the HostHooks::disconnect of
// the daemon. It is noted on the calling thread, which is running that connection's call,
// and the session feeds it to the core with the call's result, just before its PluginDone
// (as the simulator does), whether the call ran inline or on a worker. So a forced
// disconnect from a pread always wins over that pread's reply, by design, not by timing.
void note_plugin_disconnect(core::ConnectionId id, bool force);

class ConnectionSession : public std::enable_shared_from_this<ConnectionSession> {
 public:
  ConnectionSession(const Strand& strand, std::unique_ptr<Stream> stream,
                    const core::ConnectionConfig& config, SessionContext& context);
  ~ConnectionSession();

  // Starts the pump: runs the plugin's preconnect, then sends the greeting. Call once, from
  // any thread.
  void start();
  // Feed an input from another thread (posted to the strand). No BytesReceived.
  void post_input(const core::Input& input);
  core::ConnectionId id() const { return id_; }

 private:
  void feed(const core::Input& input);        // feed_one, then kick
  void feed_one(const core::Input& input);    // handle() + execute every action
  void drain_actions();
  void kick();                                // start writes/reads/close/timer as needed
  void execute(core::Action& action);
  void do_read();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  void do_write();
  void on_write(const boost::system::error_code& ec, std::size_t sends);
  // One write gathers every Send that is ready, up to the kernel's limit of pieces per
  // sendmsg (IOV_MAX): at depth 16 that is every reply of a turn in one system call.
  static constexpr std::size_t gather_pieces_max = 1024;
  void do_call(const core::action::CallPlugin& call);
  // A finished call: its result and what the plugin asked for during it.
  struct Completion {
    core::input::PluginDone done;
    std::uint8_t disconnect = 0;  // 0 none, 1 disconnect(false), 2 disconnect(true)
  };
  Completion completed(core::SlotId slot, int err);  // after the call, on its thread
  void feed_completion(const Completion& c);        // strand: the disconnect, then PluginDone
  void queue_inline(const Completion& c);           // strand: the same, fed by drain_actions
  void on_worker_done(const Completion& c);  // on a worker thread
  void feed_worker_done();                          // on the strand
  void do_close();
  // action::StartTls, once every earlier Send is written: wraps stream_ in TLS, runs the
  // server handshake (with `early`: bytes the core had already received after STARTTLS)
  // and feeds TlsDone. In net/connection_session_tls.cpp.
  void do_start_tls(std::span<const std::byte> early);
  int run_call(const core::PluginCall& call);  // the plugin call, its error logged
  int logged(int err);                          // logs a failed call's error, returns it
  void log_call(const core::PluginCall& call, int err) const;  // -v: the call and its result
  void handle(const core::Input& input);       // conn_.handle(), logged with -v
  void arm_timer();
  void on_timer(const boost::system::error_code& ec, std::uint64_t generation);
  void log(const char* direction, const std::string& text) const;

  Strand strand_;
  std::unique_ptr<Stream> stream_;
  core::ConnectionId id_;
  core::Connection conn_;
  plugin::ConnectionPluginState plugin_state_;
  SessionContext& context_;
  SessionTap* tap_;  // nbdd-checked's checker (net/session_tap.hpp); null in nbdd
  // The shard's ring, or null on epoll: posts from other threads wake it (post_and_wake).
  UringLoop* loop_;
  boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                    boost::asio::wait_traits<std::chrono::steady_clock>, Strand>
      timer_;
  std::optional<core::Instant> timer_at_;
  std::uint64_t timer_generation_ = 0;

  // A pread answered by a loan: the pieces stand in for the slot's buffer, which the core
  // sends as the reply's payload, from the call until that Send is written or dropped.
  struct SlotLoan {
    plugin::ReadLoan loan;
    std::span<std::byte> buffer;  // the pread buffer (never filled while the loan is held)
  };
  struct QueuedSend {
    core::action::Send send;
    SlotLoan* loan = nullptr;  // the payload is this loan's pieces
  };
  int run_lent_read(const core::action::CallPlugin& call);
  SlotLoan* claim_loan(std::span<const std::byte> payload);
  void give_back(SlotLoan& held);
  void give_back_all();
  void drop_unsent();

  std::deque<QueuedSend> unsent_;   // emitted, not yet handed to the stream
  std::vector<boost::asio::const_buffer> gather_;  // the write in progress
  bool writing_ = false;
  bool reading_ = false;
  bool read_into_window_ = false;
  bool bulk_wait_ = false;  // the read in progress is a bulk one (read_wait_begin)
  std::span<std::byte> read_target_;
  std::vector<std::byte> fallback_;  // only when read_window() is empty
  std::optional<core::CloseMode> close_mode_;
  std::optional<std::span<const std::byte>> tls_pending_;  // StartTls waiting for the writes before it
  bool stream_closed_ = false;
  bool peer_closed_ = false;   // PeerClosed fed (the read side is over)
  bool send_failed_ = false;   // SendFailed fed (the write side is over)
  bool finished_ = false;
  // Completions of data calls run inline on the strand, fed once the actions that
  // started them are drained (the core is never re-entered from next_action()).
  std::vector<core::Input> inline_inputs_;  // [inline_head_, end) not yet fed
  std::size_t inline_head_ = 0;
  // Completions of calls run on workers. A worker posts to the strand only when it finds the
  // list empty, so calls that finish together cost one hand-off (one wake-up), not one each.
  std::mutex worker_done_mutex_;
  std::vector<Completion> worker_done_;   // guarded by the mutex
  std::vector<Completion> worker_batch_;  // strand only
  // Zero-copy reads, by slot index, created on first use. Strand only: only inline calls lend.
  std::vector<std::unique_ptr<SlotLoan>> loans_;
  std::size_t loans_held_ = 0;
};

}  // namespace nbdd::net
