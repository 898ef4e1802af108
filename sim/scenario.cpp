#include "sim/scenario.hpp"

#include <array>
#include <sstream>

#include "sim/wire.hpp"

namespace nbdd::sim {

namespace {
constexpr std::array<const char*, 3> styles{"simple", "structured", "extended"};
constexpr std::array<core::ThreadModel, 4> models{core::ThreadModel::parallel, core::ThreadModel::serialize_requests,
                                                  core::ThreadModel::serialize_all_requests,
                                                  core::ThreadModel::serialize_connections};
const char* model_name(core::ThreadModel m) {
  switch (m) {
    case core::ThreadModel::parallel: return "parallel";
    case core::ThreadModel::serialize_requests: return "serialize_requests";
    case core::ThreadModel::serialize_all_requests: return "serialize_all_requests";
    case core::ThreadModel::serialize_connections: return "serialize_connections";
  }
  return "?";
}
}  // namespace

std::ostream& operator<<(std::ostream& os, const Step& s) {
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, step::ClientConnects>)
          os << "connect " << styles[v.style % 3] << (v.list ? " list" : "") << (v.info ? " info" : "");
        else if constexpr (std::is_same_v<T, step::ClientSends>)
          os << "send " << v.client << ' ' << wire::command_name(v.command) << ' ' << v.offset << ' ' << v.length << ' '
             << v.flags;
        else if constexpr (std::is_same_v<T, step::PluginFinishes>) os << "finish " << v.k;
        else if constexpr (std::is_same_v<T, step::AdvanceTime>) os << "advance " << v.ns;
        else if constexpr (std::is_same_v<T, step::ServerShutdown>) os << "shutdown";
        else if constexpr (std::is_same_v<T, step::PluginDisconnect>)
          os << "disconnect " << v.client << (v.force ? " force" : " graceful");
        else if constexpr (std::is_same_v<T, step::PeerCloses>) os << "peer_close " << v.client << (v.reset ? " reset" : " fin");
      },
      s.v);
  return os;
}

std::string to_text(const Scenario& sc) {
  std::ostringstream os;
  os << "thread_model " << model_name(sc.thread_model) << '\n';
  if (sc.hold_lifecycle) os << "hold_lifecycle\n";
  for (const auto& s : sc.steps) os << s << '\n';
  return os.str();
}

std::optional<Scenario> parse_scenario(std::string_view text, std::string* error) {
  Scenario sc;
  std::istringstream in{std::string(text)};
  std::string line;
  int lineno = 0;
  auto bad = [&](const std::string& why) -> std::optional<Scenario> {
    if (error) *error = "line " + std::to_string(lineno) + ": " + why;
    return std::nullopt;
  };
  while (std::getline(in, line)) {
    ++lineno;
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream ls(line);
    std::string word;
    if (!(ls >> word)) continue;
    if (word == "thread_model") {
      std::string m;
      ls >> m;
      bool found = false;
      for (auto model : models)
        if (m == model_name(model)) sc.thread_model = model, found = true;
      if (!found) return bad("unknown thread model " + m);
    } else if (word == "hold_lifecycle") {
      sc.hold_lifecycle = true;
    } else if (word == "connect") {
      std::string s;
      ls >> s;
      step::ClientConnects c;
      c.style = s == "simple" ? 0 : s == "extended" ? 2 : 1;
      for (std::string extra; ls >> extra;) {
        if (extra == "list") c.list = true;
        else if (extra == "info") c.info = true;
        else return bad("connect STYLE [list] [info]");
      }
      sc.steps.push_back({c});
    } else if (word == "send") {
      step::ClientSends c;
      std::string cmd;
      if (!(ls >> c.client >> cmd >> c.offset >> c.length)) return bad("send C CMD OFFSET LENGTH [FLAGS]");
      ls >> c.flags;
      bool found = false;
      for (std::uint16_t t = 0; t <= 7; ++t)
        if (cmd == wire::command_name(t)) c.command = t, found = true;
      if (!found) return bad("unknown command " + cmd);
      sc.steps.push_back({c});
    } else if (word == "finish") {
      step::PluginFinishes f;
      if (!(ls >> f.k)) return bad("finish K");
      sc.steps.push_back({f});
    } else if (word == "advance") {
      step::AdvanceTime a;
      if (!(ls >> a.ns)) return bad("advance NS");
      sc.steps.push_back({a});
    } else if (word == "shutdown") {
      sc.steps.push_back({step::ServerShutdown{}});
    } else if (word == "disconnect") {
      step::PluginDisconnect d;
      std::string how;
      if (!(ls >> d.client >> how)) return bad("disconnect C graceful|force");
      d.force = how == "force";
      sc.steps.push_back({d});
    } else if (word == "peer_close") {
      step::PeerCloses p;
      std::string how;
      if (!(ls >> p.client >> how)) return bad("peer_close C fin|reset");
      p.reset = how == "reset";
      sc.steps.push_back({p});
    } else {
      return bad("unknown step " + word);
    }
  }
  return sc;
}

}  // namespace nbdd::sim
