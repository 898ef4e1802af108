// Where a plugin call runs: on the session's strand or on the worker pool (net/connection_session.hpp).
#include <gtest/gtest.h>

#include "net/connection_session.hpp"

namespace nbdd::net {
namespace {

core::action::CallPlugin call(core::CallKind kind, std::uint64_t count, std::uint32_t slot = 3) {
  core::action::CallPlugin c;
  c.slot = core::SlotId{slot};
  c.call.kind = kind;
  c.call.count = count;
  return c;
}

TEST(CallPlacement, BlockingPluginsRunEveryCallOnWorkers) {
  for (auto kind : {core::CallKind::pread, core::CallKind::pwrite, core::CallKind::flush, core::CallKind::zero,
                    core::CallKind::trim, core::CallKind::cache, core::CallKind::extents})
    EXPECT_FALSE(runs_inline(false, call(kind, 4096)));
}

TEST(CallPlacement, NonblockingPluginsRunSmallDataCallsInline) {
  EXPECT_TRUE(runs_inline(true, call(core::CallKind::pread, 4096)));
  EXPECT_TRUE(runs_inline(true, call(core::CallKind::pread, inline_copy_bytes_max)));
  EXPECT_TRUE(runs_inline(true, call(core::CallKind::pwrite, 4096)));
  EXPECT_TRUE(runs_inline(true, call(core::CallKind::pwrite, inline_copy_bytes_max)));
  EXPECT_TRUE(runs_inline(true, call(core::CallKind::flush, 0)));
  EXPECT_TRUE(runs_inline(true, call(core::CallKind::extents, 1ull << 30)));
}

TEST(CallPlacement, OneMebibyteCopiesStayInline) {
  EXPECT_TRUE(runs_inline(true, call(core::CallKind::pread, 1 << 20)));
  EXPECT_TRUE(runs_inline(true, call(core::CallKind::pwrite, 1 << 20)));
}

TEST(CallPlacement, CopiesAboveTheBoundGoToWorkers) {
  EXPECT_FALSE(runs_inline(true, call(core::CallKind::pread, inline_copy_bytes_max + 1)));
  EXPECT_FALSE(runs_inline(true, call(core::CallKind::pwrite, inline_copy_bytes_max + 1)));
  EXPECT_FALSE(runs_inline(true, call(core::CallKind::pwrite, 32u << 20)));
  // zero and trim move no payload: their size says nothing about how long they take.
  EXPECT_TRUE(runs_inline(true, call(core::CallKind::zero, 1ull << 30)));
  EXPECT_TRUE(runs_inline(true, call(core::CallKind::trim, 1ull << 30)));
}

// The plugin's lifecycle calls may block (an open that dials a backend, a preconnect that
// checks a client), also for a nonblocking() plugin: never on an I/O thread.
TEST(CallPlacement, LifecycleCallsAlwaysRunOnWorkers) {
  for (auto kind : {core::CallKind::preconnect, core::CallKind::list_exports, core::CallKind::open,
                    core::CallKind::close})
    EXPECT_FALSE(runs_inline(true, call(kind, 0, 0xffffffffu))) << static_cast<int>(kind);
}

}  // namespace
}  // namespace nbdd::net
