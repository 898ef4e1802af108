// Everything that can happen to a connection. The driver feeds one at a time with `now`.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>

#include "core/plugin_call.hpp"

namespace nbdd::core {

namespace input {
// Bytes read from the peer. Used up before handle() returns. May point into
// Connection::read_window() (then nothing is copied) or anywhere else (then copied once).
// Deliver only while wants_read() is true, at most read_window().size() bytes... or, for a
// foreign buffer, at most Limits::staged_bytes_max.
struct BytesReceived { std::span<const std::byte> bytes; };
struct PeerClosed {};          // EOF or reset on the read side
struct SendDone {};            // the oldest outstanding Send was fully written
struct SendFailed {};          // the transport cannot deliver (EPIPE, reset...)
struct PluginDone {            // a CallPlugin finished; err = 0 or an errno value
  SlotId slot;
  std::int32_t err;
};
struct ShutdownRequested {};   // server-wide graceful shutdown
struct DisconnectRequested {   // the plugin's disconnect(force) on this connection
  bool force;
};
struct DeadlineReached {};     // the driver's timer for deadline() fired
struct GateOpened {};          // this connection now holds the CallGate (see call_gate.hpp)
}  // namespace input

using Input = std::variant<input::BytesReceived, input::PeerClosed, input::SendDone, input::SendFailed,
                           input::PluginDone, input::ShutdownRequested, input::DisconnectRequested,
                           input::DeadlineReached, input::GateOpened>;

// One line for traces and the daemon's -v log (same text in both).
std::string describe(const Input& in);

}  // namespace nbdd::core
