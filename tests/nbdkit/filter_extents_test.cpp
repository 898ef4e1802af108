// nbdkit_extents_full and nbdkit_extents_aligned, the extents helpers filters call, against
// a fake layer below: a next_ops table whose extents() answers from a fixed map, at most a
// few extents per call (as a plugin may), so the helpers must ask again.
#include <gtest/gtest.h>

#include <type_traits>
#include <vector>

#include "plugins/nbdkit/abi_lists.hpp"
#include "plugins/nbdkit/nbdkit_headers.hpp"

namespace {

struct FakeState {
  std::vector<nbdkit_extent> map;
  std::size_t per_call = 1;
  int calls = 0;
};

// Standard layout, ops first: the helpers see this object as the nbdkit_next.
struct FakeLayer {
  nbdkit_next_ops ops{};
  FakeState* state = nullptr;
  FakeState* operator->() { return state; }
};

int fake_extents(nbdkit_next* next, uint32_t count, uint64_t offset, uint32_t, nbdkit_extents* out, int*) {
  FakeState* layer = reinterpret_cast<FakeLayer*>(next)->state;
  ++layer->calls;
  std::size_t added = 0;
  for (const nbdkit_extent& e : layer->map) {
    if (e.offset + e.length <= offset) continue;
    if (e.offset >= offset + count || added == layer->per_call) break;
    if (nbdkit_add_extent(out, e.offset, e.length, e.type) == -1) return -1;
    ++added;
  }
  return 0;
}

FakeLayer fake(FakeState& state, std::vector<nbdkit_extent> map, std::size_t per_call) {
  static_assert(std::is_standard_layout_v<FakeLayer>);
  state = FakeState{std::move(map), per_call, 0};
  FakeLayer layer;
  layer.ops.extents = fake_extents;
  layer.state = &state;
  return layer;
}

std::vector<nbdkit_extent> listed(const nbdkit_extents* e) { return e->list; }

bool same(const std::vector<nbdkit_extent>& a, const std::vector<nbdkit_extent>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].offset != b[i].offset || a[i].length != b[i].length || a[i].type != b[i].type) return false;
  return true;
}

TEST(FilterExtents, FullAsksUntilTheWholeRangeIsCovered) {
  FakeState state;
  FakeLayer layer = fake(state, {{0, 100, 0}, {100, 900, 3}, {1000, 24, 0}}, 1);
  int err = 0;
  nbdkit_extents* all = nbdkit_extents_full(reinterpret_cast<nbdkit_next*>(&layer), 1024, 0, NBDKIT_FLAG_REQ_ONE, &err);
  ASSERT_NE(all, nullptr) << err;
  EXPECT_TRUE(same(listed(all), {{0, 100, 0}, {100, 900, 3}, {1000, 24, 0}}));
  EXPECT_EQ(layer->calls, 3);
  nbdkit_extents_free(all);
}

TEST(FilterExtents, AlignedMergesAShortFirstExtentIntersectingTypes) {
  // 100 bytes of data, then a zero hole: the first block is data (types intersected).
  FakeState state;
  FakeLayer layer = fake(state, {{0, 100, 0}, {100, 4900, 3}, {5000, 3192, 0}}, 1);
  nbdkit_extents* exts = nbdkit_extents_new(0, 8192);
  int err = 0;
  ASSERT_EQ(nbdkit_extents_aligned(reinterpret_cast<nbdkit_next*>(&layer), 8192, 0, 0, 4096, exts, &err), 0);
  EXPECT_TRUE(same(listed(exts), {{0, 4096, 0}}));
  EXPECT_EQ(layer->calls, 2);  // the first answer was too short: asked again
  nbdkit_extents_free(exts);
}

TEST(FilterExtents, AlignedCutsAnUnalignedExtentPastTheFirstBlock) {
  FakeState state;
  FakeLayer layer = fake(state, {{0, 4096, 3}, {4096, 100, 0}, {4196, 3996, 3}}, 8);
  nbdkit_extents* exts = nbdkit_extents_new(0, 8192);
  int err = 0;
  ASSERT_EQ(nbdkit_extents_aligned(reinterpret_cast<nbdkit_next*>(&layer), 8192, 0, 0, 4096, exts, &err), 0);
  EXPECT_TRUE(same(listed(exts), {{0, 4096, 3}}));
  nbdkit_extents_free(exts);

  layer = fake(state, {{0, 5000, 3}, {5000, 3192, 0}}, 8);
  exts = nbdkit_extents_new(0, 8192);
  ASSERT_EQ(nbdkit_extents_aligned(reinterpret_cast<nbdkit_next*>(&layer), 8192, 0, 0, 4096, exts, &err), 0);
  EXPECT_TRUE(same(listed(exts), {{0, 4096, 3}}));  // 5000 cut down to one block
  nbdkit_extents_free(exts);
}

TEST(FilterExtents, AlignedRefusesAnUnalignedRequest) {
  FakeState state;
  FakeLayer layer = fake(state, {{0, 8192, 0}}, 1);
  nbdkit_extents* exts = nbdkit_extents_new(0, 8192);
  int err = 0;
  EXPECT_EQ(nbdkit_extents_aligned(reinterpret_cast<nbdkit_next*>(&layer), 8000, 0, 0, 4096, exts, &err), -1);
  EXPECT_EQ(err, EINVAL);
  nbdkit_extents_free(exts);
}

}  // namespace
