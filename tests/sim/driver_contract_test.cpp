// The simulator's driver (sim/world.cpp, World's ServerConn) obeys core's driver contract
// (top of core/connection.hpp, docs/architecture.md), the sim's counterpart of
// tests/net/driver_contract_test.cpp. A ContractTap (sim/driver_tap.hpp) watches every
// input the world feeds and every action it drains, across many seeds, and checks:
//   1. one input, then next_action() drained to empty, before the next input;
//   3. a SendDone only for an outstanding Send (in order: there is no other identity), and
//      every Send acknowledged before Finished unless the connection was aborted or a
//      SendFailed was fed; a PluginDone for exactly every CallPlugin (slot by slot), also
//      for calls still running after a Close;
//   4. DeadlineReached only at or after deadline(), and never a later input while a
//      passed deadline was not delivered;
//   5. BytesReceived only while wants_read();
//   6. nothing fed after Finished, nothing drained after it.
// The checks themselves are tested first on a hand-driven core::Connection that breaks
// each rule, so a driver bug would fail the sweep.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <variant>

#include "core/connection.hpp"
#include "sim/driver_tap.hpp"
#include "sim/world.hpp"

namespace nbdd::sim {
namespace {

class ContractTap final : public DriverTap {
 public:
  struct Counts {
    std::uint64_t inputs = 0, actions = 0, sends = 0, send_dones = 0, calls = 0, plugin_dones = 0;
    std::uint64_t plugin_done_after_close = 0, deadlines = 0, reads = 0, finished = 0;
  };

  void before_input(core::ConnectionId id, core::Instant now, const core::Connection& conn,
                    const core::Input& in) override {
    Conn& c = conns_[id];
    ++counts_.inputs;
    const std::string what = core::describe(in);
    if (c.finished) violation(id, now, "input after Finished: " + what);
    if (!c.drained) violation(id, now, "input fed before the previous step was drained to empty: " + what);
    c.drained = false;
    const bool is_deadline = std::holds_alternative<core::input::DeadlineReached>(in);
    // Rule 4, both ways: the timer fires at deadline(), not before, and not forgotten.
    if (c.deadline && now > *c.deadline && !is_deadline)
      violation(id, now, "deadline " + std::to_string(c.deadline->ns) + "ns passed without DeadlineReached; fed " + what);
    if (is_deadline) {
      ++counts_.deadlines;
      const auto d = conn.deadline();
      if (!d) violation(id, now, "DeadlineReached with no deadline()");
      else if (now < *d) violation(id, now, "DeadlineReached before deadline() " + std::to_string(d->ns) + "ns");
    }
    if (const auto* b = std::get_if<core::input::BytesReceived>(&in)) {
      ++counts_.reads;
      if (!conn.wants_read()) violation(id, now, "BytesReceived while !wants_read()");
      if (b->bytes.empty()) violation(id, now, "BytesReceived with no bytes");
    }
    if (std::holds_alternative<core::input::SendDone>(in)) {
      ++counts_.send_dones;
      if (c.send_dones == c.sends) violation(id, now, "SendDone without an outstanding Send");
      ++c.send_dones;
    }
    if (std::holds_alternative<core::input::SendFailed>(in)) {
      if (c.send_failed) violation(id, now, "SendFailed twice");
      c.send_failed = true;
    }
    if (const auto* done = std::get_if<core::input::PluginDone>(&in)) {
      ++counts_.plugin_dones;
      if (c.closed) ++counts_.plugin_done_after_close;
      if (c.running.erase(static_cast<std::uint32_t>(done->slot)) == 0)
        violation(id, now, "PluginDone for slot " + std::to_string(static_cast<std::uint32_t>(done->slot)) +
                               " with no running CallPlugin");
    }
  }

  void action(core::ConnectionId id, core::Instant now, const core::Action& act) override {
    Conn& c = conns_[id];
    ++counts_.actions;
    if (c.finished) violation(id, now, "action drained after Finished: " + core::describe(act));
    if (c.drained && c.seen) violation(id, now, "action drained outside a step: " + core::describe(act));
    c.seen = true;
    if (std::holds_alternative<core::action::Send>(act)) {
      ++counts_.sends;
      ++c.sends;
    } else if (const auto* cp = std::get_if<core::action::CallPlugin>(&act)) {
      ++counts_.calls;
      c.running.insert(static_cast<std::uint32_t>(cp->slot));
    } else if (const auto* close = std::get_if<core::action::Close>(&act)) {
      c.closed = true;
      if (close->mode == core::CloseMode::abort) c.aborted = true;
    } else if (std::holds_alternative<core::action::Finished>(act)) {
      ++counts_.finished;
      c.finished = true;
    }
  }

  void drained(core::ConnectionId id, core::Instant, const core::Connection& conn) override {
    Conn& c = conns_[id];
    c.seen = true;
    c.drained = true;
    c.deadline = conn.deadline();
  }

  // End of a run: every connection finished, every call answered, every Send acknowledged
  // (unless aborted or failed).
  void at_end(core::Instant now) {
    for (const auto& [id, c] : conns_) {  // the driver's omissions first, on any connection...
      if (!c.aborted && !c.send_failed && c.send_dones != c.sends)
        violation(id, now, std::to_string(c.sends - c.send_dones) + " Send without SendDone");
      if (!c.running.empty())
        violation(id, now, std::to_string(c.running.size()) + " CallPlugin without PluginDone (first slot " +
                               std::to_string(*c.running.begin()) + ")");
    }
    for (const auto& [id, c] : conns_)  // ...then what they caused (a gate never handed over)
      if (!c.finished) violation(id, now, "never reached Finished");
  }

  const std::string& first() const { return first_; }
  const Counts& counts() const { return counts_; }
  void reset() {
    conns_.clear();
    first_.clear();
  }

 private:
  struct Conn {
    bool seen = false;     // the world drained it at least once (creation)
    bool drained = false;  // no step in progress (creation is the first step)
    bool finished = false, closed = false, aborted = false, send_failed = false;
    std::uint64_t sends = 0, send_dones = 0;
    std::set<std::uint32_t> running;  // slots with a CallPlugin and no PluginDone yet
    std::optional<core::Instant> deadline;  // deadline() after the last step
  };
  void violation(core::ConnectionId id, core::Instant now, const std::string& what) {
    if (!first_.empty()) return;
    std::ostringstream os;
    os << "conn " << id << " t=" << now.ns << "ns: " << what;
    first_ = os.str();
  }
  std::map<core::ConnectionId, Conn> conns_;
  std::string first_;
  Counts counts_;
};

// ---- the tap's checks, on a hand-driven Connection that breaks the contract -----------

struct Manual {
  core::Limits limits;
  std::unique_ptr<core::Connection> conn;
  ContractTap tap;
  core::Instant now{};
  Manual() {
    limits.handshake_timeout = core::Duration::from_ms(20);
    core::ConnectionConfig cfg;
    cfg.id = 1;
    cfg.limits = limits;
    conn = std::make_unique<core::Connection>(cfg);
    drain();  // CallPlugin{preconnect}: it succeeds, and the greeting is queued
    feed(core::input::PluginDone{core::lifecycle_slot, 0});
  }
  // Drains `n` actions (all when n < 0), reporting "drained" only when empty.
  void drain(int n = -1) {
    for (int i = 0; n < 0 || i < n; ++i) {
      auto act = conn->next_action();
      if (!act) {
        tap.drained(1, now, *conn);
        return;
      }
      tap.action(1, now, *act);
    }
  }
  void feed(const core::Input& in) {
    tap.before_input(1, now, *conn, in);
    conn->handle(now, in);
  }
};

TEST(DriverContractTap, AcceptsACorrectDriver) {
  Manual m;
  m.drain();  // the greeting Send
  m.feed(core::input::SendDone{});
  m.drain();
  m.now = *m.conn->deadline();
  m.feed(core::input::DeadlineReached{});  // handshake timeout: Close{abort}, Finished
  m.drain();
  m.tap.at_end(m.now);
  EXPECT_EQ(m.tap.first(), "");
}

TEST(DriverContractTap, CatchesAnInputBeforeTheStepWasDrained) {
  Manual m;
  m.drain(1);  // takes the greeting, does not ask again
  m.feed(core::input::SendDone{});
  EXPECT_NE(m.tap.first().find("before the previous step was drained"), std::string::npos) << m.tap.first();
}

TEST(DriverContractTap, CatchesAnEarlyDeadline) {
  Manual m;
  m.drain();
  m.feed(core::input::DeadlineReached{});
  EXPECT_NE(m.tap.first().find("before deadline()"), std::string::npos) << m.tap.first();
}

TEST(DriverContractTap, CatchesAForgottenDeadline) {
  Manual m;
  m.drain();
  m.now = *m.conn->deadline() + core::Duration::from_ms(1);
  m.feed(core::input::SendDone{});
  EXPECT_NE(m.tap.first().find("passed without DeadlineReached"), std::string::npos) << m.tap.first();
}

TEST(DriverContractTap, CatchesSendDoneWithoutSendAndMissingSendDone) {
  Manual m;
  m.drain();
  m.feed(core::input::SendDone{});
  m.drain();
  m.tap.before_input(1, m.now, *m.conn, core::input::SendDone{});  // (core itself would assert)
  EXPECT_NE(m.tap.first().find("SendDone without an outstanding Send"), std::string::npos) << m.tap.first();
  Manual n;
  n.drain();
  n.tap.at_end(n.now);
  EXPECT_NE(n.tap.first().find("Send without SendDone"), std::string::npos) << n.tap.first();
}

TEST(DriverContractTap, CatchesBytesWhileNotWantingToReadAndInputAfterFinished) {
  Manual m;
  m.drain();
  m.now = *m.conn->deadline();
  m.feed(core::input::DeadlineReached{});  // aborts: reading stops, Finished
  m.drain();
  ASSERT_FALSE(m.conn->wants_read());
  const std::byte b[4]{};
  m.tap.before_input(1, m.now, *m.conn, core::input::BytesReceived{b});
  EXPECT_NE(m.tap.first().find("input after Finished"), std::string::npos) << m.tap.first();
  m.tap.reset();
  EXPECT_EQ(m.tap.first(), "");
  Manual n;
  n.drain();
  n.feed(core::input::PeerClosed{});  // reading stops
  n.drain();
  ASSERT_FALSE(n.conn->wants_read());
  n.tap.before_input(1, n.now, *n.conn, core::input::BytesReceived{b});
  EXPECT_NE(n.tap.first().find("while !wants_read()"), std::string::npos) << n.tap.first();
}

TEST(DriverContractTap, CatchesPluginDoneForNoCall) {
  Manual m;
  m.drain();
  m.tap.before_input(1, m.now, *m.conn, core::input::PluginDone{core::SlotId{3}, 0});  // (core would assert)
  EXPECT_NE(m.tap.first().find("no running CallPlugin"), std::string::npos) << m.tap.first();
}

// ---- the simulator's driver, over many seeds ------------------------------------------

void sweep(std::uint64_t first_seed, std::uint64_t seeds, bool memory_plugin, ContractTap::Counts& total) {
  ContractTap tap;
  for (std::uint64_t seed = first_seed; seed < first_seed + seeds; ++seed) {
    tap.reset();
    FaultProfile profile = FaultProfile::from_seed(seed);
    profile.memory_plugin = memory_plugin;
    World world(profile, WorldOptions{});
    world.set_driver_tap(&tap);
    const Outcome out = world.run();
    tap.at_end(out.end);
    ASSERT_TRUE(out.kind == OutcomeKind::ok && tap.first().empty())
        << "seed " << seed << ": driver contract " << (tap.first().empty() ? "kept" : "broken: " + tap.first())
        << "; run " << to_string(out.kind) << ": "
        << (out.violation ? out.violation->invariant + " " + out.violation->message : out.reason)
        << "\nreproduce: nbdd-sim --seed=" << seed << " --trace=full" << (memory_plugin ? " --memory-plugin" : "");
  }
  total = tap.counts();
}

TEST(SimDriverContract, EverySeedFeedsCoreAsTheContractSays) {
  ContractTap::Counts c;
  sweep(1, 300, false, c);
  if (::testing::Test::HasFatalFailure()) return;
  // Every clause was exercised, so the sweep proves something.
  EXPECT_GT(c.sends, 0u);
  EXPECT_GT(c.send_dones, 0u);
  EXPECT_GT(c.calls, 0u);
  EXPECT_EQ(c.calls, c.plugin_dones);
  EXPECT_GT(c.plugin_done_after_close, 0u) << "no PluginDone after a Close in the sweep";
  EXPECT_GT(c.deadlines, 0u) << "no DeadlineReached in the sweep";
  EXPECT_GT(c.reads, 0u);
  EXPECT_GT(c.finished, 0u);
}

TEST(SimDriverContract, MemoryPluginSeedsFeedCoreAsTheContractSays) {
  if (!memory_plugin_available()) GTEST_SKIP() << "memory plugin not built";
  ContractTap::Counts c;
  sweep(300000, 60, true, c);
  if (::testing::Test::HasFatalFailure()) return;
  EXPECT_EQ(c.calls, c.plugin_dones);
}

}  // namespace
}  // namespace nbdd::sim
