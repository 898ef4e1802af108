// sim::InvariantChecker: every INV-... of docs/invariants.md, written once.
//
// It observes only what a driver can see: the Inputs fed to each core::Connection, the
// Actions drained from it, the server-level events and ServerActions, and (optionally) the
// Status after each step. It never reads core internals, so the simulator, the fuzz harness
// (fuzz/fuzz_connection.cpp) and a recorded daemon trace can all use it. Protocol bytes are
// decoded by sim/wire.hpp (independent of core's encoder): client->server from BytesReceived,
// server->client from Send actions.
//
// Call order for one connection: on_connection, then for each step on_input (before
// handle()), on_action for every action next_action() returned, on_status (optional).
// The first violation is kept (violation()); later ones are counted only.
#pragma once
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/action.hpp"
#include "core/connection.hpp"
#include "core/export_info.hpp"
#include "core/input.hpp"
#include "core/limits.hpp"
#include "core/server_state.hpp"
#include "core/thread_model.hpp"
#include "sim/marks.hpp"
#include "sim/wire.hpp"

namespace nbdd::sim {

struct Violation {
  std::string invariant;  // INV-...
  core::ConnectionId conn = 0;
  core::Instant at;
  std::string message;
};

struct CheckerConfig {
  core::Limits limits;
  // The server's -r (ConnectionConfig::read_only): every export is announced read-only.
  bool read_only = false;
  // The plugin serves every export name from one store (the memory plugin): one read
  // model for all names instead of one per canonical export name.
  bool one_disk_for_all_names = false;
  core::ThreadModel thread_model = core::ThreadModel::parallel;
  // Check read data against the disk oracle (off when the plugin is not a plain disk).
  bool check_disk = true;
  // The driver serves a graceful shutdown (false: only connection-level checks).
  bool server_level = true;
  // The server's --tls mode (ConnectionConfig::tls).
  core::TlsMode tls = core::TlsMode::off;
  // INV-GRACE-DEADLINE's allowance beyond Limits::grace_period: virtual time is exact; a real
  // daemon's timers (nbdd-checked) fire late on a loaded machine.
  core::Duration grace_slack = core::Duration::from_ms(10);
  // false: every observation is ignored (nothing is checked, no violation, no marks) — the
  // simulator's determinism replay, which only compares the trace hash of a world whose
  // invariants the first run already checked.
  bool enabled = true;
};

class InvariantChecker {
 public:
  explicit InvariantChecker(CheckerConfig config);
  ~InvariantChecker();

  // ---- connection level
  void on_connection(core::ConnectionId id, core::Instant now);
  void on_input(core::ConnectionId id, core::Instant now, const core::Input& in);
  void on_action(core::ConnectionId id, core::Instant now, const core::Action& act);
  void on_status(core::ConnectionId id, core::Instant now, core::Status status);

  // ---- server level (ServerState)
  void on_shutdown_requested(core::Instant now);            // before ServerState::shutdown_requested()
  void on_admit(core::Instant now, bool admitted);          // result of ServerState::admit()
  void on_server_action(core::Instant now, const core::ServerAction& act);

  // ---- the thread-model gate (core::CallGate), as the driver sees it: what each call
  // returned. A driver that does not report them leaves INV-GATE-HANDED-ON unjudged.
  enum class GateCall : std::uint8_t { try_acquire, release, cancel };
  void on_gate(core::ConnectionId id, core::Instant now, GateCall call, bool result);

  // ---- time: call whenever the virtual clock moves (grace deadlines are checked here).
  // Inline: the simulator calls it before every event, and usually nothing can be due.
  void on_time(core::Instant now) {
    if (idle_conns_ == 0 && now.ns < time_checks_from_) return;
    time_passed(now);
  }
  // ---- end of run: quiescent = the driver believes everything has ended
  void at_end(core::Instant now, bool quiescent);

  const std::optional<Violation>& violation() const { return first_; }
  std::uint64_t violations() const { return count_; }
  Marks& marks() { return marks_; }
  std::size_t live_connections() const;

  // For the liveness report.
  std::string pending_summary() const;

  struct Conn;
  struct Disk;

 private:
  void fail(const char* inv, core::ConnectionId id, core::Instant now, std::string message);
  Conn& conn(core::ConnectionId id) {  // inline: every observation looks its connection up
    return last_conn_ && last_id_ == id ? *last_conn_ : find_conn(id);
  }
  Conn& find_conn(core::ConnectionId id);
  // What every per-connection observation checks first; `kind` is "input" or "action".
  template <typename Observed>
  Conn& observe(core::ConnectionId id, core::Instant now, const char* kind, const Observed& what);
  // replies.cpp
  void client_bytes(Conn& c, core::Instant now, std::span<const std::byte> bytes);
  void server_bytes(Conn& c, core::Instant now, std::span<const std::byte> bytes);
  void on_reply(Conn& c, core::Instant now, const wire::ReplyDone& done);
  void on_option_reply(Conn& c, core::Instant now, const wire::ServerStreamDecoder::Event& ev);
  // shutdown.cpp
  void shutdown_input(Conn& c, core::Instant now, const core::Input& in);
  void shutdown_action(Conn& c, core::Instant now, const core::Action& act);
  void check_pending_force(Conn& c, core::Instant now);
  void process_client_events(Conn& c, core::Instant now, std::vector<wire::ClientStreamDecoder::Event>& evs);
  // tls.cpp
  bool tls_required_now(const Conn& c) const;
  void tls_input(Conn& c, core::Instant now, const core::Input& in);
  void tls_action(Conn& c, core::Instant now, const core::Action& act);
  void tls_option_reply(Conn& c, core::Instant now, std::uint32_t option, std::uint32_t type, bool final_reply);
  void tls_call(Conn& c, core::Instant now, const core::action::CallPlugin& cp);
  void check_pending_tls_close(Conn& c, core::Instant now);
  // liveness.cpp
  void update_idle(Conn& c, core::Instant now);
  // gate.cpp
  void gate_opened(Conn& c);
  void check_gate_handed_on(core::Instant now);
  // lifecycle.cpp
  void lifecycle_input(Conn& c, core::Instant now, const core::Input& in);
  void lifecycle_action(Conn& c, core::Instant now, const core::Action& act);
  void lifecycle_call(Conn& c, core::Instant now, const core::action::CallPlugin& cp);
  void thread_model_call(Conn& c, core::Instant now, const core::PluginCall& call);
  // handshake.cpp
  void handshake_shutdown(Conn& c, core::Instant now);
  void handshake_call(Conn& c, core::Instant now, const core::action::CallPlugin& cp);
  void handshake_done(Conn& c, core::Instant now, core::CallKind kind, std::int32_t err);
  void handshake_send(Conn& c, core::Instant now);
  void handshake_close(Conn& c, core::Instant now, const core::action::Close& close);
  void check_pending_refusal(Conn& c, core::Instant now);
  void check_option_answer(Conn& c, core::Instant now, const wire::ServerStreamDecoder::Event& ev);
  void check_export_block(Conn& c, core::Instant now, const wire::ServerStreamDecoder::Event& ev);
  void served_export(Conn& c);
  bool match_call(Conn& c, core::Instant now, const core::PluginCall& call, bool& after_graceful, std::uint64_t& key);
  // validity.cpp
  void classify_request(const Conn& c, const wire::Request& rq, std::uint8_t& must, std::uint8_t& may) const;
  void check_reply_validity(Conn& c, core::Instant now, const wire::Request& rq, std::uint8_t must, std::uint8_t may,
                            bool called, const wire::ReplyDone& done);
  void classify_option(Conn& c, std::size_t length);  // the newest option
  void check_option_size_answer(Conn& c, core::Instant now, std::uint32_t type);  // the oldest
  // durability.cpp
  void disk_write(Conn& c, wire::Request& req);  // takes req.payload
  void disk_write_done(Conn& c, const wire::Request& req, bool ok);
  void disk_read_started(Conn& c, const wire::Request& req);
  void disk_read_done(Conn& c, core::Instant now, const wire::ReplyDone& done);
  Disk& disk_for(Conn& c);

  CheckerConfig config_;
  std::map<core::ConnectionId, std::unique_ptr<Conn>> conns_;
  std::map<std::string, std::unique_ptr<Disk>> disks_;
  std::map<std::string, std::uint64_t> sizes_seen_;  // canonical name -> size the last open reported
  std::uint64_t tick_ = 0;  // one per observation; the total order of everything seen
  std::size_t idle_conns_ = 0;  // connections with idle_since set (on_time has work)
  // on_time with no idle connection has work only from here on (INV-SHUTDOWN-BOUNDED's
  // limit once shutdown was requested; never before, or once the check is settled)
  std::uint64_t time_checks_from_ = ~0ull;
  void time_passed(core::Instant now);
  // conn(): the last connection looked up, and every one by id (ids are small: 1, 2, 3...
  // from ServerState; larger ones only in the map). Connections are never removed.
  core::ConnectionId last_id_ = 0;
  Conn* last_conn_ = nullptr;
  static constexpr core::ConnectionId conn_index_max = 4096;
  std::vector<Conn*> conn_index_;
  // decoder events of client_bytes / server_bytes, reused (neither is re-entered)
  std::vector<wire::ClientStreamDecoder::Event> client_events_;
  std::vector<wire::ServerStreamDecoder::Event> server_events_;
  Marks marks_;
  std::optional<Violation> first_;
  std::uint64_t count_ = 0;

  // server level
  bool shutdown_requested_ = false;
  int shutdown_requests_ = 0;
  bool unload_emitted_ = false, exit_emitted_ = false, stop_accepting_ = false;
  std::set<core::ConnectionId> finished_;
  // EndConnection owed after a shutdown request: id -> force (checked at the next observation)
  std::map<core::ConnectionId, bool> owed_end_;
  void check_owed_end(core::Instant now);
  // INV-SHUTDOWN-BOUNDED (liveness.cpp): the first request's time; whether any
  // EndConnection{force=true} was seen (a second request, or the grace deadline)
  std::optional<core::Instant> shutdown_at_;
  bool server_forced_ = false;
  bool shutdown_bound_reported_ = false;
  void check_shutdown_bounded(core::Instant now);
  // thread model, across connections
  std::uint32_t running_all_ = 0;
  std::optional<core::ConnectionId> exclusive_holder_;  // serialize_connections
  // the gate as the driver granted it (gate.cpp)
  bool gate_observed_ = false;
  std::optional<core::ConnectionId> gate_holder_;
  std::uint32_t gate_waiters_ = 0;
};

}  // namespace nbdd::sim
