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
// Server-wide forced shutdown (a second signal, or the shutdown grace running out): close now
// in any phase, handshake included, with no reply to anything in flight. Distinct from the
// plugin's DisconnectRequested{true}, which only applies to a connection serving an export.
struct ShutdownForced {};
struct DisconnectRequested {   // the plugin's disconnect(force) on this connection
  bool force;
};
struct DeadlineReached {};     // the driver's timer for deadline() fired
struct GateOpened {};          // this connection now holds the CallGate (see call_gate.hpp)
// How the driver's TLS handshake (action::StartTls) ended: ok = TLS is up and every byte from
// now on travels inside it; !ok = it failed (bad certificate, wrong key, the peer hung up or
// sent garbage) and the connection closes with nothing more sent.
struct TlsDone {
  bool ok;
};
}  // namespace input

using Input = std::variant<input::BytesReceived, input::PeerClosed, input::SendDone, input::SendFailed,
                           input::PluginDone, input::ShutdownRequested, input::ShutdownForced,
                           input::DisconnectRequested, input::DeadlineReached, input::GateOpened,
                           input::TlsDone>;

// One line for traces and the daemon's -v log (same text in both).
std::string describe(const Input& in);

}  // namespace nbdd::core
