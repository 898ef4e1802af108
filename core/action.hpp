// Everything the driver must do for a connection, in the order next_action() returns it.
#pragma once
#include <cstddef>
#include <span>
#include <string>
#include <variant>

#include "core/plugin_call.hpp"

namespace nbdd::core {

enum class CloseMode : std::uint8_t {
  flush_then_close,  // finish writing every Send already emitted, then close both directions
  abort,             // close now; drop anything unsent (forced disconnect, protocol violation)
};

namespace action {
// Gather write of header then payload (either may be empty). Core-owned memory,
// valid until the matching input::SendDone (Sends complete in emission order).
struct Send {
  std::span<const std::byte> header;
  std::span<const std::byte> payload;
};
// Start a plugin call; answer later with input::PluginDone{slot, err}.
struct CallPlugin {
  SlotId slot;
  PluginCall call;
};
// Close the transport. Emitted once, except that a Close{flush_then_close} may be
// followed by one Close{abort} (the peer stopped reading, or a send failed); nothing
// follows a Close{abort}. Plugin calls still running must still be reported.
struct Close {
  CloseMode mode;
};
// NBD_OPT_STARTTLS was acknowledged: once every Send before this one is written (the ACK is
// the last), run the server side of a TLS handshake on the transport, then feed
// input::TlsDone. The core reads nothing until then (wants_read() is false).
struct StartTls {
  std::span<const std::byte> early;  // core-owned, valid until TlsDone; usually empty
};
// Nothing of this connection is running or will run: the driver may destroy it.
// Emitted once, last; the plugin's close (if open succeeded) has returned before it.
struct Finished {};
}  // namespace action

using Action = std::variant<action::Send, action::CallPlugin, action::Close, action::StartTls, action::Finished>;

std::string describe(const Action& act);
const char* to_string(CloseMode mode);

}  // namespace nbdd::core
