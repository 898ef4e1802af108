// --run 'CMD' (captive mode): run CMD through /bin/sh -c with nbdkit's variables
// ($uri $nbd $unixsocket $port $exportname $tls) in its environment.
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
};

// The NBD URI clients use (nbd://HOST:PORT/EXPORT or nbd+unix:///EXPORT?socket=PATH).
std::string nbd_uri(const CaptiveEndpoint& ep);

// Starts the command; returns its pid, or -1 with `error` set.
pid_t spawn_captive(const std::string& command, const CaptiveEndpoint& ep, std::string& error);

}  // namespace nbdd::net
