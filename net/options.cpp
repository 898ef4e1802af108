#include "net/options.hpp"

#include "nbdd_version.hpp"  // generated: cmake/version.cmake

#include <charconv>
#include <cstdint>
#include <string_view>

namespace nbdd::net {
namespace {

bool parse_unsigned(std::string_view text, std::uint64_t max, std::uint64_t& out) {
  if (text.empty()) return false;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc{} && ptr == end && out <= max;
}

// Options that take a value; the rest are flags.
struct Spec {
  char short_name;  // 0 = long only
  std::string_view long_name;
  bool takes_value;
};

constexpr Spec specs[] = {
    {'f', "foreground", false},   {'r', "readonly", false},   {'s', "single", false},
    {'v', "verbose", false},      {'V', "version", false},    {'n', "newstyle", false},
    {'o', "oldstyle", false},     {'e', "exportname", true},  {'t', "threads", true},
    {'p', "port", true},          {'i', "ipaddr", true},      {'U', "unix", true},
    {'P', "pidfile", true},       {'D', "debug", true},       {0, "run", true},
    {0, "exit-with-parent", false}, {0, "log", true},         {0, "dump-plugin", false},
    {0, "help", false},           {0, "max-connections", true}, {0, "grace-period", true},
    {0, "handshake-timeout", true}, {0, "filter", true},      {0, "tls", true},
    {0, "busy-poll", true},
};

const Spec* find_short(char c) {
  for (const auto& s : specs)
    if (s.short_name == c) return &s;
  return nullptr;
}
const Spec* find_long(std::string_view name) {
  for (const auto& s : specs)
    if (s.long_name == name) return &s;
  return nullptr;
}

// Applies one option; returns an error message or "".
std::string apply(Options& o, const Spec& spec, const std::string& value) {
  const std::string_view n = spec.long_name;
  const std::string shown = spec.short_name ? std::string("-") + spec.short_name : "--" + std::string(n);
  if (n == "foreground") o.foreground = true;
  else if (n == "readonly") o.readonly = true;
  else if (n == "single") o.single = true;
  else if (n == "verbose") o.verbose = true;
  else if (n == "version") o.version = true;
  else if (n == "newstyle") {}
  else if (n == "oldstyle") return "oldstyle protocol (-o) is not supported";
  else if (n == "exportname") o.exportname = value;
  else if (n == "threads") {
    std::uint64_t t = 0;
    if (!parse_unsigned(value, 1024, t) || t == 0) return shown + ": bad thread count '" + value + "' (1..1024)";
    o.threads = static_cast<unsigned>(t);
  } else if (n == "port") {
    std::uint64_t p = 0;
    if (!parse_unsigned(value, 65535, p)) return shown + ": bad port '" + value + "'";
    o.port = value;
  } else if (n == "ipaddr") o.ipaddr = value;
  else if (n == "unix") {
    if (value.empty()) return shown + ": empty socket path";
    o.unix_path = value;
  } else if (n == "pidfile") o.pidfile = value;
  else if (n == "debug") {}  // nbdkit's -D plugin.flag=N: accepted and ignored
  else if (n == "run") o.run = value;
  else if (n == "exit-with-parent") o.exit_with_parent = true;
  else if (n == "log") {
    if (value == "stderr") o.log = LogDestination::stderr_log;
    else if (value == "syslog") o.log = LogDestination::syslog_log;
    else if (value == "default") o.log = LogDestination::automatic;
    else return "--log: expected stderr, syslog or default, got '" + value + "'";
  } else if (n == "dump-plugin") o.dump_plugin = true;
  else if (n == "help") o.help = true;
  else if (n == "max-connections") {
    std::uint64_t m = 0;
    if (!parse_unsigned(value, 1u << 20, m)) return "--max-connections: bad number '" + value + "'";
    o.max_connections = static_cast<std::size_t>(m);
  } else if (n == "grace-period" || n == "handshake-timeout") {
    const auto d = parse_duration(value);
    if (!d) return "--" + std::string(n) + ": bad duration '" + value + "' (e.g. 1, 1.5, 500ms)";
    (n == "grace-period" ? o.grace_period : o.handshake_timeout) = *d;
  } else if (n == "busy-poll") {
    std::uint64_t us = 0;
    if (!parse_unsigned(value, 10'000, us)) return "--busy-poll: bad number of microseconds '" + value + "' (0..10000)";
    o.busy_poll_us = static_cast<unsigned>(us);
  } else if (n == "filter") {
    if (value.empty()) return "--filter: empty filter name";
    o.filters.push_back(value);  // nbdkit's order: the first --filter is the outermost
  }
  else if (n == "tls") {
    if (value != "off") return "--tls: TLS is not supported by nbdd (only --tls=off)";
  }
  return {};
}

// Validates combinations once everything is parsed.
std::string check(const Options& o) {
  if (o.help || o.version) return {};
  if (o.plugin.empty()) return "no plugin given (usage: nbdd [OPTIONS] PLUGIN [KEY=VALUE...])";
  if (o.dump_plugin) return {};
  if (o.single && (o.port || o.ipaddr || o.unix_path))
    return "-s cannot be combined with -p, -i or -U";
  if (o.single && o.run) return "-s cannot be combined with --run";
  // -U together with -p/-i serves both (an nbdd extension; nbdkit allows one).
  return {};
}

}  // namespace

bool Options::wants_tcp() const {
  if (single) return false;
  if (port || ipaddr) return true;
  return !unix_path && !run;
}

std::optional<core::Duration> parse_duration(const std::string& text) {
  std::string_view t = text;
  std::uint64_t scale_ns = 1'000'000'000;
  if (t.size() > 2 && t.substr(t.size() - 2) == "ms") {
    scale_ns = 1'000'000;
    t.remove_suffix(2);
  } else if (t.size() > 1 && t.back() == 's') {
    t.remove_suffix(1);
  }
  const auto dot = t.find('.');
  std::uint64_t whole = 0;
  if (!parse_unsigned(t.substr(0, dot), 1'000'000, whole)) return std::nullopt;
  std::uint64_t ns = whole * scale_ns;
  if (dot != std::string_view::npos) {
    std::string_view frac = t.substr(dot + 1);
    if (frac.empty() || frac.size() > 9) return std::nullopt;
    std::uint64_t f = 0;
    if (!parse_unsigned(frac, 999'999'999, f)) return std::nullopt;
    std::uint64_t denom = 1;
    for (std::size_t i = 0; i < frac.size(); ++i) denom *= 10;
    ns += f * scale_ns / denom;
  }
  return core::Duration{ns};
}

ParseResult parse_options(const std::vector<std::string>& args) {
  ParseResult r;
  Options& o = r.options;
  std::size_t i = 1;
  auto take_value = [&](std::string& value, std::string_view shown) -> bool {
    if (i + 1 >= args.size()) {
      r.error = std::string(shown) + ": option requires an argument";
      return false;
    }
    value = args[++i];
    return true;
  };
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") { ++i; break; }
    if (a.size() < 2 || a[0] != '-') break;  // the plugin name
    if (a[1] == '-') {
      const auto eq = a.find('=');
      const std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      const Spec* spec = find_long(name);
      if (!spec) { r.error = "unknown option '--" + name + "' (see nbdd --help)"; return r; }
      std::string value;
      if (spec->takes_value) {
        if (eq != std::string::npos) value = a.substr(eq + 1);
        else if (!take_value(value, "--" + name)) return r;
      } else if (eq != std::string::npos) {
        r.error = "option '--" + name + "' takes no argument";
        return r;
      }
      if (r.error = apply(o, *spec, value); !r.error.empty()) return r;
      continue;
    }
    for (std::size_t k = 1; k < a.size(); ++k) {  // bundled short flags: -fv, -p10809
      const Spec* spec = find_short(a[k]);
      if (!spec) { r.error = std::string("unknown option '-") + a[k] + "' (see nbdd --help)"; return r; }
      std::string value;
      if (spec->takes_value) {
        if (k + 1 < a.size()) value = a.substr(k + 1);
        else if (!take_value(value, std::string("-") + a[k])) return r;
        k = a.size();
      }
      if (r.error = apply(o, *spec, value); !r.error.empty()) return r;
    }
  }
  if (i < args.size()) {
    o.plugin = args[i];
    o.plugin_args.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
  }
  r.error = check(o);
  return r;
}

ParseResult parse_options(int argc, const char* const* argv) {
  std::vector<std::string> args(argv, argv + argc);
  return parse_options(args);
}

std::string version_text() { return "nbdd " NBDD_VERSION " (git " NBDD_GIT_REVISION ")\n"; }

std::string usage_text() {
  return R"(usage: nbdd [OPTIONS] PLUGIN [[KEY=]VALUE...]

Serve PLUGIN over NBD (options and meanings as nbdkit's).

  -e, --exportname=NAME   name of the default export (also $exportname/$uri for --run)
      --filter=FILTER     put nbdkit's FILTER (a name in nbdkit's filter directory, or
                          the path of a .so) in front of the plugin; repeatable, the
                          first is the outermost (docs/nbdkit-plugins.md)
  -f, --foreground        do not fork into the background
  -i, --ipaddr=ADDR       listen on this address only (default: all, IPv4 and IPv6)
  -p, --port=PORT         TCP port (default 10809)
  -P, --pidfile=FILE      write the daemon's pid to FILE once listening
  -r, --readonly          serve every export read-only
  -s, --single            serve one client on stdin/stdout, then exit
  -t, --threads=N         plugin worker threads (default 16)
  -U, --unix=PATH         listen on a Unix socket ('-' = private temporary socket)
  -v, --verbose           debug log: every input and action of every connection
  -V, --version           print the version and git revision and exit
      --run=CMD           captive mode: run CMD ($uri $nbd $unixsocket $port $exportname),
                          shut down when it exits and exit with its status
      --exit-with-parent  shut down when the parent process exits
      --log=stderr|syslog where log lines go (default: stderr in foreground, else syslog)
      --dump-plugin       print information about PLUGIN and exit
      --max-connections=N refuse clients beyond N at once (default: unlimited)
      --grace-period=DUR  graceful disconnect/shutdown: how long an idle client has to
                          disconnect before it is closed (default 1s; e.g. 500ms, 2.5)
      --handshake-timeout=DUR  close clients that do not finish the handshake (default 10s)
      --busy-poll=USEC    I/O threads spin up to USEC microseconds for the next request
                          before sleeping, adapting to the load: lower latency for
                          one-at-a-time clients, for more CPU (default 300; 0 = never)
      --help              this text (with PLUGIN: also the plugin's parameters)

Systemd socket activation (LISTEN_PID/LISTEN_FDS) is used when present.
)";
}

}  // namespace nbdd::net
