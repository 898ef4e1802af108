// --run 'CMD' (captive mode): run CMD through /bin/sh -c with nbdkit's variables
// ($uri $nbd $unixsocket $port $exportname $tls) in its environment. As nbdkit: $tls is unset
// with --tls=off, "1" with on, "2" with require, and only require makes $uri an nbds:// URI
// (with --tls=on a client may still connect without TLS).
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>

namespace nbdd::net {

struct CaptiveEndpoint {
  std::optional<std::string> unix_path;
  std::optional<std::string> host;  // -i, else localhost
  std::optional<std::uint16_t> port;
  std::string export_name;
  int tls = 0;  // nbdkit's --tls value: 0 off, 1 on, 2 require
};

// The NBD URI clients use (nbd://HOST:PORT/EXPORT or nbd+unix:///EXPORT?socket=PATH; nbds
// and nbds+unix with --tls=require), the export name and socket path percent-encoded.
std::string nbd_uri(const CaptiveEndpoint& ep);

// Starts the command; returns its pid, or -1 with `error` set.
pid_t spawn_captive(const std::string& command, const CaptiveEndpoint& ep, std::string& error);

}  // namespace nbdd::net
