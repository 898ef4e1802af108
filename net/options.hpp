// The nbdkit-compatible command line: `nbdd [OPTIONS] PLUGIN [KEY=VALUE...]`.
// Pure parsing (no I/O, no globals) so tests/net can check every flag.
// As nbdkit's getopt_long (its option string has no leading '+'), options may appear
// anywhere on the line, after the plugin name too (`nbdd file x.img -r`): the words that are
// not options, in their order, are the plugin name and then its arguments. `--` ends the
// options; with POSIXLY_CORRECT set, so does the first word that is not an option (glibc's
// rule). Long options may be abbreviated to any unambiguous prefix (`--fore`).
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "core/time.hpp"
#include "net/busy_poll.hpp"
#include "net/io_uring_use.hpp"

namespace nbdd::net {

enum class LogDestination { automatic, stderr_log, syslog_log, null_log };
enum class AddressFamily { any, ipv4, ipv6 };  // -4 / -6

// Options that print something and exit at once, when the parser meets them (as nbdkit's
// getopt loop does): whatever follows is not parsed.
enum class ImmediateAction { none, dump_config, long_options, short_options };

struct Options {
  bool foreground = false;        // -f
  bool readonly = false;          // -r
  bool single = false;            // -s: one client on stdin/stdout
  bool verbose = false;           // -v
  bool exit_with_parent = false;  // --exit-with-parent
  bool dump_plugin = false;       // --dump-plugin
  bool help = false;              // --help
  bool version = false;           // -V
  bool swap = false;              // --swap: mlockall before serving
  ImmediateAction immediate = ImmediateAction::none;
  std::optional<std::string> exportname;  // -e
  unsigned threads = 16;                  // -t (nbdkit's default; -t 0 means the default)
  std::optional<std::string> port;        // -p
  std::optional<std::string> ipaddr;      // -i
  AddressFamily family = AddressFamily::any;  // -4 / -6
  std::optional<std::string> unix_path;   // -U ("-" = private temporary socket)
  std::optional<std::string> pidfile;     // -P
  std::optional<std::string> run;         // --run
  std::optional<std::string> user;        // -u: after listening, before serving
  std::optional<std::string> group;       // -g
  std::vector<std::string> debug_flags;   // -D NAME.FLAG=N, checked for nbdkit's syntax
  LogDestination log = LogDestination::automatic;
  std::size_t max_connections = 0;  // --max-connections (0 = unlimited)
  core::Duration grace_period = core::Duration::from_s(1);       // --grace-period
  core::Duration handshake_timeout = core::Duration::from_s(10);  // --handshake-timeout
  unsigned busy_poll_us = busy_poll_default.count();  // --busy-poll: longest spin of an I/O thread
  IoUringUse io_uring = IoUringUse::unix_only;  // --io-uring=unix|on|off (net/io_uring_use.hpp)
  // TLS (nbdkit's meanings; net/tls_*.cpp uses them).
  enum class Tls { off, on, require } tls = Tls::off;  // --tls=off|on|require
  bool tls_given = false;  // --tls was on the command line (nbdkit falls back to off only when not)
  std::optional<std::string> tls_certificates;  // --tls-certificates=DIR (absent: nbdkit's default dirs)
  std::optional<std::string> tls_psk;           // --tls-psk=FILE (psktool's username:hexkey lines)
  bool tls_verify_peer = false;                 // --tls-verify-peer
  std::uint16_t handshake_flags_mask = 0xffff;  // --mask-handshake=MASK
  bool no_structured_replies = false;           // --no-sr
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

// args[0] is the program. posixly_correct: stop at the first word that is not an option
// (glibc's getopt under POSIXLY_CORRECT); the argc/argv form reads that variable.
ParseResult parse_options(const std::vector<std::string>& args, bool posixly_correct = false);
ParseResult parse_options(int argc, const char* const* argv);

// "1", "1s", "250ms", "1.5" (seconds) -> Duration; nullopt when malformed.
std::optional<core::Duration> parse_duration(const std::string& text);

std::string usage_text();
std::string version_text();
// --long-options / --short-options: nbdkit's lists (one option a line), as nbdd accepts them.
std::string long_options_text();
std::string short_options_text();

}  // namespace nbdd::net
