// Shrinkable swarm runs (architecture §3.3, way 2): RapidCheck generates a ChoiceTape — a
// std::vector<std::uint32_t> — and a whole swarm world (FaultProfile knobs, clients, network,
// plugin) draws from it instead of a seeded Prng, with every invariant armed. Because a
// tape's zeros are the simplest choices (one client, one request, no faults; see
// sim/entropy.hpp), RapidCheck's shrinking of the tape (fewer words, smaller values) shrinks
// the run. A failure prints `nbdd-sim --tape=HEX --trace=full`, which replays it outside
// GoogleTest. docs/simulator.md shows a mutant's failing tape shrunk this way.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <sstream>

#include "sim/entropy.hpp"
#include "sim/world.hpp"

namespace nbdd::sim {
namespace {

// Up to 800 words (rc's default size 100, scaled by 8): a world makes thousands of
// draws, the rest of them past the end of the tape (answered 0).
rc::Gen<std::vector<std::uint32_t>> gen_tape() {
  return rc::gen::scale(8.0, rc::gen::container<std::vector<std::uint32_t>>(rc::gen::arbitrary<std::uint32_t>()));
}

std::string report(const ChoiceTape& tape, const Outcome& out) {
  std::ostringstream os;
  os << to_string(out.kind);
  if (out.violation) os << " " << out.violation->invariant << " conn=" << out.violation->conn << ": " << out.violation->message;
  else os << " " << out.reason;
  os << "\ntape: " << tape.words().size() << " words, " << out.tape_used << " used, " << out.tape_past_end
     << " draws past the end; requests=" << out.requests << " events=" << out.events
     << "\nreplay: " << tape_reproduce_command(tape, false);
  return os.str();
}

RC_GTEST_PROP(SwarmTape, EveryTapeDrivenWorldKeepsEveryInvariantAndEnds, ()) {
  ChoiceTape tape(*gen_tape());
  const Outcome out = run_tape(tape, false, false, nullptr);
  RC_LOG() << report(tape, out);
  RC_CLASSIFY(out.requests > 0, "requests");
  RC_CLASSIFY(out.marks.count("close_abort") > 0, "forced");
  RC_CLASSIFY(out.marks.count("eshutdown_reply") > 0, "eshutdown");
  RC_ASSERT(out.kind == OutcomeKind::ok);
}

RC_GTEST_PROP(SwarmTape, TapesReplayToTheSameTraceThroughTheirText, ()) {
  ChoiceTape tape(*gen_tape());
  const Outcome a = run_tape(tape, false, false, nullptr);
  std::string err;
  auto again = ChoiceTape::parse(tape.to_hex(), &err);
  RC_ASSERT(again.has_value());
  const Outcome b = run_tape(*again, false, false, nullptr);
  RC_ASSERT(a.trace_hash == b.trace_hash);
}

TEST(SwarmTape, AnEmptyTapeIsThePlainestWorld) {
  ChoiceTape tape;
  const Outcome out = run_tape(tape, false, false, nullptr);
  EXPECT_EQ(out.kind, OutcomeKind::ok) << report(tape, out);
  EXPECT_EQ(out.requests, 1u);  // one client, one request, GO, no faults
  EXPECT_EQ(out.tape_used, 0u);
  EXPECT_GT(out.tape_past_end, 0u);
}

TEST(SwarmTape, TextFormRoundTripsAndDropsTrailingZeros) {
  ChoiceTape tape({0x2a, 0, 0xffffffffu, 0, 0});
  EXPECT_EQ(tape.to_hex(), "0000002a00000000ffffffff");
  std::string err;
  auto back = ChoiceTape::parse("0000002a 00000000\nffffffff  # comment\n", &err);
  ASSERT_TRUE(back) << err;
  EXPECT_EQ(back->words(), (std::vector<std::uint32_t>{0x2a, 0, 0xffffffffu}));
  EXPECT_FALSE(ChoiceTape::parse("123", &err));
  EXPECT_FALSE(ChoiceTape::parse("0000000g", &err));
}

}  // namespace
}  // namespace nbdd::sim
