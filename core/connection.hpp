// core::Connection: the sans-IO NBD server for one client.
//
// Contract for every driver (the daemon's net/ and the simulator's sim/):
//   1. feed one Input with handle(now, input);
//   2. drain next_action() until it returns nullopt, executing actions in order;
//   3. report each finished Send with SendDone (in order), each CallPlugin with PluginDone
//      (also after a Close). SendFailed ends the connection with Close{abort}; after it, or
//      after a Close{abort}, further SendDone/SendFailed are accepted but not needed;
//   4. arm a timer for deadline() and feed DeadlineReached when it passes;
//   5. read from the peer only while wants_read() is true;
//   6. keep the Connection alive until action::Finished (buffers lent to plugin calls
//      stay valid until their PluginDone, also after a forced close).
// Peer errors never throw and never assert: they become NBD error replies or a Close.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "core/action.hpp"
#include "core/call_gate.hpp"
#include "core/export_info.hpp"
#include "core/input.hpp"
#include "core/limits.hpp"
#include "core/thread_model.hpp"
#include "core/time.hpp"

namespace nbdd::core {

// Lifecycle of the connection; it only ever moves forward (enforced and tested).
//   active:   normal service
//   draining: graceful disconnect or shutdown: new commands get ESHUTDOWN (handshake
//             options NBD_REP_ERR_SHUTDOWN), in-flight ones complete normally
//   closing:  reading stopped; finishing replies/plugin calls, then close, then the
//             plugin's close call
//   dead:     Finished emitted; nothing more happens
enum class Status : std::uint8_t { active, draining, closing, dead };
const char* to_string(Status status);

enum class Phase : std::uint8_t { handshake, transmission };

// The connection's plugin handle (nbdkit's per-connection handle), one at a time:
//   none -> opening (open call emitted) -> open (it succeeded) | none (it failed)
//   open -> closing (close call emitted) -> none (close returned)
// INFO opens and closes; GO/EXPORT_NAME open for the transmission phase; a refused GO
// (shutdown, block size) closes what it opened. Enforced by one function (set_handle).
enum class HandleState : std::uint8_t { none, opening, open, closing };
const char* to_string(HandleState state);

// Why the connection ended (first cause wins); for logs, stats and the simulator.
enum class EndReason : std::uint8_t {
  none,
  client_abort,        // NBD_OPT_ABORT
  client_disc,         // NBD_CMD_DISC
  peer_closed,         // EOF or reset
  send_failed,
  protocol_violation,  // bad magic, unknown client flags, oversized lengths...
  handshake_timeout,
  grace_expired,       // graceful disconnect, client did not DISC in time
  forced,              // disconnect(true)
  export_name_failed,  // NBD_OPT_EXPORT_NAME could not succeed (spec: hard disconnect)
  preconnect_refused,  // the plugin's preconnect failed: closed before the greeting
  shut_down,           // shutdown arrived before preconnect could start: no greeting
  shutdown_forced,     // the server's forced shutdown (input::ShutdownForced)
  tls_failed,          // the TLS handshake after STARTTLS failed
  tls_required,        // --tls=require and the client asked EXPORT_NAME before TLS
};
const char* to_string(EndReason reason);

// NBD's TLS modes (protocol §11), nbdkit's --tls=off|on|require.
//   off:     NOTLS: STARTTLS is refused (ERR_POLICY); ERR_TLS_REQD is never sent
//   on:      STARTTLS is accepted once; every option also works without it
//   require: FORCEDTLS: before TLS, every option but STARTTLS and ABORT gets ERR_TLS_REQD
//            and EXPORT_NAME closes; no export name, list, size or data leaves before TLS
enum class TlsMode : std::uint8_t { off, on, require };
const char* to_string(TlsMode mode);

struct ConnectionConfig {
  ConnectionId id = 0;
  Instant accepted_at;  // starts the handshake timeout
  Limits limits;
  // -r: every export read-only whatever the plugin says; the plugin's preconnect,
  // list_exports and open are told so.
  bool read_only = false;
  TlsMode tls = TlsMode::off;
  // nbdkit's --mask-handshake: the greeting's flags are FIXED_NEWSTYLE (bit 0) and
  // NO_ZEROES (bit 1) ANDed with this; a client setting a flag that was not offered is closed.
  std::uint16_t handshake_flags_mask = 0xffff;
  // nbdkit's --no-sr: STRUCTURED_REPLY (and EXTENDED_HEADERS, which implies it) get
  // ERR_UNSUP, so replies stay simple and there is no BLOCK_STATUS.
  bool structured_replies = true;
  ThreadModel thread_model = ThreadModel::parallel;
  CallGate* gate = nullptr;  // required for serialize_connections / serialize_all_requests
};

struct ConnectionStats {
  std::uint64_t bytes_received = 0;
  std::uint64_t bytes_sent = 0;  // counted when a Send is emitted
  std::uint64_t options = 0;
  std::uint64_t requests = 0;
  std::uint64_t replies = 0;
  std::uint64_t error_replies = 0;
  std::uint64_t eshutdown_replies = 0;
  std::uint64_t plugin_calls = 0;
  std::uint64_t ignored_disconnects = 0;  // disconnect() while no GO'd handle was open
  std::uint32_t in_flight = 0;            // slots in use
  std::uint32_t running_calls = 0;        // CallPlugin without PluginDone (incl. lifecycle)
  EndReason end_reason = EndReason::none;
  std::uint32_t opens = 0;   // the plugin's open succeeded (INFO, GO, EXPORT_NAME)
  std::uint32_t closes = 0;  // the plugin's close returned (exactly one per open)
};

class Connection {
 public:
  explicit Connection(const ConnectionConfig& config);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The first handle() call should be made at accept time; it may be any input, and the
  // greeting is queued by the constructor, so drivers usually call next_action() first.
  void handle(Instant now, const Input& input);
  std::optional<Action> next_action();
  std::optional<Instant> deadline() const;
  bool wants_read() const;
  // Where the driver should read next: a large write payload's slot (it lands there without
  // a copy), else the stage, with room for many requests. Empty when !wants_read().
  std::span<std::byte> read_window();

  Status status() const;
  Phase phase() const;
  HandleState handle_state() const;
  const ConnectionStats& stats() const;
  ConnectionId id() const;
  // Bytes of buffers kept for handshake replies (sent or spare); tests check it stays small
  // once a large LIST reply was acknowledged.
  std::size_t handshake_bytes_held() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace nbdd::core
