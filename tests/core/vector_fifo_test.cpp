// core::VectorFifo (core/vector_fifo.hpp): order, and storage that stays bounded by the
// entries live at once, not by the number ever pushed (a busy connection's unacknowledged
// Sends never drain to zero).
#include <gtest/gtest.h>

#include <cstddef>

#include "core/vector_fifo.hpp"

namespace nbdd::core {
namespace {

TEST(VectorFifo, PopsInPushOrderAndStartsOverOnceDrained) {
  VectorFifo<int> q;
  EXPECT_TRUE(q.empty());
  for (int i = 0; i < 5; ++i) q.push_back(i);
  for (int i = 0; i < 5; ++i) {
    ASSERT_FALSE(q.empty());
    EXPECT_EQ(q.front(), i);
    q.pop_front();
  }
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.stored(), 0u);
}

TEST(VectorFifo, AQueueThatNeverDrainsKeepsItsStorageBounded) {
  VectorFifo<std::size_t> q;
  std::size_t next_in = 0, next_out = 0, most_stored = 0;
  for (int i = 0; i < 16; ++i) q.push_back(next_in++);  // 16 always live, as at depth 16
  for (int round = 0; round < 1'000'000; ++round) {
    q.push_back(next_in++);
    ASSERT_EQ(q.front(), next_out++);
    q.pop_front();
    ASSERT_EQ(q.size(), 16u);
    if (q.stored() > most_stored) most_stored = q.stored();
  }
  EXPECT_LE(most_stored, 64u);  // without compaction: 1,000,016
}

}  // namespace
}  // namespace nbdd::core
