// Private to sim/invariants/: what the checker remembers per connection and per disk.
#pragma once
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sim/invariants/checker.hpp"

namespace nbdd::sim {

// A small map kept as a vector in insertion order: the checker's per-connection tables hold
// a few dozen entries at most (requests in flight, calls running), so a linear search beats
// a tree node allocated per request. Iteration is in insertion order; erase keeps it.
template <typename K, typename V>
class FlatMap {
 public:
  using value_type = std::pair<K, V>;
  using iterator = typename std::vector<value_type>::iterator;
  using const_iterator = typename std::vector<value_type>::const_iterator;
  iterator begin() { return items_.begin(); }
  iterator end() { return items_.end(); }
  const_iterator begin() const { return items_.begin(); }
  const_iterator end() const { return items_.end(); }
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }
  iterator find(const K& key) {
    for (auto it = items_.begin(); it != items_.end(); ++it)
      if (it->first == key) return it;
    return items_.end();
  }
  const_iterator find(const K& key) const {
    for (auto it = items_.begin(); it != items_.end(); ++it)
      if (it->first == key) return it;
    return items_.end();
  }
  std::size_t count(const K& key) const { return find(key) == end() ? 0 : 1; }
  // Like std::map::emplace: an existing key keeps its value.
  std::pair<iterator, bool> emplace(const K& key, V value) {
    if (auto it = find(key); it != end()) return {it, false};
    items_.emplace_back(key, std::move(value));
    return {items_.end() - 1, true};
  }
  V& operator[](const K& key) { return emplace(key, V{}).first->second; }
  iterator erase(iterator it) { return items_.erase(it); }
  void clear() { items_.clear(); }

 private:
  std::vector<value_type> items_;
};

struct InvariantChecker::Conn {
  struct Req {
    wire::Request req;            // payload dropped
    bool after_graceful = false;  // header parsed after the graceful moment
    bool strict = true;           // in_flight_max could not have kept the header staged
    // core certainly parsed the header when its bytes arrived: `strict`, and the slot
    // buffer budget could not have kept it staged, and no earlier request may still be
    // staged (requests are parsed in order)
    bool certain = true;
    bool payload_done = false;
    bool called = false;          // a CallPlugin was matched to it
    bool plugin_eshutdown = false;  // a plugin call for it returned the errno ESHUTDOWN
    std::uint64_t parse_tick = 0;
    std::uint64_t payload_tick = 0;
    // validity.cpp: errors the request must be refused with (any one of them), and errors
    // it may be refused with instead of being served (the client broke a SHOULD)
    std::uint8_t refuse_must = 0, refuse_may = 0;
  };
  struct Call {
    core::CallKind kind;
    std::uint64_t cookie = 0;     // data call: key of the request it was matched to
    bool lifecycle = false;
    bool matched = false;
  };

  // One option the client sent and the server has not finally answered, in order (core
  // answers options one by one, so the front is the one being worked on).
  struct Option {
    std::uint32_t option = 0;
    bool after_shutdown = false;    // received after ShutdownRequested (first reply judged)
    bool shutdown_pending = false;  // INFO/GO/EXPORT_NAME unanswered when shutdown came
    std::string name;               // INFO/GO/EXPORT_NAME: the name asked for
    // LIST: its list_exports call and what the plugin returned
    bool list_called = false, list_done = false;
    std::int32_t list_err = 0;
    std::vector<core::ExportEntry> listed;  // valid names only, at most exports_listed_max
    std::size_t list_replies = 0;           // SERVER replies seen so far
    // INFO/GO/EXPORT_NAME: its open and what the plugin described
    bool open_called = false, open_ok = false;
    core::ExportInfo opened;
    bool too_big = false;           // longer than Limits::option_data_bytes_max
  };
  // The plugin handle (nbdkit's per-connection handle): one at a time.
  enum class Handle : std::uint8_t { none, opening, open, closing };

  core::ConnectionId id = 0;
  wire::ClientStreamDecoder cdec;
  wire::ServerStreamDecoder sdec;
  std::deque<Option> options;
  bool wire_broken = false;
  // A cookie was reused while in flight (a client bug): replies cannot be attributed, so
  // the server byte stream is no longer decoded (like wire_broken, but the client's
  // requests are still decoded so every data call can be matched to one).
  bool replies_unattributable = false;
  std::uint64_t next_synthetic_key = 0;
  // Largest READ/WRITE length (<= Limits::request_bytes_max) parsed so far: no slot buffer
  // can have been sized above round_up(this) except for a BLOCK_STATUS reply (see
  // wire::ServerStreamDecoder::status_payload_max).
  std::uint64_t data_length_max = 0;
  std::uint64_t payload_key = 0;  // key (in `requests`) of the request whose payload arrives

  // moments
  bool shutdown_seen = false;     // ShutdownRequested observed (any phase)
  bool graceful = false;          // transmission: no new command may start
  bool force = false;             // an effective DisconnectRequested{true}
  bool force_wants_close = false; // Close{abort} must follow before the next input
  bool shutdown_forced = false;   // input::ShutdownForced observed
  bool forced_shutdown_wants_close = false;  // ...and its Close{abort} is owed before the next input
  // TLS (tls.cpp)
  bool tls_handshaking = false;   // action::StartTls emitted, TlsDone not yet fed
  bool tls_up = false;            // TlsDone{ok}
  bool tls_failed = false;        // TlsDone{false}
  bool tls_fail_wants_close = false;  // its Close{abort} is owed before the next input
  bool close_emitted = false, aborted = false, finished = false;
  bool peer_closed = false, send_failed = false, disc = false;
  bool transmission = false;
  std::optional<core::Status> status;

  // lifecycle
  // The step of an ignored DisconnectRequested: no action, no status change (shutdown.cpp).
  bool ignored_disconnect_step = false;
  std::optional<core::Status> status_before_ignored;
  bool preconnect_called = false, preconnect_ok = false;
  bool preconnect_refused_wants_close = false;  // a Close must follow before the next input...
  bool preconnect_refusal_must_abort = false;   // ...and be Close{abort}
  Handle handle = Handle::none;
  std::uint32_t opens_ok = 0, closes_done = 0;
  bool handle_for_go = false;                   // the open handle was opened for GO/EXPORT_NAME
  core::ExportInfo* open_info = nullptr;        // the running open's ExportInfo (core-owned)
  std::vector<core::ExportEntry>* list_out = nullptr;  // the running list_exports' vector
  std::uint32_t list_max = 0;
  std::string export_key;                       // the served export's disk (canonical name)
  Disk* disk = nullptr;                         // disks_[export_key] once looked up (disk_for)
  std::uint32_t block_min = 0;                  // the served export's block size (its open)
  std::uint32_t block_max = 0;
  bool sends_emitted = false;                   // any Send (the greeting first)
  bool info_answered = false;                   // an INFO was answered with its export
  FlatMap<std::uint32_t, Call> running;  // slot -> call
  // the thread-model gate: queued for it (try_acquire false, no GateOpened yet), and
  // handovers that raced with a cancel (their GateOpened is stale)
  bool gate_waiting = false;
  std::uint32_t gate_stale = 0;

  // requests parsed and not yet answered (DISC excluded), by key, in parse order
  FlatMap<std::uint64_t, Req> requests;
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
  // Where and from when each of `writes` applies, in the same order: what disk_read_done
  // scans for the writes near a READ (every write of the run), 24 bytes apiece instead of
  // a whole Write with its data vector.
  struct Extent {
    std::uint64_t offset = 0, end = 0, start_tick = 0;
  };
  std::vector<Extent> extents;
  // (connection, cookie) -> index in `writes` of a write not yet answered, and -> the tick a
  // READ in flight was parsed at
  FlatMap<std::pair<core::ConnectionId, std::uint64_t>, std::size_t> by_cookie;
  FlatMap<std::pair<core::ConnectionId, std::uint64_t>, std::uint64_t> read_start;
  // scratch space of disk_read_done, reused (no allocation per READ once grown)
  std::vector<const Write*> scratch_near, scratch_cands;
  std::vector<std::uint64_t> scratch_cuts;
};

}  // namespace nbdd::sim
