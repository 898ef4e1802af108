// Auto-shrink of a failing seed (issue 22): the seed's world is run again with every draw
// recorded on a ChoiceTape (sim/entropy.hpp), the tape is checked to fail the same way, and
// then shrunk the way RapidCheck shrinks a tape — a shorter prefix, runs of words deleted or
// zeroed, smaller words — keeping each candidate that still fails with the same invariant.
// A tape's 0 is the simplest choice everywhere, so a shorter, sparser tape is a smaller world.
#include <algorithm>

#include "sim/world.hpp"

namespace nbdd::sim {
namespace {

std::string failure_of(const Outcome& o) {
  return o.violation ? o.violation->invariant : std::string(to_string(o.kind));
}

}  // namespace

std::optional<Shrunk> shrink_seed(std::uint64_t seed, bool memory_plugin, std::size_t runs_max) {
  ChoiceTape recorder;
  recorder.start_recording();
  FaultProfile profile = FaultProfile::from_seed(seed, &recorder);
  profile.memory_plugin = memory_plugin;
  WorldOptions options;
  options.tape = &recorder;
  Outcome first;
  {
    World world(profile, options);
    first = world.run();
  }
  recorder.stop_recording();
  if (first.kind == OutcomeKind::ok) return std::nullopt;

  Shrunk out;
  out.failure = failure_of(first);
  out.recorded_words = recorder.words().size();
  std::vector<std::uint32_t> best = recorder.words();
  auto fails = [&](const std::vector<std::uint32_t>& words) {
    if (out.runs >= runs_max) return false;
    ++out.runs;
    ChoiceTape tape(words);
    const Outcome o = run_tape(tape, memory_plugin, false, nullptr);
    return o.kind != OutcomeKind::ok && failure_of(o) == out.failure;
  };
  if (!fails(best)) return std::nullopt;

  // 1. The shortest failing prefix (draws past the end answer 0), by bisection.
  std::size_t lo = 0, hi = best.size();
  while (lo < hi && out.runs < runs_max) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (fails(std::vector<std::uint32_t>(best.begin(), best.begin() + static_cast<std::ptrdiff_t>(mid))))
      hi = mid;
    else
      lo = mid + 1;
  }
  best.resize(hi);
  // 2. Runs of words zeroed, else deleted, halving the run length down to one word (zeroing
  //    first: it keeps later draws where they were, so it succeeds more often).
  for (std::size_t k = std::max<std::size_t>(best.size() / 2, 1); out.runs < runs_max; k /= 2) {
    for (std::size_t i = 0; i + k <= best.size() && out.runs < runs_max;) {
      std::vector<std::uint32_t> cand = best;
      bool changed = false;
      for (std::size_t j = i; j < i + k; ++j) {
        changed = changed || cand[j] != 0;
        cand[j] = 0;
      }
      if (changed && fails(cand)) best = cand;
      cand = best;
      cand.erase(cand.begin() + static_cast<std::ptrdiff_t>(i), cand.begin() + static_cast<std::ptrdiff_t>(i + k));
      if (fails(cand)) {
        best = std::move(cand);
        continue;
      }
      i += k;
    }
    if (k == 1) break;
  }
  // 3. Smaller words: halve each nonzero one while that still fails.
  for (std::size_t i = 0; i < best.size() && out.runs < runs_max; ++i) {
    while (best[i] > 1 && out.runs < runs_max) {
      std::vector<std::uint32_t> cand = best;
      cand[i] /= 2;
      if (!fails(cand)) break;
      best = std::move(cand);
    }
  }
  while (!best.empty() && best.back() == 0) best.pop_back();
  out.tape = ChoiceTape(std::move(best));
  return out;
}

}  // namespace nbdd::sim
