// fuzz::Driver: one core::Connection driven by a fuzz input, obeying the driver contract of
// core/connection.hpp exactly (a contract violation here would be a harness bug, not a
// finding):
//   - bytes are delivered only while wants_read(), either into read_window() (zero copy)
//     or from a foreign buffer of at most Limits::staged_bytes_max bytes, which is freed
//     right after handle() returns (ASan then catches a core that kept a pointer to it);
//   - every CallPlugin gets exactly one PluginDone, also after Close; its buffer is used
//     only at completion time (ASan catches a buffer freed early);
//   - Sends are acknowledged in order; their bytes are compared at SendDone time with a copy
//     taken at emission (core-owned memory must stay valid and unchanged until then);
//   - time only moves forward, and a jump past deadline() fires DeadlineReached at the
//     deadline, as a real timer would;
//   - after Close{abort} nothing is written and no SendDone follows (a
//     Close{flush_then_close} may be followed by one Close{abort});
//   - nothing is fed after Finished.
// The driver's own oracle is what it must know anyway: Finished exactly once and last, no
// plugin call still running at Finished, the CallGate released at Finished, no read while
// closed, plugin calls inside the export the last open described. Protocol-level invariants come from the Observer
// (the simulator's InvariantChecker in fuzz_connection).
#pragma once
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/call_gate.hpp"
#include "core/connection.hpp"
#include "core/protocol_constants.hpp"
#include "fuzz/fuzz_check.hpp"

namespace nbdd::fuzz {

using namespace nbdd::core;

// Sees everything the driver does, in order (the simulator's checker plugs in here).
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_start(Instant now) = 0;  // before the Connection exists
  virtual void on_input(Instant now, const Input& in) = 0;
  virtual void on_action(Instant now, const Action& act) = 0;
  virtual void on_status(Instant now, Status status) = 0;
  virtual void on_time(Instant now) = 0;
  virtual void check() = 0;  // abort with a message on the first violation
  virtual void at_end(Instant now) = 0;  // after Finished: end-of-session checks
};

inline constexpr ConnectionId conn_id = 1;
inline constexpr ConnectionId phantom_id = 2;  // another connection contending for the gate

// The harness's plugin: two named exports — a writable disk with every capability, and a
// small read-only export with block size constraints and a description — plus any other
// name, which the input may accept (a plugin like `memory` serves every name) or refuse.
// "" resolves to "disk" (default_export). Sizes stay small so the disk model is cheap.
inline ExportInfo known_export(std::string_view name) {
  ExportInfo e;
  if (name == "small") {
    e.name = "small";
    e.description = "small read-only export";
    e.size_bytes = 64 * 1024;
    e.caps.can_write = false;
    e.caps.can_flush = true;
    e.caps.can_extents = true;
    e.caps.is_rotational = true;
    e.block_size = BlockSize{512, 4096, 32768};
    return e;
  }
  e.name = name.empty() ? "disk" : std::string(name);
  e.description = "fuzz disk";
  e.size_bytes = name.empty() || name == "disk" ? 1 << 20 : 64 * 1024;
  e.caps = Capabilities{true, true, true, true, true, true, true, true, true, false};
  return e;
}
inline bool is_known_export(std::string_view name) { return name.empty() || name == "disk" || name == "small"; }

// Small bounds, so every limit is cheap to reach and no input can make the harness
// allocate much (the CI script also runs with -rss_limit_mb and -malloc_limit_mb).
inline Limits make_limits(unsigned profile) {
  Limits l;
  l.handshake_timeout = Duration::from_s(10);
  l.grace_period = Duration::from_s(1);
  if (profile % 2 == 0) {  // tiny: every bound within a few requests
    l.option_data_bytes_max = 512;
    l.option_discard_bytes_max = 4096;
    l.options_per_handshake_max = 12;
    l.string_bytes_max = 64;
    l.meta_queries_max = 2;
    l.request_bytes_max = 4096;
    l.write_discard_bytes_max = 16384;
    l.in_flight_max = 3;
    l.slot_buffer_bytes_max = 8192;
    l.staged_bytes_max = 1024;
    l.extents_per_reply_max = 4;
  } else {  // small: real clients' sessions fit
    l.option_data_bytes_max = 8192;
    l.option_discard_bytes_max = 64 * 1024;
    l.options_per_handshake_max = 32;
    l.string_bytes_max = 4096;
    l.meta_queries_max = 16;
    l.request_bytes_max = 64 * 1024;
    l.write_discard_bytes_max = 256 * 1024;
    l.in_flight_max = 8;
    l.slot_buffer_bytes_max = 512 * 1024;  // never binds before in_flight_max (tiny's does)
    l.staged_bytes_max = 16 * 1024;
    l.extents_per_reply_max = 64;
  }
  return l;
}

// A driver's CallGate around ExclusiveGate: handovers are queued and delivered as
// GateOpened when the script says so (a real driver posts them to the strand).
class FuzzGate : public CallGate {
 public:
  bool try_acquire(ConnectionId id) override { return gate.try_acquire(id); }
  void release(ConnectionId id) override { note(gate.release(id)); }
  bool cancel(ConnectionId id) override {
    const bool was_holder = gate.holder() == id;  // the handover raced with the cancel
    note(gate.cancel(id));
    return was_holder;
  }
  void note(std::optional<ConnectionId> next) {
    if (next == conn_id) ++opened_for_conn;
  }
  bool phantom_holds() const { return gate.holder() == phantom_id; }
  ExclusiveGate gate;
  int opened_for_conn = 0;  // GateOpened inputs owed to the connection
  bool phantom_waiting = false;
};

// How the plugin answers a call (from the script). extents: `count` 0 is one extent
// covering the request exactly. open: `seed` bits 0-1 shrink the size by that many 512-byte
// sectors, bit 2 serves a name the plugin does not know (else ENOENT), bit 3 drops every
// capability but write, bit 4 asks for a description it does not have. list_exports: bit 0
// adds a name with a NUL, bit 1 a name longer than any NBD string, bit 2 lists nothing.
struct ExtentShape {
  std::uint8_t count = 0;
  std::uint8_t seed = 0;
};

class Driver {
 public:
  // `observer` must outlive the Driver. The connection starts with its preconnect call
  // running (the script completes it like any other call).
  Driver(const Limits& limits, ThreadModel model, bool read_only, Observer* observer, TlsMode tls = TlsMode::off)
      : limits_(limits), observer_(observer) {
    ConnectionConfig cfg;
    cfg.tls = tls;
    cfg.id = conn_id;
    cfg.accepted_at = now_;
    cfg.limits = limits_;
    cfg.read_only = read_only;
    cfg.thread_model = model;
    cfg.gate = &gate_;
    if (observer_) observer_->on_start(now_);
    conn_ = std::make_unique<Connection>(cfg);
    drain();
  }

  const Limits& limits() const { return limits_; }
  Connection& conn() { return *conn_; }
  bool finished() const { return finished_; }
  bool aborted() const { return aborted_; }
  std::size_t pending_calls() const { return calls_.size(); }
  std::optional<CallKind> pending_kind(std::size_t index) const {
    if (calls_.empty()) return std::nullopt;
    return calls_[index % calls_.size()].act.call.kind;
  }
  std::size_t unacked_sends() const { return sends_.size(); }
  // A StartTls is waiting for its TlsDone (the transport runs the TLS handshake).
  bool tls_pending() const { return tls_pending_ && !finished_; }
  // How the TLS handshake ended; only once every Send before the StartTls was written
  // (as a driver must). False when nothing is pending or Sends are still unwritten.
  bool tls_done(bool ok) {
    if (!tls_pending() || !sends_.empty()) return false;
    tls_pending_ = false;
    feed(input::TlsDone{ok});
    return true;
  }
  Instant now() const { return now_; }

  // ---- client bytes -------------------------------------------------------------------
  // mode 0: into read_window(); 1: from a foreign buffer; 2: ask for the window, then
  // deliver a foreign buffer anyway. Returns the bytes delivered (0: not reading now).
  std::size_t deliver(std::span<const std::byte> src, unsigned mode) {
    if (finished_ || peer_closed_ || src.empty() || !conn_->wants_read()) return 0;
    if (mode % 3 == 0) {
      auto w = conn_->read_window();
      FUZZ_CHECK(!w.empty(), "wants_read() but read_window() is empty");
      const std::size_t n = std::min(w.size(), src.size());
      std::memcpy(w.data(), src.data(), n);
      delivered_.insert(delivered_.end(), src.begin(), src.begin() + static_cast<std::ptrdiff_t>(n));
      feed(input::BytesReceived{std::span<const std::byte>(w.data(), n)});
      return n;
    }
    if (mode % 3 == 2) (void)conn_->read_window();
    const std::size_t n = std::min<std::size_t>(src.size(), limits_.staged_bytes_max);
    std::vector<std::byte> foreign(src.begin(), src.begin() + static_cast<std::ptrdiff_t>(n));
    delivered_.insert(delivered_.end(), foreign.begin(), foreign.end());
    feed(input::BytesReceived{foreign});
    return n;  // `foreign` dies here: the core must have used it up
  }

  // ---- plugin completions -------------------------------------------------------------
  bool complete(std::size_t index, int err, ExtentShape shape = {}) {
    if (calls_.empty() || finished_) return false;
    index %= calls_.size();
    Call c = std::move(calls_[index]);
    calls_.erase(calls_.begin() + static_cast<std::ptrdiff_t>(index));
    const PluginCall& pc = c.act.call;
    if (pc.kind == CallKind::close) err = 0;  // close cannot fail
    if (pc.kind == CallKind::open && err == 0) err = open_export(c, shape);
    if (pc.kind == CallKind::list_exports && err == 0) list_exports(pc, shape);
    run_call(c, err, shape);
    feed(input::PluginDone{c.act.slot, err});
    return true;
  }

  // ---- transport ----------------------------------------------------------------------
  bool send_done() {
    if (sends_.empty() || aborted_ || finished_) return false;
    SentBytes s = std::move(sends_.front());
    sends_.pop_front();
    FUZZ_CHECK(s.header.size() + s.payload.size() == s.copy.size(), "Send changed size");
    FUZZ_CHECK(std::equal(s.header.begin(), s.header.end(), s.copy.begin()) &&
                   std::equal(s.payload.begin(), s.payload.end(), s.copy.begin() + s.header.size()),
               "Send bytes changed before their SendDone");
    feed(input::SendDone{});
    return true;
  }
  bool send_failed() {
    if (sends_.empty() || aborted_ || finished_ || send_failed_) return false;
    send_failed_ = true;
    sends_.pop_front();
    feed(input::SendFailed{});
    return true;
  }
  bool peer_closed() {
    if (peer_closed_ || finished_) return false;
    peer_closed_ = true;
    feed(input::PeerClosed{});
    return true;
  }
  bool shutdown() {
    if (finished_) return false;
    feed(input::ShutdownRequested{});
    return true;
  }
  bool disconnect(bool force) {
    if (finished_) return false;
    feed(input::DisconnectRequested{force});
    return true;
  }

  // ---- time ---------------------------------------------------------------------------
  // Moves the clock forward by `by`, firing DeadlineReached at each deadline passed.
  void advance(Duration by) {
    const Instant target = now_ + by;
    for (int guard = 0; guard < 64 && !finished_; ++guard) {
      const auto d = conn_->deadline();
      if (!d || *d > target) break;
      set_time(std::max(now_, *d));
      feed(input::DeadlineReached{});
    }
    if (!finished_) set_time(target);
  }
  // Jumps to the next deadline and fires it.
  bool fire_deadline() {
    if (finished_) return false;
    const auto d = conn_->deadline();
    if (!d) return false;
    set_time(std::max(now_, *d));
    feed(input::DeadlineReached{});
    return true;
  }

  // ---- the cross-connection gate ------------------------------------------------------
  // Another connection takes or gives back the gate.
  void phantom_toggle() {
    if (gate_.phantom_holds()) {
      gate_.phantom_waiting = false;
      gate_.note(gate_.gate.release(phantom_id));
    } else if (gate_.phantom_waiting) {
      gate_.phantom_waiting = false;
      gate_.note(gate_.gate.cancel(phantom_id));
    } else {
      gate_.phantom_waiting = !gate_.gate.try_acquire(phantom_id);
    }
  }
  bool gate_opened() {
    if (gate_.opened_for_conn == 0 || finished_) return false;
    --gate_.opened_for_conn;
    feed(input::GateOpened{});
    return true;
  }

  // ---- liveness -----------------------------------------------------------------------
  // Ends the session the way a well-behaved client, plugin and transport would, and
  // checks the connection reaches Finished within `max_steps` inputs.
  void finish(int max_steps) {
    int steps = 0;
    while (!finished_) {
      FUZZ_CHECK(++steps <= max_steps, "liveness: not Finished after %d steps (%s)", max_steps, state().c_str());
      if (gate_opened()) continue;
      if (gate_.phantom_holds() || gate_.phantom_waiting) {
        phantom_toggle();
        continue;
      }
      if (complete(0, 0)) continue;
      if (send_done()) continue;
      if (peer_closed()) continue;  // a TLS handshake still running is cut by the hang-up
      if (fire_deadline()) continue;
      if (tls_done(true)) continue;
      FUZZ_CHECK(false, "liveness: stuck, nothing left to feed (%s)", state().c_str());
    }
    if (observer_) observer_->at_end(now_);
  }

  std::string state() const {
    return "status=" + std::string(to_string(conn_->status())) + " calls=" + std::to_string(calls_.size()) +
           " sends=" + std::to_string(sends_.size()) + " peer_closed=" + std::to_string(peer_closed_) +
           " aborted=" + std::to_string(aborted_) + " wants_read=" + std::to_string(conn_->wants_read()) +
           " deadline=" + (conn_->deadline() ? std::to_string(conn_->deadline()->ns) : std::string("none"));
  }

 private:
  struct Call {
    action::CallPlugin act;
    std::uint64_t sum = 0;  // pwrite: checksum of the data at CallPlugin time
    std::string export_name;
  };
  struct SentBytes {
    std::span<const std::byte> header, payload;
    std::vector<std::byte> copy;
  };

  static std::uint64_t checksum(std::span<const std::byte> b) {
    std::uint64_t h = 1469598103934665603ull;
    for (std::byte x : b) h = (h ^ std::to_integer<unsigned>(x)) * 1099511628211ull;
    return h;
  }

  void set_time(Instant t) {
    if (t > now_) {
      now_ = t;
      if (observer_) observer_->on_time(now_);
    }
  }

  // NBDD_FUZZ_TRACE=1 prints every input and action (for reading a crash input).
  static bool tracing() {
    static const bool on = std::getenv("NBDD_FUZZ_TRACE") != nullptr;
    return on;
  }

  void feed(const Input& in) {
    FUZZ_CHECK(!finished_, "harness fed an input after Finished");
    if (tracing()) std::fprintf(stderr, "t=%llu  in: %s\n", static_cast<unsigned long long>(now_.ns), describe(in).c_str());
    if (observer_) observer_->on_input(now_, in);
    conn_->handle(now_, in);
    drain();
  }

  void drain() {
    while (auto act = conn_->next_action()) {
      FUZZ_CHECK(!finished_, "action after Finished: %s", describe(*act).c_str());
      if (tracing()) std::fprintf(stderr, "      act: %s\n", describe(*act).c_str());
      if (observer_) observer_->on_action(now_, *act);
      if (auto* s = std::get_if<action::Send>(&*act)) {
        FUZZ_CHECK(!aborted_, "Send after Close{abort}");
        SentBytes rec{s->header, s->payload, {}};
        rec.copy.reserve(s->header.size() + s->payload.size());
        rec.copy.insert(rec.copy.end(), s->header.begin(), s->header.end());
        rec.copy.insert(rec.copy.end(), s->payload.begin(), s->payload.end());
        sends_.push_back(std::move(rec));
      } else if (auto* c = std::get_if<action::CallPlugin>(&*act)) {
        on_call(*c);
      } else if (auto* t = std::get_if<action::StartTls>(&*act)) {
        FUZZ_CHECK(!closed_, "StartTls after Close");
        FUZZ_CHECK(!tls_pending_, "StartTls while another runs");
        FUZZ_CHECK(!conn_->wants_read(), "wants_read() during the TLS handshake");
        // The early bytes are exactly what the client sent after the STARTTLS option and the
        // core has not consumed: the tail of everything delivered, after at least the
        // option's 16-byte header. (Their size is bounded by the stage, which can hold a
        // whole option plus a read: not by staged_bytes_max alone.)
        FUZZ_CHECK(t->early.size() + 16 <= delivered_.size(), "StartTls early bytes the client never sent");
        FUZZ_CHECK(std::equal(t->early.begin(), t->early.end(), delivered_.end() - static_cast<std::ptrdiff_t>(t->early.size())),
                   "StartTls early bytes are not the tail of what the client sent");
        tls_pending_ = true;
      } else if (auto* cl = std::get_if<action::Close>(&*act)) {
        // At most one Close{flush_then_close}, then at most one Close{abort}.
        FUZZ_CHECK(!aborted_, "Close after Close{abort}");
        FUZZ_CHECK(!closed_ || cl->mode == CloseMode::abort, "second Close{flush_then_close}");
        closed_ = true;
        if (cl->mode == CloseMode::abort) {
          aborted_ = true;
          sends_.clear();  // dropped unsent, never acknowledged
        }
      } else {
        finished_ = true;
        FUZZ_CHECK(closed_, "Finished without Close");
        FUZZ_CHECK(calls_.empty(), "Finished while %zu plugin calls run", calls_.size());
        FUZZ_CHECK(gate_.gate.holder() != conn_id, "Finished while holding the CallGate");
      }
    }
    if (closed_ && !finished_) FUZZ_CHECK(!conn_->wants_read(), "wants_read() after Close");
    if (observer_) {
      observer_->on_status(now_, conn_->status());
      observer_->check();
    }
  }

  void on_call(const action::CallPlugin& c) {
    Call rec{c, 0, {}};
    const PluginCall& pc = c.call;
    if (pc.kind == CallKind::open) {
      rec.export_name = std::string(pc.export_name);
      FUZZ_CHECK(pc.info != nullptr, "open without an ExportInfo to fill");
    } else if (pc.kind == CallKind::list_exports) {
      FUZZ_CHECK(pc.exports && pc.exports->empty(), "list_exports vector");
    } else if (!is_lifecycle(pc.kind)) {
      FUZZ_CHECK(handle_open_, "data call without an open handle");
      FUZZ_CHECK(pc.count <= export_.size_bytes && pc.offset <= export_.size_bytes - pc.count,
                 "plugin call outside the export: off=%llu count=%llu",
                 static_cast<unsigned long long>(pc.offset), static_cast<unsigned long long>(pc.count));
      if (pc.kind == CallKind::pread || pc.kind == CallKind::pwrite)
        FUZZ_CHECK(pc.buffer.size() == pc.count, "buffer size != count");
      if (pc.kind == CallKind::pwrite) rec.sum = checksum(pc.buffer);
      if (pc.kind == CallKind::extents) FUZZ_CHECK(pc.extents && pc.extents->empty(), "extents vector");
    }
    calls_.push_back(std::move(rec));
  }

  // One disk per canonical name, at the largest size any open reported (a later open
  // may report it smaller: the data stays).
  std::vector<std::byte>& disk() {
    auto& d = disks_[export_.name];
    if (d.size() < export_.size_bytes) d.resize(export_.size_bytes, std::byte{0});
    return d;
  }

  // open succeeded as far as the script says: describe the export for this connection as
  // a driver does (nbdkit's rules), or refuse a name the plugin does not know.
  int open_export(const Call& c, ExtentShape shape) {
    const PluginCall& pc = c.act.call;
    if (!is_known_export(c.export_name) && !(shape.seed & 4)) return ENOENT;
    ExportInfo e = known_export(c.export_name);
    e.size_bytes -= 512u * (shape.seed & 3);
    if (shape.seed & 8) e.caps = Capabilities{};
    if (pc.readonly) e.caps.can_write = false;
    if (!e.caps.can_write) e.caps.can_trim = e.caps.can_zero = e.caps.can_fua = false;
    if (!e.caps.can_zero) e.caps.can_fast_zero = false;
    if (!pc.want_description || (shape.seed & 16)) e.description.clear();
    *pc.info = e;
    export_ = e;
    handle_open_ = true;
    return 0;
  }

  void list_exports(const PluginCall& pc, ExtentShape shape) {
    if (shape.seed & 4) return;
    auto add = [&](std::string name, std::string description) {
      if (pc.exports->size() < pc.exports_max) pc.exports->push_back(ExportEntry{std::move(name), std::move(description)});
    };
    add("disk", "fuzz disk");
    if (shape.seed & 1) add(std::string("bad\0name", 8), "");
    if (shape.seed & 2) add(std::string(limits_.string_bytes_max + 1, 'x'), "too long");
    add("small", "small read-only export");
  }

  // Executes a call against the in-memory disk (only on success: a failed write may or
  // may not have been applied, and the checker's read model allows both).
  void run_call(const Call& c, int err, ExtentShape shape) {
    const PluginCall& pc = c.act.call;
    const auto off = static_cast<std::ptrdiff_t>(pc.offset);
    switch (pc.kind) {
      case CallKind::pread:
        if (err == 0)
          std::memcpy(pc.buffer.data(), disk().data() + off, pc.count);
        else
          std::memset(pc.buffer.data(), 0xee, pc.count);  // must never reach the client
        break;
      case CallKind::pwrite:
        FUZZ_CHECK(checksum(pc.buffer) == c.sum, "pwrite data changed while the call ran");
        if (err == 0) std::memcpy(disk().data() + off, pc.buffer.data(), pc.count);
        break;
      case CallKind::zero:
      case CallKind::trim:
        if (err == 0) std::fill_n(disk().begin() + off, pc.count, std::byte{0});
        break;
      case CallKind::extents:
        if (err == 0) fill_extents(pc, shape);
        break;
      case CallKind::close:
        handle_open_ = false;
        break;
      default: break;
    }
  }

  // Extents as a plugin might report them: usually exact, sometimes split, short, gapped
  // or overlong; core must clip and merge them. Types are DATA or HOLE (never ZERO, which
  // would be a claim about the contents).
  static void fill_extents(const PluginCall& pc, ExtentShape shape) {
    if (shape.count == 0) {
      pc.extents->push_back(Extent{pc.offset, pc.count, 0});
      return;
    }
    std::uint64_t at = pc.offset;
    std::uint32_t r = shape.seed * 2654435761u + 1;
    for (unsigned i = 0; i < shape.count && pc.extents->size() < pc.extents_max; ++i) {
      r = r * 1103515245u + 12345u;
      const std::uint64_t len = (r >> 8) % (pc.count + 2);  // may be 0 or run past the end
      if ((r >> 4) % 8 == 0) at += 1;                       // a gap
      pc.extents->push_back(Extent{at, len, (r >> 20) % 2 ? nbd::state_hole : 0u});
      at += len;
    }
  }

  Limits limits_;
  Observer* observer_;
  FuzzGate gate_;
  std::unique_ptr<Connection> conn_;
  Instant now_{1'000'000'000};
  ExportInfo export_;         // what the last successful open described
  bool handle_open_ = false;  // between a successful open and its close
  std::map<std::string, std::vector<std::byte>> disks_;
  std::deque<Call> calls_;
  std::deque<SentBytes> sends_;
  bool closed_ = false, aborted_ = false, finished_ = false;
  bool tls_pending_ = false;          // StartTls emitted, TlsDone not yet fed
  std::vector<std::byte> delivered_;  // every client byte fed (the StartTls oracle)
  bool peer_closed_ = false, send_failed_ = false;
};

}  // namespace nbdd::fuzz
