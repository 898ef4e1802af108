// sim::World: everything of one simulated run — clock, event queue, network, clients,
// server-side drivers around core::Connection, core::ServerState, the plugin (SimPlugin or
// the real memory plugin through plugin::PluginHost), the invariant checker, the trace.
// Single-threaded and deterministic: the same seed gives the same trace hash.
//
// The driver part (ServerConn) follows the contract at the top of core/connection.hpp:
// feed one Input, drain next_action() executing in order, SendDone per Send in order,
// PluginDone for every CallPlugin (also after Close), DeadlineReached at deadline(), read
// only while wants_read(), keep the Connection until action::Finished.
#pragma once
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/call_gate.hpp"
#include "core/connection.hpp"
#include "core/server_state.hpp"
#include "sim/event_queue.hpp"
#include "sim/driver_tap.hpp"
#include "sim/fault_profile.hpp"
#include "sim/invariants/checker.hpp"
#include "sim/marks.hpp"
#include "sim/network.hpp"
#include "sim/sim_client.hpp"
#include "sim/sim_plugin.hpp"
#include "sim/trace.hpp"

namespace nbdd::sim {

struct Step;  // scenario.hpp

// The simulated TLS handshake's messages (World::tls_step, SimClient): the client's hello
// after the STARTTLS ACK, the server's answer before TlsDone{true}.
inline constexpr std::size_t sim_tls_hello_bytes = 8;
inline constexpr std::byte sim_tls_client_hello[sim_tls_hello_bytes] = {
    std::byte{0x16}, std::byte{'C'}, std::byte{'H'}, std::byte{'E'}, std::byte{'L'}, std::byte{'L'}, std::byte{'O'}, std::byte{'!'}};
inline constexpr std::byte sim_tls_server_hello[sim_tls_hello_bytes] = {
    std::byte{0x16}, std::byte{'S'}, std::byte{'H'}, std::byte{'E'}, std::byte{'L'}, std::byte{'L'}, std::byte{'O'}, std::byte{'!'}};
class MemoryBackend;  // world_memory.cpp

enum class OutcomeKind : std::uint8_t { ok, correctness, liveness, crash, nondeterminism };
const char* to_string(OutcomeKind kind);
int exit_code(OutcomeKind kind);

struct Outcome {
  OutcomeKind kind = OutcomeKind::ok;
  std::optional<Violation> violation;
  std::string reason;            // liveness: what is still pending
  std::uint64_t trace_hash = 0;
  std::uint64_t trace_records = 0;
  std::uint64_t events = 0;
  std::uint64_t requests = 0;    // requests the clients sent
  std::uint64_t tape_used = 0;   // tape mode: words consumed, and draws past the end (answered 0)
  std::uint64_t tape_past_end = 0;
  core::Instant end{};
  Marks marks;
};

struct WorldOptions {
  bool full_trace = false;
  ChoiceTape* tape = nullptr;    // tape mode: every draw of the world comes from this tape
  bool scripted = false;         // scenario mode: clients and plugin wait for Steps
  bool hold_lifecycle = false;   // scenario mode: lifecycle calls wait for a Step too
  std::uint64_t max_events = 20'000'000;
  // The determinism replay (--check-determinism): the same world again for its trace hash
  // only — the invariant checker observes nothing and no trace tail is kept (the first run
  // checked the invariants; a replay that differs is reported by its hash).
  bool replay_only = false;
};

class World {
 public:
  World(const FaultProfile& profile, WorldOptions options);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  Outcome run();                                   // seed-driven swarm run
  Outcome run_scenario(const std::vector<Step>& steps);
  const Trace& trace_ref() const { return trace_; }

  // ---- used by clients and the network
  core::Instant now() const { return clock_.now(); }
  EventQueue& queue() { return queue_; }
  const Clock& clock() const { return clock_; }
  Trace& trace() { return trace_; }
  Marks& marks() { return marks_; }
  bool faults_active() const { return faults_active_; }
  void connect(SimClient& client);                 // TCP connect + accept
  // A simulated client found the server broken (default: what it received does not parse).
  void client_failure(std::uint32_t client, const std::string& what, const char* invariant = "INV-WIRE-PARSES");
  void note_request() { ++requests_; }
  InvariantChecker& checker() { return *checker_; }
  void set_driver_tap(DriverTap* tap) { tap_ = tap; }  // tests only (sim/driver_tap.hpp)

  struct ServerConn;
  struct HeldCall {
    core::ConnectionId id;
    core::SlotId slot;
    core::PluginCall call;
  };

 private:
  void setup();
  void feed(core::ConnectionId id, const core::Input& in);
  void feed_later(core::ConnectionId id, core::Input in);
  void drain(ServerConn& sc);
  void execute(ServerConn& sc, core::Action& act);
  void after_step(ServerConn& sc);      // after core ran: TLS layer, deadline, reading
  void after_delivery(ServerConn& sc);  // after bytes arrived: TLS layer, reading
  void arm_deadline(ServerConn& sc);
  void schedule_read(ServerConn& sc);
  bool wants_read(ServerConn& sc);  // core's, asked once per step of core
  void tls_step(ServerConn& sc);
  void tls_take_hello(ServerConn& sc, std::span<const std::byte> bytes);
  void do_read(core::ConnectionId id);
  void start_call(ServerConn& sc, const core::action::CallPlugin& cp);
  void complete_call(core::ConnectionId id, core::SlotId slot, core::PluginCall call);
  void request_shutdown(const char* why);
  void drain_server();
  void end_faults();
  ServerConn* find(core::ConnectionId id);
  Outcome finish(OutcomeKind kind, std::string reason);
  Outcome conclude();
  bool loop(std::optional<core::Instant> until);   // false: run is over (violation/stuck)
  // scenario
  void apply(const Step& step);

  class Gate;
  FaultProfile profile_;
  WorldOptions options_;
  Prng prng_;
  Clock clock_;
  EventQueue queue_;
  Trace trace_;
  Marks marks_;
  core::Limits limits_;
  std::unique_ptr<Gate> gate_;
  core::ServerState server_;
  std::unique_ptr<InvariantChecker> checker_;
  DriverTap* tap_ = nullptr;
  std::unique_ptr<SimPlugin> plugin_;
  std::unique_ptr<MemoryBackend> memory_;
  std::vector<std::unique_ptr<SimClient>> clients_;
  std::vector<std::unique_ptr<Pipe>> pipes_;
  std::map<core::ConnectionId, std::unique_ptr<ServerConn>> conns_;
  std::vector<ServerConn*> conn_index_;            // by id (ServerState hands out 1, 2, 3...)
  std::map<std::uint32_t, core::ConnectionId> client_conn_;  // client index -> its connection
  std::deque<HeldCall> held_;                      // scenario mode: calls waiting for PluginFinishes
  // Calls whose completion event is queued: the event captures an index here (a PluginCall
  // is too large for an event's inline capture). Reused through the free list.
  std::vector<HeldCall> parked_;
  std::vector<std::uint32_t> parked_free_;
  std::uint32_t park(const HeldCall& call);
  void complete_parked(std::uint32_t index);
  bool faults_active_ = true;
  bool shutdown_requested_ = false;
  bool exited_ = false;
  bool stopped_ = false;                           // a violation or failure ended the run
  std::optional<std::string> client_failure_;
  const char* client_failure_invariant_ = "INV-WIRE-PARSES";
  std::uint64_t events_ = 0;
  std::uint64_t requests_ = 0;
  core::Instant liveness_deadline_{~0ull};
  Prng net_prng_, client_prng_, plugin_prng_;
};

struct Scenario;
// Run one seed (optionally over the memory plugin). With `report`, prints the seed line and
// the profile first, and on failure the violation, the trace tail and the replay command.
Outcome run_seed(std::uint64_t seed, bool memory_plugin, bool full_trace, std::FILE* report);
// The seed's world again for the determinism check (WorldOptions::replay_only): compare its
// trace_hash with the first run's.
Outcome replay_seed(std::uint64_t seed, bool memory_plugin);
// Run a world whose every draw — FaultProfile knobs, clients, network, plugin — comes from
// `tape` (rewound first); same reporting, the reproduce line is `nbdd-sim --tape=HEX`.
Outcome run_tape(ChoiceTape& tape, bool memory_plugin, bool full_trace, std::FILE* report);
std::string tape_reproduce_command(const ChoiceTape& tape, bool memory_plugin);
std::string reproduce_command(std::uint64_t seed, bool memory_plugin);  // nbdd-sim --seed=N ...
// Auto-shrink: records the failing seed's draws as a tape, checks that the tape fails the
// same way, then shrinks it (shorter, zeroed runs, smaller words), keeping every candidate
// that still fails with the same invariant (or outcome kind), in at most `runs_max` runs.
// nullopt when the recorded tape does not reproduce the failure.
struct Shrunk {
  ChoiceTape tape;
  std::size_t recorded_words = 0;
  std::size_t runs = 0;
  std::string failure;  // the invariant (or outcome kind) kept
};
std::optional<Shrunk> shrink_seed(std::uint64_t seed, bool memory_plugin, std::size_t runs_max);
// Run a scenario (scripted clients, held plugin calls); same reporting.
Outcome run_scenario(const Scenario& scenario, bool full_trace, std::FILE* report);
// The failure report (violation or liveness reason, trace tail, reproduce line).
void print_failure(std::FILE* out, const Outcome& outcome, const Trace& trace, const std::string& reproduce);
// The trace of the world running now (for the crash handler: an NBDD_ASSERT in core ends
// the process, and the trace tail is the best clue); nullptr between runs.
const Trace* current_trace();
// Whether the real memory plugin is available in this build.
bool memory_plugin_available();

}  // namespace nbdd::sim
