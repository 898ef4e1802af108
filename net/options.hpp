// The nbdkit-compatible command line: `nbdd [OPTIONS] PLUGIN [KEY=VALUE...]`.
// Pure parsing (no I/O, no globals) so tests/net can check every flag.
// Options come before the plugin name (as nbdkit's getopt "+..." string); everything after
// it is handed to the plugin verbatim (a bare first argument is its magic key).
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "core/time.hpp"
#include "net/busy_poll.hpp"

namespace nbdd::net {

enum class LogDestination { automatic, stderr_log, syslog_log };

struct Options {
  bool foreground = false;        // -f
  bool readonly = false;          // -r
  bool single = false;            // -s: one client on stdin/stdout
  bool verbose = false;           // -v
  bool exit_with_parent = false;  // --exit-with-parent
  bool dump_plugin = false;       // --dump-plugin
  bool help = false;              // --help
  bool version = false;           // -V
  std::optional<std::string> exportname;  // -e
  unsigned threads = 16;                  // -t (nbdkit's default)
  std::optional<std::string> port;        // -p
  std::optional<std::string> ipaddr;      // -i
  std::optional<std::string> unix_path;   // -U ("-" = private temporary socket)
  std::optional<std::string> pidfile;     // -P
  std::optional<std::string> run;         // --run
  LogDestination log = LogDestination::automatic;
  std::size_t max_connections = 0;  // --max-connections (0 = unlimited)
  core::Duration grace_period = core::Duration::from_s(1);       // --grace-period
  core::Duration handshake_timeout = core::Duration::from_s(10);  // --handshake-timeout
  unsigned busy_poll_us = busy_poll_default.count();  // --busy-poll: longest spin of an I/O thread
  // TLS (nbdkit's meanings; net/tls_*.cpp uses them).
  enum class Tls { off, on, require } tls = Tls::off;  // --tls=off|on|require
  std::optional<std::string> tls_certificates;  // --tls-certificates=DIR (absent: nbdkit's default dirs)
  std::optional<std::string> tls_psk;           // --tls-psk=FILE (psktool's username:hexkey lines)
  bool tls_verify_peer = false;                 // --tls-verify-peer
  // --exit-timeout: once shutdown is forced (a second signal, or the grace period ran out),
  // how long nbdd waits for stuck plugin calls before it exits without unload (status 3).
  core::Duration exit_timeout = core::Duration::from_s(2);
  std::vector<std::string> filters;       // --filter=NAME|PATH, in order: the first is the outermost
  std::string plugin;
  std::vector<std::string> plugin_args;

  // Whether to serve TCP (explicit -p/-i, or no other transport chosen).
  bool wants_tcp() const;
};

struct ParseResult {
  Options options;
  std::string error;  // empty on success; otherwise names what was wrong
  bool ok() const { return error.empty(); }
};

ParseResult parse_options(const std::vector<std::string>& args);  // args[0] is the program
ParseResult parse_options(int argc, const char* const* argv);

// "1", "1s", "250ms", "1.5" (seconds) -> Duration; nullopt when malformed.
std::optional<core::Duration> parse_duration(const std::string& text);

std::string usage_text();
std::string version_text();

}  // namespace nbdd::net
