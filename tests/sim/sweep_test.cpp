// Seed sweeps: every seed passes every invariant, runs twice to the same trace hash, and
// the sweep as a whole hits every coverage mark. NBDD_SIM_SEEDS overrides the count.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "sim/marks.hpp"
#include "sim/world.hpp"

namespace nbdd::sim {
namespace {

std::uint64_t seed_count(std::uint64_t fallback) {
  if (const char* env = std::getenv("NBDD_SIM_SEEDS")) return std::strtoull(env, nullptr, 0);
  return fallback;
}

std::string describe(std::uint64_t seed, const Outcome& out) {
  std::ostringstream os;
  os << "seed " << seed << ": " << to_string(out.kind);
  if (out.violation) os << " " << out.violation->invariant << " conn=" << out.violation->conn << ": " << out.violation->message;
  else os << " " << out.reason;
  os << "\nreproduce: nbdd-sim --seed=" << seed << " --trace=full";
  return os.str();
}

TEST(SimSweep, EverySeedKeepsEveryInvariantAndReplaysIdentically) {
  Marks marks;
  const std::uint64_t n = seed_count(400);
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    const Outcome first = run_seed(seed, false, false, nullptr);
    ASSERT_EQ(first.kind, OutcomeKind::ok) << describe(seed, first);
    const Outcome second = run_seed(seed, false, false, nullptr);
    ASSERT_EQ(first.trace_hash, second.trace_hash) << "nondeterminism at seed " << seed;
    marks.merge(first.marks);
  }
  for (const char* name : required_marks()) EXPECT_GT(marks.count(name), 0u) << "coverage mark never hit: " << name;
}

TEST(SimSweep, MemoryPluginSeedsKeepEveryInvariant) {
  if (!memory_plugin_available()) GTEST_SKIP() << "no memory plugin in this build";
  const std::uint64_t n = seed_count(400) / 4;
  for (std::uint64_t seed = 100'001; seed <= 100'000 + n; ++seed) {
    const Outcome out = run_seed(seed, true, false, nullptr);
    ASSERT_EQ(out.kind, OutcomeKind::ok) << describe(seed, out) << " --memory-plugin";
  }
}

TEST(SimSweep, RegressionSeedsPass) {
  std::ifstream in(NBDD_SIM_REGRESSIONS);
  ASSERT_TRUE(in) << NBDD_SIM_REGRESSIONS;
  std::string line;
  int count = 0;
  while (std::getline(in, line)) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream ls(line);
    std::uint64_t seed;
    if (!(ls >> seed)) continue;
    ++count;
    const Outcome out = run_seed(seed, false, false, nullptr);
    EXPECT_EQ(out.kind, OutcomeKind::ok) << describe(seed, out);
  }
  EXPECT_GT(count, 0);
}

TEST(SimSweep, SameSeedSameTraceDifferentSeedDifferentTrace) {
  const Outcome a = run_seed(7, false, false, nullptr);
  const Outcome b = run_seed(7, false, false, nullptr);
  const Outcome c = run_seed(8, false, false, nullptr);
  EXPECT_EQ(a.trace_hash, b.trace_hash);
  EXPECT_NE(a.trace_hash, c.trace_hash);
  EXPECT_GT(a.trace_records, 0u);
}

}  // namespace
}  // namespace nbdd::sim
