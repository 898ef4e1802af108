// Private to sim/invariants/: what the checker remembers per connection and per disk.
#pragma once
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sim/invariants/checker.hpp"

namespace nbdd::sim {

struct InvariantChecker::Conn {
  struct Req {
    wire::Request req;            // payload dropped
    bool after_graceful = false;  // header parsed after the graceful moment
    bool strict = true;           // core certainly parsed the header when its bytes arrived
    bool payload_done = false;
    bool called = false;          // a CallPlugin was matched to it
    std::uint64_t parse_tick = 0;
    std::uint64_t payload_tick = 0;
  };
  struct Call {
    core::CallKind kind;
    std::uint64_t cookie = 0;
    bool lifecycle = false;
  };

  core::ConnectionId id = 0;
  wire::ClientStreamDecoder cdec;
  wire::ServerStreamDecoder sdec;
  std::deque<bool> option_after_shutdown;  // per option sent, in order
  std::deque<std::uint32_t> options;       // per option sent, in order
  bool wire_broken = false;

  // moments
  bool shutdown_seen = false;     // ShutdownRequested observed (any phase)
  bool graceful = false;          // transmission: no new command may start
  std::uint64_t graceful_tick = 0;
  bool force = false;             // an effective DisconnectRequested{true}
  bool force_wants_close = false; // Close{abort} must follow before the next input
  bool close_emitted = false, aborted = false, finished = false;
  bool peer_closed = false, send_failed = false, disc = false;
  bool transmission = false;
  std::optional<core::Status> status;

  // lifecycle
  bool open_called = false, open_done = false, open_ok = false;
  bool close_called = false, close_done = false;
  std::string export_name;
  std::map<std::uint32_t, Call> running;  // slot -> call

  // requests parsed and not yet answered (DISC excluded), in parse order
  std::map<std::uint64_t, Req> requests;
  std::deque<std::uint64_t> order;
  std::uint64_t unacked_sends = 0;

  // grace: when this connection last became idle while ending
  std::optional<core::Instant> idle_since;
  bool grace_reported = false;
};

// Per export: every write-like request ever made, for the read oracle (durability.cpp).
struct InvariantChecker::Disk {
  struct Write {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    std::vector<std::byte> data;   // WRITE data; empty: zeroes (WRITE_ZEROES) or any (TRIM)
    bool any = false;              // TRIM: contents unspecified afterwards
    std::uint64_t start_tick = 0;  // could have been applied from here...
    std::uint64_t ack_tick = ~0ull;  // ...until its reply was sent (never: ~0)
    bool ok = false;               // replied with success: certainly applied
  };
  std::vector<Write> writes;
  std::map<std::pair<core::ConnectionId, std::uint64_t>, std::size_t> by_cookie;
  std::map<std::pair<core::ConnectionId, std::uint64_t>, std::uint64_t> read_start;
};

}  // namespace nbdd::sim
