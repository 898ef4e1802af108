// The command line's texts: --help, --version, --long-options, --short-options.
#include "nbdd_version.hpp"  // generated: cmake/version.cmake
#include "net/options_table.hpp"

namespace nbdd::net {

std::string version_text() { return "nbdd " NBDD_VERSION " (git " NBDD_GIT_REVISION ")\n"; }

// As nbdkit: every long name but the two listing options themselves, in the table's order.
std::string long_options_text() {
  std::string out;
  for (const auto& s : option_table())
    if (s.long_name != "long-options" && s.long_name != "short-options") out += "--" + std::string(s.long_name) + "\n";
  return out;
}

// As nbdkit's short_options string "46D:e:fg:i:nop:P:rst:u:U:vV", one a line.
std::string short_options_text() {
  std::string out;
  for (char c : std::string_view("46DefginopPrstuUvV")) out += std::string("-") + c + "\n";
  return out;
}

std::string usage_text() {
  return R"(usage: nbdd [OPTIONS] PLUGIN [[KEY=]VALUE...] [OPTIONS]

Serve PLUGIN over NBD (options and meanings as nbdkit's). Options may come before or
after the plugin and its parameters; `--` ends them. Long options may be abbreviated.

  -e, --exportname=NAME   name of the default export (also $exportname/$uri for --run)
                          (aliases --export, --export-name)
      --filter=FILTER     put nbdkit's FILTER (a name in nbdkit's filter directory, or
                          the path of a .so) in front of the plugin; repeatable, the
                          first is the outermost (docs/nbdkit-plugins.md)
  -f, --foreground        do not fork into the background (alias --no-fork)
  -g, --group=GROUP       change to this group after listening
  -i, --ipaddr=ADDR       listen on this address only (default: all, IPv4 and IPv6)
  -4, --ipv4-only         with TCP, only IPv4 addresses
  -6, --ipv6-only         with TCP, only IPv6 addresses
  -p, --port=PORT         TCP port (default 10809)
  -P, --pidfile=FILE      write the daemon's pid to FILE once listening (alias --pid-file)
  -r, --readonly          serve every export read-only (alias --read-only)
  -s, --single            serve one client on stdin/stdout, then exit (alias --stdin)
  -t, --threads=N         plugin worker threads (default 16; 0 = the default)
  -u, --user=USER         change to this user after listening
  -U, --unix=PATH         listen on a Unix socket ('-' = private temporary socket)
  -v, --verbose           debug log: every input, action and plugin call
  -V, --version           print the version and git revision and exit
  -D NAME.FLAG=N          nbdkit debug flags: checked, not applied (nbdd says so)
  -n, --newstyle          the only protocol nbdd speaks (no effect)
      --run=CMD           captive mode: run CMD ($uri $nbd $tls $unixsocket $port
                          $exportname), shut down when it exits and exit with its status
      --exit-with-parent  shut down when the parent process exits
      --log=stderr|syslog|null  where log lines go (default: stderr in foreground,
                          else syslog)
      --dump-config       print nbdd's configuration (nbdkit's keys) and exit
      --dump-plugin       print information about PLUGIN and exit
      --swap              lock nbdd into memory (mlockall), for swap over NBD
      --tls=off|on|require      STARTTLS: refused, offered, or required
      --tls-certificates=DIR    X.509 certificates (ca-cert.pem, server-cert.pem,
                                server-key.pem)
      --tls-psk=FILE            pre-shared keys (psktool's username:hexkey lines)
      --tls-verify-peer         require and verify client certificates
      --mask-handshake=MASK     offer only these global handshake flags (bit 0 fixed
                                newstyle, bit 1 no-zeroes; default: both)
      --no-sr             refuse structured replies (ERR_UNSUP): simple replies only
      --max-connections=N refuse clients beyond N at once (default: unlimited)
      --grace-period=DUR  graceful disconnect/shutdown: how long an idle client has to
                          disconnect before it is closed (default 1s; e.g. 500ms, 2.5)
      --handshake-timeout=DUR  close clients that do not finish the handshake (default 10s)
      --exit-timeout=DUR  once shutdown is forced, how long to wait for stuck plugin
                          calls before exiting with status 3 (default 2s)
      --busy-poll=USEC    I/O threads spin up to USEC microseconds for the next request
                          before sleeping, adapting to the load: lower latency for
                          one-at-a-time clients, for more CPU (default 300; 0 = never)
      --io-uring=unix|on|off  connections' socket reads and writes through io_uring when
                          the kernel allows it: unix (the default) when every listener
                          is a Unix socket, on for TCP too; off: epoll
      --help              this text (with PLUGIN: also the plugin's parameters)

Refused with a message: -o/--oldstyle, --selinux-label, --vsock.
Systemd socket activation (LISTEN_PID/LISTEN_FDS) is used when present.
)";
}

}  // namespace nbdd::net
