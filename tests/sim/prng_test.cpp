#include <gtest/gtest.h>

#include <array>

#include "sim/event_queue.hpp"
#include "sim/prng.hpp"

namespace nbdd::sim {
namespace {

TEST(Prng, SameSeedSameSequenceAndForksAreIndependentOfLaterDraws) {
  Prng a(42), b(42);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.next(), b.next());
  Prng p(1), q(1);
  Prng child_p = p.fork();
  Prng child_q = q.fork();
  (void)q.next();  // an extra draw in the parent...
  for (int i = 0; i < 10; ++i) ASSERT_EQ(child_p.next(), child_q.next());  // ...does not move the child
}

TEST(Prng, BelowStaysInRangeAndHitsEveryValue) {
  Prng p(7);
  std::array<int, 6> seen{};
  for (int i = 0; i < 6000; ++i) {
    const auto v = p.below(6);
    ASSERT_LT(v, 6u);
    ++seen[v];
  }
  for (int n : seen) EXPECT_GT(n, 800);
  EXPECT_EQ(p.below(1), 0u);
  EXPECT_EQ(p.range_inclusive(5, 5), 5u);
  EXPECT_FALSE(p.chance(Ratio::never()));
  EXPECT_TRUE(p.chance(Ratio::always()));
}

TEST(Prng, TapeModeReadsTheTapeAndZeroIsTheSimplestChoice) {
  ChoiceTape tape({7, 1, 5, 3, 0xffffffffu});
  Prng p(tape);
  EXPECT_TRUE(p.tape_mode());
  EXPECT_EQ(p.below(5), 2u);                 // 7 % 5
  EXPECT_TRUE(p.coin());                     // 1 & 1
  Prng child = p.fork();                     // same tape, no draw
  EXPECT_EQ(child.range_inclusive(10, 12), 12u);  // 10 + 5 % 3
  EXPECT_TRUE(p.chance(Ratio{1, 4}));        // 3 % 4 >= 4 - 1
  EXPECT_EQ(tape.used(), 4u);
  (void)p.next();
  EXPECT_EQ(tape.used(), 5u);
  // exhausted: every draw answers 0, the simplest choice
  EXPECT_EQ(p.below(100), 0u);
  EXPECT_FALSE(p.coin());
  EXPECT_FALSE(p.chance(Ratio{1, 2}));
  EXPECT_TRUE(p.chance(Ratio::always()));
  EXPECT_EQ(tape.past_end(), 3u);
}

TEST(Prng, FillIsDeterministicAndUsesOneDraw) {
  Prng a(3), b(3);
  std::array<std::byte, 37> x{}, y{};
  a.fill(x);
  b.fill(y);
  EXPECT_EQ(x, y);
  EXPECT_EQ(a.next(), b.next());
  ChoiceTape tape({9});
  Prng t(tape);
  t.fill(x);
  EXPECT_EQ(tape.used(), 1u);
}

TEST(EventQueue, OrdersByTimeThenInsertion) {
  EventQueue q;
  std::vector<int> order;
  q.at(core::Instant{20}, [&] { order.push_back(3); });
  q.at(core::Instant{10}, [&] { order.push_back(1); });
  q.at(core::Instant{10}, [&] { order.push_back(2); });
  while (!q.empty()) {
    core::Instant at;
    q.pop(at)();
  }
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

}  // namespace
}  // namespace nbdd::sim
