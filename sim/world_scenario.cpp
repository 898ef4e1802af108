// World::run_scenario: interpret a Step list (scenario.hpp) deterministically.
#include <cstdio>
#include <sstream>

#include "sim/scenario.hpp"
#include "sim/world.hpp"

namespace nbdd::sim {

namespace {
constexpr core::Duration settle = core::Duration::from_ms(1);
}

void World::apply(const Step& s) {
  trace_.record(now(), 0, "stp", [&] {
    std::ostringstream os;
    os << s;
    return os.str();
  }());
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, step::ClientConnects>) {
          const auto index = static_cast<std::uint32_t>(clients_.size() + 1);
          clients_.push_back(std::make_unique<SimClient>(*this, index, client_prng_.fork(), profile_, true,
                                                         static_cast<SimClient::Style>(v.style % 3)));
          clients_.back()->script_options(v.list, v.info);
          clients_.back()->start();
        } else if constexpr (std::is_same_v<T, step::ClientSends>) {
          if (clients_.empty()) return;
          SimClient& c = *clients_[(v.client - 1) % clients_.size()];
          if (c.send_command(v.command, v.offset, v.length, v.flags)) marks_.hit("scenario_send");
        } else if constexpr (std::is_same_v<T, step::PluginFinishes>) {
          if (held_.empty()) return;
          const std::size_t k = v.k % held_.size();
          HeldCall h = held_[k];
          held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(k));
          complete_call(h.id, h.slot, h.call);
        } else if constexpr (std::is_same_v<T, step::AdvanceTime>) {
          loop(now() + core::Duration{v.ns});
        } else if constexpr (std::is_same_v<T, step::ServerShutdown>) {
          request_shutdown("scenario");
        } else if constexpr (std::is_same_v<T, step::PluginDisconnect>) {
          if (clients_.empty()) return;
          const auto index = static_cast<std::uint32_t>((v.client - 1) % clients_.size() + 1);
          auto it = client_conn_.find(index);
          if (it != client_conn_.end()) feed(it->second, core::input::DisconnectRequested{v.force});
        } else if constexpr (std::is_same_v<T, step::PeerCloses>) {
          if (clients_.empty()) return;
          clients_[(v.client - 1) % clients_.size()]->vanish(v.reset);
        }
      },
      s.v);
}

Outcome World::run_scenario(const std::vector<Step>& steps) {
  for (const auto& s : steps) {
    if (stopped_ || exited_) break;
    apply(s);
    if (checker_->violation() || client_failure_) break;
    if (!loop(now() + settle)) break;
  }
  if (!stopped_ && !exited_ && !checker_->violation() && !client_failure_) {
    end_faults();
    loop(std::nullopt);
  }
  return conclude();
}

Outcome run_scenario(const Scenario& scenario, bool full_trace, std::FILE* report) {
  FaultProfile f;
  f.seed = 1;
  f.clients = 0;
  f.export_bytes = 64 * 1024;
  f.thread_model = scenario.thread_model;
  f.can_fast_zero = true;
  f.net_delay_min_ns = f.net_delay_max_ns = 1000;
  f.latency_min_ns = f.latency_max_ns = 1000;
  f.think_max_ns = 0;
  f.faults_end_ns = ~0ull;
  WorldOptions opt;
  opt.full_trace = full_trace;
  opt.scripted = true;
  opt.hold_lifecycle = scenario.hold_lifecycle;
  World world(f, opt);
  Outcome out = world.run_scenario(scenario.steps);
  if (report && out.kind != OutcomeKind::ok) print_failure(report, out, world.trace_ref(), "nbdd-sim --scenario=FILE --trace=full");
  return out;
}

}  // namespace nbdd::sim
