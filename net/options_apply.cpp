// What each command-line option does: nbdkit 1.32's option table (names, aliases, which take
// a value) and nbdd's own options. Every nbdkit option either works or is refused with a
// message that names it; none is silently ignored.
#include <cerrno>
#include <cstdlib>
#include <strings.h>

#include "net/options_table.hpp"

namespace nbdd::net {
namespace {

constexpr OptionSpec table[] = {
    // nbdkit 1.32's long_options, in its order (server/options.h).
    {'4', "ipv4-only", false, "ipv4-only"},
    {'6', "ipv6-only", false, "ipv6-only"},
    {'D', "debug", true, "debug"},
    {0, "dump-config", false, "dump-config"},
    {0, "dump-plugin", false, "dump-plugin"},
    {0, "exit-with-parent", false, "exit-with-parent"},
    {'e', "export", true, "exportname"},
    {0, "export-name", true, "exportname"},
    {0, "exportname", true, "exportname"},
    {0, "filter", true, "filter"},
    {'f', "foreground", false, "foreground"},
    {0, "no-fork", false, "foreground"},
    {'g', "group", true, "group"},
    {0, "help", false, "help"},
    {'i', "ip-addr", true, "ipaddr"},
    {0, "ipaddr", true, "ipaddr"},
    {0, "log", true, "log"},
    {0, "long-options", false, "long-options"},
    {0, "mask-handshake", true, "mask-handshake"},
    {'n', "new-style", false, "newstyle"},
    {0, "newstyle", false, "newstyle"},
    {0, "no-sr", false, "no-sr"},
    {'o', "old-style", false, "oldstyle"},
    {0, "oldstyle", false, "oldstyle"},
    {'P', "pid-file", true, "pidfile"},
    {0, "pidfile", true, "pidfile"},
    {'p', "port", true, "port"},
    {'r', "read-only", false, "readonly"},
    {0, "readonly", false, "readonly"},
    {0, "run", true, "run"},
    {0, "selinux-label", true, "selinux-label"},
    {0, "short-options", false, "short-options"},
    {'s', "single", false, "single"},
    {0, "stdin", false, "single"},
    {0, "swap", false, "swap"},
    {'t', "threads", true, "threads"},
    {0, "tls", true, "tls"},
    {0, "tls-certificates", true, "tls-certificates"},
    {0, "tls-psk", true, "tls-psk"},
    {0, "tls-verify-peer", false, "tls-verify-peer"},
    {'U', "unix", true, "unix"},
    {'u', "user", true, "user"},
    {'v', "verbose", false, "verbose"},
    {'V', "version", false, "version"},
    {0, "vsock", false, "vsock"},
    // nbdd's own.
    {0, "busy-poll", true, "busy-poll", true},
    {0, "io-uring", true, "io-uring", true},
    {0, "exit-timeout", true, "exit-timeout", true},
    {0, "grace-period", true, "grace-period", true},
    {0, "handshake-timeout", true, "handshake-timeout", true},
    {0, "max-connections", true, "max-connections", true},
};

// nbdkit_parse_unsigned's rules: leading blanks, no sign, C's bases (0x10, 010), nothing after.
bool parse_c_unsigned(const std::string& text, std::uint64_t max, std::uint64_t& out) {
  std::size_t start = text.find_first_not_of(" \t\n\v\f\r");
  if (start == std::string::npos || text[start] == '-' || text[start] == '+') return false;
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text.c_str() + start, &end, 0);
  if (errno != 0 || end == text.c_str() + start || *end != '\0' || v > max) return false;
  out = v;
  return true;
}

// nbdkit_parse_bool: 1/true/t/yes/y/on, 0/false/f/no/n/off, any case. -1 if neither.
int parse_bool(const std::string& text) {
  for (const char* yes : {"1", "true", "t", "yes", "y", "on"})
    if (::strcasecmp(text.c_str(), yes) == 0) return 1;
  for (const char* no : {"0", "false", "f", "no", "n", "off"})
    if (::strcasecmp(text.c_str(), no) == 0) return 0;
  return -1;
}

// -D NAME.FLAG=N (nbdkit's debug-flags.c syntax).
bool valid_debug_flag(const std::string& text) {
  const auto dot = text.find('.');
  const auto eq = text.find('=', dot == std::string::npos ? 0 : dot);
  if (dot == 0 || dot == std::string::npos || eq == std::string::npos || eq == dot + 1 || eq + 1 == text.size())
    return false;
  char* end = nullptr;
  errno = 0;
  (void)std::strtol(text.c_str() + eq + 1, &end, 0);
  return errno == 0 && *end == '\0';
}

std::string not_supported(const std::string& shown, const std::string& why) {
  return shown + " is not supported by nbdd" + (why.empty() ? std::string() : " (" + why + ")");
}

}  // namespace

std::span<const OptionSpec> option_table() { return table; }

std::string apply_option(Options& o, const OptionSpec& spec, const std::string& shown, const std::string& value) {
  const std::string_view n = spec.id;
  if (n == "ipv4-only") o.family = AddressFamily::ipv4;
  else if (n == "ipv6-only") o.family = AddressFamily::ipv6;
  else if (n == "debug") {
    if (!valid_debug_flag(value)) return shown + " (debug flag) must have the format NAME.FLAG=N, got '" + value + "'";
    o.debug_flags.push_back(value);
  } else if (n == "dump-config") o.immediate = ImmediateAction::dump_config;
  else if (n == "dump-plugin") o.dump_plugin = true;
  else if (n == "exit-with-parent") o.exit_with_parent = true;
  else if (n == "exportname") o.exportname = value;
  else if (n == "filter") {
    if (value.empty()) return shown + ": empty filter name";
    o.filters.push_back(value);  // nbdkit's order: the first --filter is the outermost
  } else if (n == "foreground") o.foreground = true;
  else if (n == "group") {
    if (value.empty()) return shown + ": empty group";
    o.group = value;
  } else if (n == "help") o.help = true;
  else if (n == "ipaddr") o.ipaddr = value;
  else if (n == "log") {
    if (value == "stderr") o.log = LogDestination::stderr_log;
    else if (value == "syslog") o.log = LogDestination::syslog_log;
    else if (value == "null") o.log = LogDestination::null_log;
    else if (value == "default") o.log = LogDestination::automatic;  // nbdd: the automatic choice
    else return shown + ": expected stderr, syslog or null, got '" + value + "'";
  } else if (n == "long-options") o.immediate = ImmediateAction::long_options;
  else if (n == "mask-handshake") {
    std::uint64_t mask = 0;
    if (!parse_c_unsigned(value, 0xffffffffu, mask)) return shown + ": bad mask '" + value + "'";
    // Bit 0 is NBD_FLAG_FIXED_NEWSTYLE, bit 1 NBD_FLAG_NO_ZEROES: the greeting offers only
    // the bits the mask keeps (core::ConnectionConfig::handshake_flags_mask).
    o.handshake_flags_mask = static_cast<std::uint16_t>(mask & 0xffff);
  } else if (n == "newstyle") {
    // the only protocol nbdd speaks: nothing to set
  } else if (n == "no-sr") o.no_structured_replies = true;
  else if (n == "oldstyle") return not_supported(shown, "the oldstyle protocol");
  else if (n == "pidfile") {
    if (value.empty()) return shown + ": empty file name";
    o.pidfile = value;
  } else if (n == "port") {
    std::uint64_t p = 0;
    if (!parse_unsigned(value, 65535, p)) return shown + ": bad port '" + value + "'";
    o.port = value;
  } else if (n == "readonly") o.readonly = true;
  else if (n == "run") o.run = value;
  else if (n == "selinux-label") return not_supported(shown, "no SELinux socket labels");
  else if (n == "short-options") o.immediate = ImmediateAction::short_options;
  else if (n == "single") o.single = true;
  else if (n == "swap") o.swap = true;
  else if (n == "threads") {
    std::uint64_t t = 0;
    if (!parse_c_unsigned(value, 1024, t)) return shown + ": bad thread count '" + value + "' (0..1024; 0 = default)";
    o.threads = t == 0 ? 16 : static_cast<unsigned>(t);  // as nbdkit: 0 means the default
  } else if (n == "tls") {
    o.tls_given = true;
    if (::strcasecmp(value.c_str(), "require") == 0 || ::strcasecmp(value.c_str(), "required") == 0 ||
        ::strcasecmp(value.c_str(), "force") == 0) {
      o.tls = Options::Tls::require;
    } else {
      const int b = parse_bool(value);
      if (b < 0) return shown + ": expected off, on or require, got '" + value + "'";
      o.tls = b ? Options::Tls::on : Options::Tls::off;
    }
  } else if (n == "tls-certificates") {
    if (value.empty()) return shown + ": empty directory";
    o.tls_certificates = value;
  } else if (n == "tls-psk") {
    if (value.empty()) return shown + ": empty file name";
    o.tls_psk = value;
  } else if (n == "tls-verify-peer") o.tls_verify_peer = true;
  else if (n == "unix") {
    if (value.empty()) return shown + ": empty socket path";
    o.unix_path = value;
  } else if (n == "user") {
    if (value.empty()) return shown + ": empty user";
    o.user = value;
  } else if (n == "verbose") o.verbose = true;
  else if (n == "version") o.version = true;
  else if (n == "vsock") return not_supported(shown, "no AF_VSOCK listener");
  else if (n == "busy-poll") {
    std::uint64_t us = 0;
    if (!parse_unsigned(value, 10'000, us)) return shown + ": bad number of microseconds '" + value + "' (0..10000)";
    o.busy_poll_us = static_cast<unsigned>(us);
  } else if (n == "io-uring") {
    if (value == "unix") o.io_uring = IoUringUse::unix_only;
    else if (value == "on") o.io_uring = IoUringUse::on;
    else if (value == "off") o.io_uring = IoUringUse::off;
    else return shown + ": '" + value + "' is none of unix, on and off";
  } else if (n == "max-connections") {
    std::uint64_t m = 0;
    if (!parse_unsigned(value, 1u << 20, m)) return shown + ": bad number '" + value + "'";
    o.max_connections = static_cast<std::size_t>(m);
  } else if (n == "grace-period" || n == "handshake-timeout" || n == "exit-timeout") {
    const auto d = parse_duration(value);
    if (!d) return shown + ": bad duration '" + value + "' (e.g. 1, 1.5, 500ms)";
    (n == "grace-period" ? o.grace_period : n == "handshake-timeout" ? o.handshake_timeout : o.exit_timeout) = *d;
  } else {
    return shown + ": no handler (an nbdd bug)";
  }
  return {};
}

}  // namespace nbdd::net
