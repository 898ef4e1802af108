// nbdd-sim: the deterministic simulator's command line.
//
//   nbdd-sim --seed=N [--trace=short|full] [--memory-plugin]   one world; prints the seed first
//   nbdd-sim --seeds=A..B [--check-determinism] [--marks]     a sweep; a failing seed is
//                                                             shrunk (ChoiceTape) unless --no-shrink
//   nbdd-sim --budget-s=S [--seed-start=N] [...]              a sweep bounded by wall time
//   nbdd-sim --scenario=FILE [--trace=full]                   replay a scenario (scenario.hpp)
//   nbdd-sim --regressions=FILE                               every seed listed in FILE
//   nbdd-sim --tape=HEX | --tape=@FILE [--trace=full]         one world driven by a ChoiceTape
//
// Exit codes: 0 ok, 2 usage, 127 crash (assertion/signal), 128 liveness, 129 correctness,
// 131 nondeterminism (same seed, different trace hash). Wall time is read here only to
// bound sweeps; it never reaches a world.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <malloc.h>
#include <map>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "sim/marks.hpp"
#include "sim/scenario.hpp"
#include "sim/world.hpp"

namespace {

using namespace nbdd::sim;

char crash_line[256] = "CRASH before any seed\n";

extern "C" void on_crash_signal(int sig) {
  // Not async-signal-safe, but the process is dying anyway and the tail is the best clue.
  if (const Trace* t = current_trace()) t->print_tail(stderr, 40);
  const std::size_t n = std::strlen(crash_line);
  ssize_t r = ::write(2, crash_line, n);
  (void)r;
  (void)sig;
  _exit(127);
}

void arm_crash(std::uint64_t seed, bool memory) {
  std::snprintf(crash_line, sizeof crash_line,
                "CRASH seed=%llu (assertion or signal)\nreproduce: nbdd-sim --seed=%llu --trace=full%s\nexit 127 (crash)\n",
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed),
                memory ? " --memory-plugin" : "");
}

struct Args {
  std::optional<std::uint64_t> seed;
  std::optional<std::pair<std::uint64_t, std::uint64_t>> seeds;
  std::optional<std::uint64_t> budget_s;
  std::uint64_t seed_start = 0;
  std::string scenario, regressions, tape;
  bool full = false, memory = false, determinism = false, marks = false, require_marks = false, keep_going = false,
       no_shrink = false;
};

bool starts(const std::string& a, const char* p, std::string& rest) {
  const std::size_t n = std::strlen(p);
  if (a.compare(0, n, p) != 0) return false;
  rest = a.substr(n);
  return true;
}

int usage() {
  std::fprintf(stderr,
               "usage: nbdd-sim --seed=N | --seeds=A..B | --budget-s=S [--seed-start=N] | --scenario=FILE |\n"
               "                --regressions=FILE | --tape=HEX | --tape=@FILE\n"
               "                [--trace=short|full] [--memory-plugin] [--check-determinism]\n"
               "                [--marks] [--require-marks] [--keep-going] [--no-shrink]\n");
  return 2;
}

void print_marks(const Marks& m) {
  std::printf("marks:\n");
  for (const char* name : required_marks()) std::printf("  %-36s %llu\n", name, static_cast<unsigned long long>(m.count(name)));
  std::printf("  (other)\n");
  for (const auto& [name, n] : m.all()) {
    bool required = false;
    for (const char* r : required_marks()) required = required || name == r;
    if (!required) std::printf("  %-36s %llu\n", name.c_str(), static_cast<unsigned long long>(n));
  }
}

std::map<std::string, std::pair<std::uint64_t, std::uint64_t>>& failures() {
  static std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> f;  // what -> (first seed, count)
  return f;
}

// One seed in a sweep: quiet unless it fails; then rerun it loudly (deterministic).
// The determinism self-check of one world (--check-determinism): true, after printing both
// hashes, when running the same world again gave a different trace.
bool replay_differs(const Outcome& first, const Outcome& again) {
  if (again.trace_hash == first.trace_hash) return false;
  std::printf("NONDETERMINISM trace hash %016llx != %016llx\nexit 131 (nondeterminism)\n",
              static_cast<unsigned long long>(first.trace_hash), static_cast<unsigned long long>(again.trace_hash));
  return true;
}

// After a failing seed's report: the shortest replay the tape shrinker finds, and both
// replay lines (the seed's, and the shrunk tape's).
void print_shrunk(std::uint64_t seed, bool memory) {
  std::fflush(stdout);
  const auto s = shrink_seed(seed, memory, 1500);
  if (!s) {
    std::printf("shrink: the recorded tape does not fail the same way; replay the seed\n");
    return;
  }
  std::printf("shrunk (%s) from %zu to %zu tape words in %zu runs\n", s->failure.c_str(), s->recorded_words,
              s->tape.words().size(), s->runs);
  std::printf("replay: %s\n", reproduce_command(seed, memory).c_str());
  std::printf("replay (shrunk): %s\n", tape_reproduce_command(s->tape, memory).c_str());
}

int sweep_one(std::uint64_t seed, const Args& a, Marks& marks, std::uint64_t& requests, std::uint64_t& events) {
  arm_crash(seed, a.memory);
  Outcome out = run_seed(seed, a.memory, false, nullptr);
  requests += out.requests;
  events += out.events;
  marks.merge(out.marks);
  if (out.kind == OutcomeKind::ok && a.determinism) {
    Outcome again = replay_seed(seed, a.memory);
    if (again.trace_hash != out.trace_hash) {
      std::printf("NONDETERMINISM seed=%llu trace hash %016llx != %016llx\nreproduce: nbdd-sim --seed=%llu "
                  "--check-determinism\nexit 131 (nondeterminism)\n",
                  static_cast<unsigned long long>(seed), static_cast<unsigned long long>(out.trace_hash),
                  static_cast<unsigned long long>(again.trace_hash), static_cast<unsigned long long>(seed));
      return exit_code(OutcomeKind::nondeterminism);
    }
  }
  if (out.kind != OutcomeKind::ok) {
    if (a.keep_going) {
      const std::string what = out.violation ? out.violation->invariant : std::string(to_string(out.kind));
      std::printf("seed=%llu %s: %s\n", static_cast<unsigned long long>(seed), what.c_str(),
                  out.violation ? out.violation->message.c_str() : out.reason.substr(0, 200).c_str());
      auto& [first, n] = failures()[what];
      if (n++ == 0) first = seed;
      return exit_code(out.kind);
    }
    std::fflush(stdout);
    run_seed(seed, a.memory, false, stdout);
    if (!a.no_shrink) print_shrunk(seed, a.memory);
    return exit_code(out.kind);
  }
  return 0;
}

int sweep(const Args& a, const std::vector<std::uint64_t>& list, std::uint64_t first, std::uint64_t last, bool timed) {
  const auto t0 = std::chrono::steady_clock::now();
  Marks marks;
  std::uint64_t requests = 0, events = 0, runs = 0;
  int rc = 0;
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  int first_rc = 0;
  auto one = [&](std::uint64_t seed) {
    if (a.keep_going) {  // triage mode: a child per seed, so a crash does not end the sweep
      std::fflush(stdout);
      const pid_t pid = fork();
      if (pid == 0) {
        arm_crash(seed, a.memory);
        Outcome out = run_seed(seed, a.memory, false, nullptr);
        if (out.kind != OutcomeKind::ok)
          std::printf("seed=%llu %s: %s\n", static_cast<unsigned long long>(seed),
                      out.violation ? out.violation->invariant.c_str() : to_string(out.kind),
                      out.violation ? out.violation->message.c_str() : out.reason.substr(0, 160).c_str());
        std::fflush(stdout);
        _exit(exit_code(out.kind));
      }
      int status = 0;
      waitpid(pid, &status, 0);
      rc = WIFEXITED(status) ? WEXITSTATUS(status) : 127;
      ++runs;
      if (rc != 0) {
        auto& [first, n] = failures()["exit " + std::to_string(rc)];
        if (n++ == 0) first = seed;
        if (first_rc == 0) first_rc = rc;
      }
      return true;
    }
    rc = sweep_one(seed, a, marks, requests, events);
    ++runs;
    if (rc != 0 && first_rc == 0) first_rc = rc;
    return rc == 0 || a.keep_going;
  };
  if (!list.empty()) {
    for (auto s : list)
      if (!one(s)) break;
  } else {
    for (std::uint64_t s = first;; ++s) {
      if (!one(s)) break;
      if (timed ? elapsed() >= static_cast<double>(*a.budget_s) : s == last) break;
    }
  }
  if (a.keep_going) {
    rc = first_rc;
    for (const auto& [what, fc] : failures())
      std::printf("failure %s: %llu seeds, first seed=%llu\n", what.c_str(), static_cast<unsigned long long>(fc.second),
                  static_cast<unsigned long long>(fc.first));
  }
  const double secs = elapsed();
  std::printf("swept %llu seeds in %.1fs: %.0f seeds/s, %.0f simulated requests/s%s; %s\n",
              static_cast<unsigned long long>(runs), secs, static_cast<double>(runs) / (secs > 0 ? secs : 1),
              static_cast<double>(requests) / (secs > 0 ? secs : 1), a.determinism ? " (each seed twice)" : "",
              rc == 0 ? "all passed" : "FAILED");
  if (runs > 0 && !a.keep_going)
    std::printf("  %llu requests (%.1f per seed), %llu events (%.1f per request)\n",
                static_cast<unsigned long long>(requests), static_cast<double>(requests) / static_cast<double>(runs),
                static_cast<unsigned long long>(events),
                static_cast<double>(events) / static_cast<double>(requests ? requests : 1));
  if (a.marks || a.require_marks) print_marks(marks);
  if (rc == 0 && a.require_marks) {
    for (const char* name : required_marks())
      if (marks.count(name) == 0) {
        std::printf("mark not hit: %s\n", name);
        rc = 1;
      }
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGABRT, on_crash_signal);
  std::signal(SIGSEGV, on_crash_signal);
  std::signal(SIGFPE, on_crash_signal);
  std::signal(SIGBUS, on_crash_signal);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  // Every world allocates and frees the same large buffers (stages, slot buffers, pipes):
  // keep them in the heap instead of mmap/munmap per world (page faults were ~10% of a sweep).
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], v;
    if (starts(arg, "--seed=", v)) a.seed = std::strtoull(v.c_str(), nullptr, 0);
    else if (starts(arg, "--seeds=", v)) {
      const auto dots = v.find("..");
      if (dots == std::string::npos) return usage();
      a.seeds = {std::strtoull(v.substr(0, dots).c_str(), nullptr, 0), std::strtoull(v.substr(dots + 2).c_str(), nullptr, 0)};
    } else if (starts(arg, "--budget-s=", v)) a.budget_s = std::strtoull(v.c_str(), nullptr, 0);
    else if (starts(arg, "--seed-start=", v)) a.seed_start = std::strtoull(v.c_str(), nullptr, 0);
    else if (starts(arg, "--scenario=", v)) a.scenario = v;
    else if (starts(arg, "--regressions=", v)) a.regressions = v;
    else if (starts(arg, "--tape=", v)) a.tape = v;
    else if (arg == "--trace=full") a.full = true;
    else if (arg == "--trace=short") a.full = false;
    else if (arg == "--memory-plugin") a.memory = true;
    else if (arg == "--check-determinism") a.determinism = true;
    else if (arg == "--marks") a.marks = true;
    else if (arg == "--require-marks") a.require_marks = true;
    else if (arg == "--keep-going") a.keep_going = true;
    else if (arg == "--no-shrink") a.no_shrink = true;
    else return usage();
  }
  if (a.memory && !memory_plugin_available()) {
    std::fprintf(stderr, "nbdd-sim: this build has no memory plugin (plugins/registry.hpp missing)\n");
    return 2;
  }
  if (!a.scenario.empty()) {
    std::ifstream in(a.scenario);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string err;
    auto sc = parse_scenario(ss.str(), &err);
    if (!in || !sc) {
      std::fprintf(stderr, "nbdd-sim: %s: %s\n", a.scenario.c_str(), err.c_str());
      return 2;
    }
    arm_crash(0, false);
    std::printf("nbdd-sim scenario=%s steps=%zu\n", a.scenario.c_str(), sc->steps.size());
    Outcome out = run_scenario(*sc, a.full, stdout);
    if (out.kind == OutcomeKind::ok) std::printf("ok trace_hash=%016llx\n", static_cast<unsigned long long>(out.trace_hash));
    return exit_code(out.kind);
  }
  if (!a.tape.empty()) {
    std::string text = a.tape;
    if (text[0] == '@') {
      std::ifstream in(text.substr(1));
      std::stringstream ss;
      ss << in.rdbuf();
      if (!in) {
        std::fprintf(stderr, "nbdd-sim: cannot read %s\n", text.c_str() + 1);
        return 2;
      }
      text = ss.str();
    }
    std::string err;
    auto tape = ChoiceTape::parse(text, &err);
    if (!tape) {
      std::fprintf(stderr, "nbdd-sim: %s\n", err.c_str());
      return 2;
    }
    std::snprintf(crash_line, sizeof crash_line,
                  "CRASH tape (assertion or signal)\nreproduce: nbdd-sim --tape=%s --trace=full%s\nexit 127 (crash)\n",
                  a.tape.size() < 120 ? a.tape.c_str() : "...", a.memory ? " --memory-plugin" : "");
    Outcome out = run_tape(*tape, a.memory, a.full, stdout);
    if (out.kind == OutcomeKind::ok && a.determinism && replay_differs(out, run_tape(*tape, a.memory, false, nullptr)))
      return exit_code(OutcomeKind::nondeterminism);
    if (out.kind == OutcomeKind::ok)
      std::printf("ok requests=%llu events=%llu virtual=%s tape_used=%llu past_end=%llu trace_hash=%016llx\n",
                  static_cast<unsigned long long>(out.requests), static_cast<unsigned long long>(out.events),
                  format_time(out.end).c_str(), static_cast<unsigned long long>(out.tape_used),
                  static_cast<unsigned long long>(out.tape_past_end), static_cast<unsigned long long>(out.trace_hash));
    if (a.marks) print_marks(out.marks);
    return exit_code(out.kind);
  }
  if (!a.regressions.empty()) {
    std::ifstream in(a.regressions);
    if (!in) return usage();
    std::vector<std::uint64_t> list;
    std::string line;
    while (std::getline(in, line)) {
      if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
      std::istringstream ls(line);
      std::uint64_t s;
      if (ls >> s) list.push_back(s);
    }
    if (list.empty()) {
      std::printf("no regression seeds\n");
      return 0;
    }
    return sweep(a, list, 0, 0, false);
  }
  if (a.seed) {
    arm_crash(*a.seed, a.memory);
    Outcome out = run_seed(*a.seed, a.memory, a.full, stdout);
    if (out.kind == OutcomeKind::ok && a.determinism && replay_differs(out, replay_seed(*a.seed, a.memory)))
      return exit_code(OutcomeKind::nondeterminism);
    if (out.kind == OutcomeKind::ok)
      std::printf("ok requests=%llu events=%llu virtual=%s trace_hash=%016llx\n",
                  static_cast<unsigned long long>(out.requests), static_cast<unsigned long long>(out.events),
                  format_time(out.end).c_str(), static_cast<unsigned long long>(out.trace_hash));
    if (a.marks) print_marks(out.marks);
    return exit_code(out.kind);
  }
  if (a.seeds) return sweep(a, {}, a.seeds->first, a.seeds->second, false);
  if (a.budget_s) return sweep(a, {}, a.seed_start, 0, true);
  return usage();
}
