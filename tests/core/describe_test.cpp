// The trace/log text shared by the daemon's -v log and the simulator's traces.
#include <gtest/gtest.h>

#include "core/assert.hpp"
#include "core/connection.hpp"
#include "core/connection_impl.hpp"
#include "core/server_state.hpp"

namespace nbdd::core {
namespace {

TEST(Describe, EveryInputHasOneLine) {
  std::byte b[3]{};
  EXPECT_EQ(describe(input::BytesReceived{b}), "BytesReceived{bytes=3}");
  EXPECT_EQ(describe(input::PeerClosed{}), "PeerClosed");
  EXPECT_EQ(describe(input::SendDone{}), "SendDone");
  EXPECT_EQ(describe(input::SendFailed{}), "SendFailed");
  EXPECT_EQ(describe(input::PluginDone{SlotId{4}, 5}), "PluginDone{slot=4 err=5}");
  EXPECT_EQ(describe(input::PluginDone{lifecycle_slot, 0}), "PluginDone{slot=lifecycle err=0}");
  EXPECT_EQ(describe(input::ShutdownRequested{}), "ShutdownRequested");
  EXPECT_EQ(describe(input::DisconnectRequested{true}), "DisconnectRequested{force=true}");
  EXPECT_EQ(describe(input::DisconnectRequested{false}), "DisconnectRequested{force=false}");
  EXPECT_EQ(describe(input::DeadlineReached{}), "DeadlineReached");
  EXPECT_EQ(describe(input::GateOpened{}), "GateOpened");
}

TEST(Describe, EveryActionHasOneLine) {
  std::byte b[20]{};
  EXPECT_EQ(describe(action::Send{{b, 16}, {b, 4}}), "Send{header=16 payload=4}");
  PluginCall open;
  open.kind = CallKind::open;
  open.export_name = "disk";
  open.readonly = true;
  EXPECT_EQ(describe(action::CallPlugin{lifecycle_slot, open}), "CallPlugin{slot=lifecycle open export=\"disk\" readonly}");
  PluginCall close;
  close.kind = CallKind::close;
  EXPECT_EQ(describe(action::CallPlugin{lifecycle_slot, close}), "CallPlugin{slot=lifecycle close}");
  for (auto k : {CallKind::pread, CallKind::pwrite, CallKind::flush, CallKind::trim, CallKind::zero, CallKind::cache,
                 CallKind::extents}) {
    PluginCall c;
    c.kind = k;
    c.offset = 512;
    c.count = 4096;
    c.flags = 1;
    const auto text = describe(action::CallPlugin{SlotId{2}, c});
    EXPECT_NE(text.find("offset=512 count=4096 flags=1"), std::string::npos) << text;
  }
  EXPECT_EQ(describe(action::Close{CloseMode::abort}), "Close{abort}");
  EXPECT_EQ(describe(action::Close{CloseMode::flush_then_close}), "Close{flush_then_close}");
  EXPECT_EQ(describe(action::Finished{}), "Finished");
}

TEST(Describe, EnumNames) {
  EXPECT_STREQ(to_string(Status::draining), "draining");
  EXPECT_STREQ(to_string(Status::dead), "dead");
  EXPECT_STREQ(to_string(Status::active), "active");
  EXPECT_STREQ(to_string(Status::closing), "closing");
  for (int r = 0; r <= static_cast<int>(EndReason::export_name_failed); ++r)
    EXPECT_STRNE(to_string(static_cast<EndReason>(r)), "?");
  for (int m = 0; m <= static_cast<int>(ThreadModel::parallel); ++m)
    EXPECT_STRNE(to_string(static_cast<ThreadModel>(m)), "?");
  for (int p = 0; p <= static_cast<int>(ServerPhase::done); ++p)
    EXPECT_STRNE(to_string(static_cast<ServerPhase>(p)), "?");
  for (int r = 0; r <= static_cast<int>(Reader::stopped); ++r) EXPECT_STRNE(to_string(static_cast<Reader>(r)), "?");
}

TEST(AssertDeathTest, BrokenInvariantsStopTheProcessWithTheirText) {
  EXPECT_DEATH(NBDD_ASSERT(1 + 1 == 3), "assertion failed: 1 \\+ 1 == 3");
}

}  // namespace
}  // namespace nbdd::core
