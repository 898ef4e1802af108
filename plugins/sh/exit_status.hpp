// What a script's exit status means, per nbdkit-sh-plugin(3) (nbdkit >= 1.34):
//
//   0       OK                      4  shutdown(), then OK
//   1       error                   5  shutdown(), then error (default ESHUTDOWN)
//   2       method not supported    6  disconnect(force=true): no reply is sent
//   3       false (can_* methods)   7  disconnect(force=false), then OK
//   9-15    reserved: error         8  disconnect(force=false), then error (default ESHUTDOWN)
//   16-255  error
//
// For errors, stderr may start with an errno name (EIO, ENOSPC, ...; any case; followed by
// whitespace or the end); the rest of stderr is the message. Pure function, no side effects:
// the plugin performs shutdown()/disconnect() itself.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace nbdd::plugin::sh {

inline constexpr int max_known_status = 8;

enum class Outcome { ok, error, missing, false_ };
enum class SideEffect { none, shutdown, disconnect, disconnect_force };

struct Status {
  Outcome outcome = Outcome::ok;
  SideEffect effect = SideEffect::none;
  int err = 0;          // for Outcome::error
  std::string message;  // for Outcome::error: stderr without the errno name
};

// exit_code -1 means killed by a signal (an error).
Status classify_exit(int exit_code, std::string_view error_text);

// "EIO" -> EIO etc. (the names the issue lists); nullopt for anything else.
std::optional<int> errno_from_name(std::string_view name);

}  // namespace nbdd::plugin::sh
