// sim::Step: one move of a scenario — a race written down. RapidCheck generates
// std::vector<Step> (tests/props/), the World interprets it deterministically
// (World::run_scenario), and the text form below is what `nbdd-sim --scenario=FILE` reads,
// so a shrunk counterexample can be replayed outside GoogleTest.
//
// Text, one step per line ('#' starts a comment):
//   thread_model parallel|serialize_requests|serialize_all_requests|serialize_connections
//   hold_lifecycle                            the plugin's preconnect/list_exports/open/close
//                                             are held like data calls (until a `finish`)
//   connect simple|structured|extended [list] [info]
//                                             a scripted client connects and handshakes
//                                             (LIST first, INFO before its GO, if asked)
//   send C READ|WRITE|FLUSH|TRIM|CACHE|WRITE_ZEROES|BLOCK_STATUS|DISC OFFSET LENGTH [FLAGS]
//   finish K                                  the plugin completes held call K (mod count)
//   advance NS                                virtual time passes
//   shutdown                                  server-wide graceful shutdown (a signal)
//   disconnect C graceful|force               the plugin's disconnect() on client C's connection
//   peer_close C fin|reset                    client C goes away
// After each step the world settles for 1 ms of virtual time (network round trips), with
// plugin data calls (and, with hold_lifecycle, lifecycle calls) held until a `finish`. After the last step faults stop, held calls
// complete, shutdown is requested, and everything must end (liveness).
#pragma once
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/thread_model.hpp"

namespace nbdd::sim {

namespace step {
struct ClientConnects {
  std::uint8_t style = 1;  // 0 simple, 1 structured, 2 extended
  bool list = false;       // NBD_OPT_LIST first
  bool info = false;       // NBD_OPT_INFO for the export before its GO
};
struct ClientSends {
  std::uint32_t client = 1;
  std::uint16_t command = 0;  // NBD_CMD_*
  std::uint32_t offset = 0;
  std::uint32_t length = 0;
  std::uint16_t flags = 0;
};
struct PluginFinishes { std::uint32_t k = 0; };
struct AdvanceTime { std::uint64_t ns = 0; };
struct ServerShutdown {};
struct PluginDisconnect { std::uint32_t client = 1; bool force = false; };
struct PeerCloses { std::uint32_t client = 1; bool reset = false; };
}  // namespace step

struct Step {
  std::variant<step::ClientConnects, step::ClientSends, step::PluginFinishes, step::AdvanceTime,
               step::ServerShutdown, step::PluginDisconnect, step::PeerCloses>
      v;
};

struct Scenario {
  core::ThreadModel thread_model = core::ThreadModel::parallel;
  bool hold_lifecycle = false;
  std::vector<Step> steps;
};

std::ostream& operator<<(std::ostream& os, const Step& step);
std::string to_text(const Scenario& scenario);
std::optional<Scenario> parse_scenario(std::string_view text, std::string* error);

}  // namespace nbdd::sim
