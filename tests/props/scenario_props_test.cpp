// Scenario properties (architecture §3.3, way 1): RapidCheck generates a race as a list of
// sim::Step — clients connecting and sending, the plugin finishing call k, graceful or
// forced disconnects, shutdown, time passing, peers closing — and the simulator interprets
// it deterministically with every invariant armed. A failure shrinks to the minimal race and
// is printed as scenario text that `nbdd-sim --scenario=FILE` replays.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <sstream>

#include "sim/scenario.hpp"
#include "sim/wire.hpp"
#include "sim/world.hpp"

namespace nbdd::sim {
namespace {

namespace cmd = wire::cmd;

rc::Gen<Step> gen_send() {
  return rc::gen::apply(
      [](std::uint32_t client, std::uint16_t command, std::uint32_t block, std::uint32_t blocks, bool fua) {
        step::ClientSends s;
        s.client = client;
        s.command = command;
        s.offset = command == cmd::flush || command == cmd::disc ? 0 : block * 512;
        s.length = command == cmd::flush || command == cmd::disc ? 0 : blocks * 512;
        s.flags = fua ? wire::cflag::fua : 0;
        return Step{s};
      },
      rc::gen::inRange<std::uint32_t>(1, 4),
      rc::gen::element(cmd::read, cmd::read, cmd::write, cmd::write, cmd::flush, cmd::trim, cmd::cache,
                                      cmd::write_zeroes, cmd::block_status, cmd::disc),
      rc::gen::inRange<std::uint32_t>(0, 120), rc::gen::inRange<std::uint32_t>(1, 8), rc::gen::arbitrary<bool>());
}

rc::Gen<Step> gen_connect() {
  return rc::gen::apply([](std::uint8_t style, bool list, bool info) { return Step{step::ClientConnects{style, list, info}}; },
                        rc::gen::inRange<std::uint8_t>(0, 3), rc::gen::arbitrary<bool>(), rc::gen::arbitrary<bool>());
}

rc::Gen<Step> gen_step() {
  using rc::gen::just;
  using rc::gen::map;
  return rc::gen::weightedOneOf<Step>({
      {2, gen_connect()},
      {8, gen_send()},
      {6, map(rc::gen::inRange<std::uint32_t>(0, 8), [](std::uint32_t k) { return Step{step::PluginFinishes{k}}; })},
      {2, map(rc::gen::element(std::uint64_t{1000}, std::uint64_t{1000000}, std::uint64_t{500000000}, std::uint64_t{999000000}, std::uint64_t{2000000000}),
              [](std::uint64_t ns) { return Step{step::AdvanceTime{ns}}; })},
      {1, just(Step{step::ServerShutdown{}})},
      {2, rc::gen::apply([](std::uint32_t c, bool f) { return Step{step::PluginDisconnect{c, f}}; },
                         rc::gen::inRange<std::uint32_t>(1, 4), rc::gen::arbitrary<bool>())},
      {1, rc::gen::apply([](std::uint32_t c, bool r) { return Step{step::PeerCloses{c, r}}; },
                         rc::gen::inRange<std::uint32_t>(1, 4), rc::gen::arbitrary<bool>())},
  });
}

std::string report(const Scenario& sc, const Outcome& out) {
  std::ostringstream os;
  os << to_string(out.kind);
  if (out.violation) os << " " << out.violation->invariant << " conn=" << out.violation->conn << ": " << out.violation->message;
  else os << " " << out.reason;
  os << "\nscenario (save as FILE, replay with nbdd-sim --scenario=FILE --trace=full):\n" << to_text(sc);
  return os.str();
}

RC_GTEST_PROP(ShutdownRaces, EveryScenarioKeepsEveryInvariantAndEnds, ()) {
  Scenario sc;
  sc.thread_model = *rc::gen::element(core::ThreadModel::parallel, core::ThreadModel::serialize_requests,
                                      core::ThreadModel::serialize_all_requests,
                                      core::ThreadModel::serialize_connections);
  // Half the scenarios hold the plugin's preconnect/list_exports/open/close until a
  // `finish`, so shutdowns, disconnects and peers closing race with the handshake's calls.
  sc.hold_lifecycle = *rc::gen::arbitrary<bool>();
  sc.steps.push_back(*gen_connect());
  const auto more = *rc::gen::container<std::vector<Step>>(gen_step());
  sc.steps.insert(sc.steps.end(), more.begin(), more.end());
  const Outcome out = run_scenario(sc, false, nullptr);
  RC_LOG() << report(sc, out);
  RC_CLASSIFY(out.marks.count("eshutdown_reply") > 0, "eshutdown");
  RC_CLASSIFY(out.marks.count("close_abort") > 0, "forced");
  RC_CLASSIFY(out.marks.count("shutdown_during_open") + out.marks.count("shutdown_with_open_queued") > 0,
              "shutdown during open");
  RC_ASSERT(out.kind == OutcomeKind::ok);
}

RC_GTEST_PROP(ShutdownRaces, ScenariosReplayToTheSameTrace, ()) {
  Scenario sc;
  sc.hold_lifecycle = *rc::gen::arbitrary<bool>();
  sc.steps.push_back(*gen_connect());
  const auto more = *rc::gen::container<std::vector<Step>>(gen_step());
  sc.steps.insert(sc.steps.end(), more.begin(), more.end());
  const Outcome a = run_scenario(sc, false, nullptr);
  std::string err;
  auto again = parse_scenario(to_text(sc), &err);
  RC_ASSERT(again.has_value());
  const Outcome b = run_scenario(*again, false, nullptr);
  RC_ASSERT(a.trace_hash == b.trace_hash);
}

// A hand-written race worth keeping as a fixed example: graceful shutdown while a WRITE is
// running and a READ is queued behind it, then the forcing signal.
TEST(ShutdownRaces, GracefulThenForcedWithWorkInFlight) {
  std::string err;
  auto sc = parse_scenario(
      "thread_model serialize_requests\n"
      "connect structured\n"
      "send 1 WRITE 0 4096\n"
      "send 1 READ 0 4096\n"
      "shutdown\n"
      "send 1 READ 512 512\n"
      "finish 0\n"
      "shutdown\n"
      "finish 0\n",
      &err);
  ASSERT_TRUE(sc) << err;
  const Outcome out = run_scenario(*sc, false, nullptr);
  EXPECT_EQ(out.kind, OutcomeKind::ok) << report(*sc, out);
  EXPECT_GT(out.marks.count("eshutdown_reply"), 0u);
}

// Shutdown while GO's open runs (issue 21): the GO is refused with ERR_SHUTDOWN and the
// handle it opened is closed; the client never reaches transmission.
TEST(ShutdownRaces, ShutdownWhileGoOpenRuns) {
  std::string err;
  auto sc = parse_scenario(
      "thread_model parallel\n"
      "hold_lifecycle\n"
      "connect structured info\n"
      "finish 0\n"  // preconnect
      "finish 0\n"  // INFO's open
      "finish 0\n"  // INFO's close; GO's open starts and is held
      "shutdown\n"
      "finish 0\n",  // GO's open returns
      &err);
  ASSERT_TRUE(sc) << err;
  const Outcome out = run_scenario(*sc, false, nullptr);
  EXPECT_EQ(out.kind, OutcomeKind::ok) << report(*sc, out);
  EXPECT_GT(out.marks.count("shutdown_during_open"), 0u) << report(*sc, out);
  EXPECT_GT(out.marks.count("err_shutdown_after_running_open"), 0u) << report(*sc, out);
  EXPECT_EQ(out.marks.count("client_in_transmission"), 0u);
}

}  // namespace
}  // namespace nbdd::sim
