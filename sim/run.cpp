// run_seed(), run_tape() and the failure report shared by nbdd-sim and the tests.
#include <cstdio>

#include "sim/world.hpp"

namespace nbdd::sim {

void print_failure(std::FILE* out, const Outcome& o, const Trace& trace, const std::string& reproduce) {
  if (o.violation) {
    std::fprintf(out, "FAIL %s conn=%llu t=%s: %s\n", o.violation->invariant.c_str(),
                 static_cast<unsigned long long>(o.violation->conn), format_time(o.violation->at).c_str(),
                 o.violation->message.c_str());
  } else {
    std::fprintf(out, "FAIL %s t=%s: %s\n", to_string(o.kind), format_time(o.end).c_str(), o.reason.c_str());
  }
  trace.print_tail(out, 40);
  std::fprintf(out, "reproduce: %s\n", reproduce.c_str());
  std::fprintf(out, "exit %d (%s)\n", exit_code(o.kind), to_string(o.kind));
}

std::string reproduce_command(std::uint64_t seed, bool memory_plugin) {
  return "nbdd-sim --seed=" + std::to_string(seed) + " --trace=full" + (memory_plugin ? " --memory-plugin" : "");
}

namespace {
const Trace* g_current_trace = nullptr;
struct CurrentTrace {
  explicit CurrentTrace(const Trace& t) { g_current_trace = &t; }
  ~CurrentTrace() { g_current_trace = nullptr; }
};
}  // namespace

const Trace* current_trace() { return g_current_trace; }

namespace {
// One swarm world from its profile: the header line and every knob first when reporting, then
// the run, then on failure the report with the command that replays it. `header` and
// `reproduce` are called only when reporting, so a sweep builds no strings per world.
template <typename Header, typename Reproduce>
Outcome run_world(FaultProfile& profile, const WorldOptions& options, bool memory_plugin, std::FILE* report,
                  Header header, Reproduce reproduce) {
  profile.memory_plugin = memory_plugin;
  if (report) {
    header(report);
    profile.print(report);
    std::fflush(report);
  }
  World world(profile, options);
  CurrentTrace current(world.trace_ref());
  Outcome out = world.run();
  if (report && out.kind != OutcomeKind::ok) print_failure(report, out, world.trace_ref(), reproduce());
  return out;
}
}  // namespace

Outcome run_seed(std::uint64_t seed, bool memory_plugin, bool full_trace, std::FILE* report) {
  FaultProfile profile = FaultProfile::from_seed(seed);
  WorldOptions options;
  options.full_trace = full_trace;
  return run_world(
      profile, options, memory_plugin, report,
      [&](std::FILE* out) { std::fprintf(out, "nbdd-sim seed=%llu profile=swarm\n", static_cast<unsigned long long>(seed)); },
      [&] { return reproduce_command(seed, memory_plugin); });
}

Outcome replay_seed(std::uint64_t seed, bool memory_plugin) {
  FaultProfile profile = FaultProfile::from_seed(seed);
  WorldOptions options;
  options.replay_only = true;
  return run_world(profile, options, memory_plugin, nullptr, [](std::FILE*) {}, [] { return std::string(); });
}

std::string tape_reproduce_command(const ChoiceTape& tape, bool memory_plugin) {
  const std::string hex = tape.to_hex();
  return "nbdd-sim --tape=" + (hex.empty() ? std::string("00000000") : hex) + " --trace=full" +
         (memory_plugin ? " --memory-plugin" : "");
}

Outcome run_tape(ChoiceTape& tape, bool memory_plugin, bool full_trace, std::FILE* report) {
  tape.rewind();
  Prng p(tape);
  FaultProfile profile = FaultProfile::from_prng(p);
  WorldOptions options;
  options.full_trace = full_trace;
  options.tape = &tape;
  return run_world(
      profile, options, memory_plugin, report,
      [&](std::FILE* out) { std::fprintf(out, "nbdd-sim tape=%zu words profile=swarm\n", tape.words().size()); },
      [&] { return tape_reproduce_command(tape, memory_plugin); });
}

}  // namespace nbdd::sim
