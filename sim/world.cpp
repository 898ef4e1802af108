#include "sim/world.hpp"

#include <variant>

#include "sim/scenario.hpp"
#include "sim/world_memory.hpp"

namespace nbdd::sim {

const char* to_string(OutcomeKind kind) {
  switch (kind) {
    case OutcomeKind::ok: return "ok";
    case OutcomeKind::correctness: return "correctness";
    case OutcomeKind::liveness: return "liveness";
    case OutcomeKind::crash: return "crash";
    case OutcomeKind::nondeterminism: return "nondeterminism";
  }
  return "?";
}

// TigerBeetle's VOPR codes, plus one for nondeterminism.
int exit_code(OutcomeKind kind) {
  switch (kind) {
    case OutcomeKind::ok: return 0;
    case OutcomeKind::crash: return 127;
    case OutcomeKind::liveness: return 128;
    case OutcomeKind::correctness: return 129;
    case OutcomeKind::nondeterminism: return 131;
  }
  return 1;
}

struct World::ServerConn {
  core::ConnectionId id = 0;
  std::unique_ptr<core::Connection> conn;
  SimClient* client = nullptr;
  Pipe* to_client = nullptr;
  // Received, not yet read: the bytes the client's pipe delivered and core has not read.
  // They stay in the pipe's buffer (Pipe::unread), so each byte is copied once fewer.
  Pipe* from_client = nullptr;
  std::size_t rx_size() const { return from_client->unread().size(); }
  const std::byte* rx_data() const { return from_client->unread().data(); }
  void rx_consume(std::size_t n) { from_client->consume(n); }
  void rx_clear() { from_client->consume_all(); }
  bool rx_fin = false, rx_reset = false, eof_fed = false, read_scheduled = false;
  // core's wants_read() as of its last step: it changes only when core runs (feed), so the
  // deliveries and reads in between ask core once (World::wants_read).
  bool wants_read_known = false, wants_read = false;
  bool last_read_partial = false;  // do_read: the last read took a random part of what was there
  std::uint64_t deadline_gen = 0;
  std::optional<core::Instant> armed;
  core::Instant last_send_done{};
  bool send_failed_fed = false, closed = false, aborted = false, finished = false;
  std::uint32_t running_calls = 0;
  // The simulated TLS layer (between StartTls and its TlsDone): the client's hello bytes
  // collected so far, and whether it was wrong; decided = its outcome is on its way.
  bool tls_handshaking = false, tls_decided = false, tls_hello_bad = false;
  std::size_t tls_hello_got = 0;
};

class World::Gate final : public core::CallGate {
 public:
  explicit Gate(World& w) : w_(w) {}
  bool try_acquire(core::ConnectionId id) override {
    const bool got = gate_.try_acquire(id);
    w_.checker_->on_gate(id, w_.now(), InvariantChecker::GateCall::try_acquire, got);
    return got;
  }
  void release(core::ConnectionId id) override {
    w_.checker_->on_gate(id, w_.now(), InvariantChecker::GateCall::release, true);
    if (auto next = gate_.release(id)) {
      w_.marks().hit("gate_handover");
      w_.feed_later(*next, core::input::GateOpened{});
    }
  }
  bool cancel(core::ConnectionId id) override {
    // Cancelling a gate we were already handed (GateOpened still in the queue) releases it.
    const bool held = gate_.holder() == id;
    if (held) w_.marks().hit("gate_cancel_raced_handover");
    w_.checker_->on_gate(id, w_.now(), InvariantChecker::GateCall::cancel, held);
    if (auto next = gate_.cancel(id)) w_.feed_later(*next, core::input::GateOpened{});
    return held;
  }

 private:
  World& w_;
  core::ExclusiveGate gate_;
};

World::World(const FaultProfile& profile, WorldOptions options)
    : profile_(profile),
      options_(options),
      prng_(!options.tape                 ? Prng(profile.seed)
            : options.tape->recording() ? Prng(profile.seed, options.tape)
                                        : Prng(*options.tape)),
      trace_(options.full_trace, stdout, options.replay_only ? 0 : 40),
      net_prng_(prng_.fork()),
      client_prng_(prng_.fork()),
      plugin_prng_(prng_.fork()) {
  if (options_.replay_only) marks_.turn_off();  // the first run counted them
  setup();
}

World::~World() = default;

void World::setup() {
  limits_.in_flight_max = profile_.in_flight_max;
  limits_.grace_period = core::Duration{profile_.grace_period_ns};
  limits_.handshake_timeout = core::Duration{profile_.handshake_timeout_ns};
  limits_.staged_bytes_max = profile_.staged_bytes_max;
  limits_.request_bytes_max = profile_.request_bytes_max;
  limits_.option_data_bytes_max = profile_.option_data_bytes_max;
  gate_ = std::make_unique<Gate>(*this);
  server_.set_grace_period(limits_.grace_period);
  if (profile_.memory_plugin) memory_ = make_memory_backend(profile_);
  if (memory_)
    marks_.hit("memory_plugin");
  else
    profile_.memory_plugin = false;
  plugin_ = std::make_unique<SimPlugin>(plugin_prng_.fork(), profile_);
  CheckerConfig cc;
  cc.limits = limits_;
  cc.thread_model = profile_.thread_model;
  cc.read_only = profile_.read_only;
  cc.tls = profile_.tls;
  // The memory plugin serves every name from one array; the sim plugin has a disk per name.
  cc.one_disk_for_all_names = memory_ != nullptr;
  cc.enabled = !options_.replay_only;
  checker_ = std::make_unique<InvariantChecker>(cc);
}

World::ServerConn* World::find(core::ConnectionId id) {
  return id < conn_index_.size() ? conn_index_[id] : nullptr;
}

void World::client_failure(std::uint32_t client, const std::string& what, const char* invariant) {
  if (client_failure_) return;
  client_failure_ = "client " + std::to_string(client) + ": " + what;
  client_failure_invariant_ = invariant;
}

// ---- accept ------------------------------------------------------------------------------

void World::connect(SimClient& client) {
  const auto admitted = server_.admit();
  checker_->on_admit(now(), admitted.has_value());
  if (!admitted) {
    trace_.record(now(), 0, "srv", "connection refused (not admitting)");
    queue_.at(now() + core::Duration{net_prng_.range_inclusive(profile_.net_delay_min_ns, profile_.net_delay_max_ns)},
              [&client] { client.refused(); });
    return;
  }
  const core::ConnectionId id = *admitted;
  client_conn_[client.index()] = id;
  auto sc = std::make_unique<ServerConn>();
  sc->id = id;
  sc->client = &client;
  Pipe::Shape shape{profile_.net_delay_min_ns, profile_.net_delay_max_ns, profile_.segment_bytes_max,
                    profile_.cut_writes};
  auto c2s = std::make_unique<Pipe>(
      queue_, clock_, net_prng_.fork(), shape,
      [this, id](std::span<const std::byte>) {  // the bytes stay in the pipe until read
        ServerConn* s = find(id);
        if (!s) return;
        if (s->closed || s->rx_reset) {
          s->rx_clear();  // nobody reads them any more
          return;
        }
        after_delivery(*s);
      },
      [this, id](bool reset) {
        ServerConn* s = find(id);
        if (!s) return;
        if (reset) {
          s->rx_reset = true;
          s->rx_clear();
        } else {
          s->rx_fin = true;
        }
        after_delivery(*s);
      });
  auto s2c = std::make_unique<Pipe>(
      queue_, clock_, net_prng_.fork(), shape, [&client](std::span<const std::byte> bytes) { client.on_bytes(bytes); },
      [&client](bool reset) { client.on_end(reset); });
  c2s->set_receiver_consumes(true);
  client.attach(c2s.get());
  sc->from_client = c2s.get();
  sc->to_client = s2c.get();
  pipes_.push_back(std::move(c2s));
  pipes_.push_back(std::move(s2c));

  core::ConnectionConfig cfg;
  cfg.id = id;
  cfg.accepted_at = now();
  cfg.limits = limits_;
  cfg.read_only = profile_.read_only;
  cfg.thread_model = profile_.thread_model;
  cfg.tls = profile_.tls;
  cfg.gate = gate_.get();
  checker_->on_connection(id, now());  // first: the constructor may already take the gate
  sc->conn = std::make_unique<core::Connection>(cfg);
  ServerConn& ref = *sc;
  if (conn_index_.size() <= id) conn_index_.resize(id + 1, nullptr);
  conn_index_[id] = sc.get();
  conns_.emplace(id, std::move(sc));
  trace_.record(now(), id, "srv", "accepted client " + std::to_string(client.index()));
  drain(ref);
}

// ---- the driver --------------------------------------------------------------------------

void World::feed_later(core::ConnectionId id, core::Input in) {
  queue_.at(now(), [this, id, in] { feed(id, in); });
}

void World::feed(core::ConnectionId id, const core::Input& in) {
  ServerConn* sc = find(id);
  if (!sc || sc->finished || stopped_) return;
  trace_.record(now(), id, "in ", in);
  checker_->on_input(id, now(), in);
  if (tap_) tap_->before_input(id, now(), *sc->conn, in);
  sc->wants_read_known = false;
  sc->conn->handle(now(), in);
  drain(*sc);
}

void World::drain(ServerConn& sc) {
  while (!sc.finished) {
    auto act = sc.conn->next_action();
    if (!act) {
      if (tap_) tap_->drained(sc.id, now(), *sc.conn);
      break;
    }
    trace_.record(now(), sc.id, "act", *act);
    checker_->on_action(sc.id, now(), *act);
    if (tap_) tap_->action(sc.id, now(), *act);
    execute(sc, *act);
  }
  if (!sc.finished) checker_->on_status(sc.id, now(), sc.conn->status());
  after_step(sc);
}

void World::execute(ServerConn& sc, core::Action& act) {
  std::visit(
      [&](auto& a) {
        using T = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<T, core::action::Send>) {
          if (sc.aborted) return;  // the checker reports it; nothing reaches the wire
          if (sc.rx_reset || sc.to_client->closed()) {
            if (!sc.send_failed_fed) {
              sc.send_failed_fed = true;
              marks_.hit("send_failed");
              feed_later(sc.id, core::input::SendFailed{});
            }
            return;
          }
          sc.to_client->write(a.header, a.payload);
          const std::uint64_t bytes = a.header.size() + a.payload.size();
          core::Instant done = now() + core::Duration{net_prng_.range_inclusive(0, 1000 + bytes / 8)};
          if (done < sc.last_send_done) done = sc.last_send_done;
          sc.last_send_done = done;
          const core::ConnectionId id = sc.id;
          queue_.at(done, [this, id] {
            ServerConn* s = find(id);
            if (s && !s->aborted && !s->send_failed_fed) feed(id, core::input::SendDone{});
          });
        } else if constexpr (std::is_same_v<T, core::action::CallPlugin>) {
          start_call(sc, a);
        } else if constexpr (std::is_same_v<T, core::action::Close>) {
          if (a.mode == core::CloseMode::abort) {
            sc.aborted = true;
            sc.to_client->reset();
          } else {
            sc.to_client->close();
          }
          sc.closed = true;
          sc.rx_clear();
        } else if constexpr (std::is_same_v<T, core::action::StartTls>) {
          // The ACK went out with the Sends before this; the TLS layer now takes the
          // client's hello (the early bytes first), then decides (tls_read).
          sc.tls_handshaking = true;
          sc.tls_decided = false;
          sc.tls_hello_got = 0;
          sc.tls_hello_bad = false;
          tls_take_hello(sc, a.early);
        } else if constexpr (std::is_same_v<T, core::action::Finished>) {
          sc.finished = true;
          sc.closed = true;
          if (!sc.aborted) sc.to_client->close();
          server_.finished(sc.id);
          drain_server();
        }
      },
      act);
}

// The simulated TLS handshake: the client sends sim_tls_client_hello, the layer answers
// sim_tls_server_hello and reports TlsDone{true}, unless the profile makes it fail (a bad
// certificate: TlsDone{false}), stall (never reports: the handshake timeout must end it),
// the hello is wrong, or the peer hangs up first (TlsDone{false}).
void World::tls_take_hello(ServerConn& sc, std::span<const std::byte> bytes) {
  const std::size_t n = std::min(bytes.size(), sim_tls_hello_bytes - sc.tls_hello_got);
  for (std::size_t i = 0; i < n; ++i)
    if (bytes[i] != sim_tls_client_hello[sc.tls_hello_got + i]) sc.tls_hello_bad = true;
  sc.tls_hello_got += n;
  if (bytes.size() > n) marks_.hit("tls_bytes_beyond_hello");  // stay for the core, after TLS
}

void World::tls_step(ServerConn& sc) {
  if (!sc.tls_handshaking || sc.tls_decided || sc.closed) return;
  if (sc.tls_hello_got < sim_tls_hello_bytes && sc.rx_size() != 0) {
    const std::size_t n = std::min(sc.rx_size(), sim_tls_hello_bytes - sc.tls_hello_got);
    tls_take_hello(sc, std::span<const std::byte>(sc.rx_data(), n));
    sc.rx_consume(n);
  }
  const core::ConnectionId id = sc.id;
  const core::Instant at = now() + core::Duration{net_prng_.range_inclusive(1'000, 3'000'000)};
  if (sc.tls_hello_got < sim_tls_hello_bytes) {
    if (!sc.rx_fin && !sc.rx_reset) return;  // wait for the rest of the hello
    sc.tls_decided = true;
    marks_.hit("tls_cut_by_hangup");
    queue_.at(at, [this, id] { feed(id, core::input::TlsDone{false}); });
    return;
  }
  sc.tls_decided = true;
  if (sc.tls_hello_bad || (faults_active_ && net_prng_.chance(profile_.tls_fail))) {
    marks_.hit(sc.tls_hello_bad ? "tls_bad_client_hello" : "tls_layer_failed");
    queue_.at(at, [this, id] { feed(id, core::input::TlsDone{false}); });
    return;
  }
  if (faults_active_ && net_prng_.chance(profile_.tls_stall)) {
    marks_.hit("tls_stalled");
    return;
  }
  sc.to_client->write(std::span<const std::byte>(sim_tls_server_hello, sim_tls_hello_bytes));
  queue_.at(at, [this, id] {
    ServerConn* s = find(id);
    if (s) s->tls_handshaking = false;
    feed(id, core::input::TlsDone{true});
  });
}

void World::after_step(ServerConn& sc) {
  if (sc.finished) return;
  tls_step(sc);
  arm_deadline(sc);
  schedule_read(sc);
}

// Bytes (or FIN/RST) arrived and core did not run: its deadline cannot have moved.
void World::after_delivery(ServerConn& sc) {
  if (sc.finished) return;
  tls_step(sc);
  schedule_read(sc);
}

void World::arm_deadline(ServerConn& sc) {
  const auto d = sc.conn->deadline();
  if (d != sc.armed) {
    sc.armed = d;
    ++sc.deadline_gen;
    if (d) {
      const std::uint64_t gen = sc.deadline_gen;
      const core::ConnectionId id = sc.id;
      queue_.at(*d < now() ? now() : *d, [this, id, gen] {
        ServerConn* s = find(id);
        if (!s || s->finished || s->deadline_gen != gen) return;
        s->armed.reset();
        const auto dl = s->conn->deadline();
        if (dl && *dl <= now()) feed(id, core::input::DeadlineReached{});
        else after_step(*s);
      });
    }
  }
}

bool World::wants_read(ServerConn& sc) {
  if (!sc.wants_read_known) {
    sc.wants_read = sc.conn->wants_read();
    sc.wants_read_known = true;
  }
  return sc.wants_read;
}

void World::schedule_read(ServerConn& sc) {
  if (!sc.read_scheduled && !sc.closed && wants_read(sc) &&
      (sc.rx_size() != 0 || ((sc.rx_fin || sc.rx_reset) && !sc.eof_fed))) {
    sc.read_scheduled = true;
    const core::ConnectionId id = sc.id;
    queue_.at(now() + core::Duration{net_prng_.below(2000)}, [this, id] { do_read(id); });
  }
}

void World::do_read(core::ConnectionId id) {
  ServerConn* sc = find(id);
  if (!sc || sc->finished) return;
  sc->read_scheduled = false;
  if (sc->closed || !wants_read(*sc)) return;
  if (sc->rx_size() == 0) {
    if ((sc->rx_fin || sc->rx_reset) && !sc->eof_fed) {
      sc->eof_fed = true;
      feed(id, core::input::PeerClosed{});
    }
    return;
  }
  std::size_t cap = profile_.read_bytes_max;
  if (cap < 512 && net_prng_.below(4) != 0) cap = 4096;  // tiny reads one time in four
  std::size_t n = std::min<std::size_t>(sc->rx_size(), cap);
  // Half the reads take what is there (up to the cap), half a random part of it (in worlds
  // with partial_reads; otherwise all take what is there); the read after a partial one takes
  // what is there, so a message costs a read or two, not one per random cut of what is left.
  if (sc->last_read_partial) {
    sc->last_read_partial = false;
  } else if (profile_.partial_reads && net_prng_.coin()) {
    const std::size_t all = n;
    n = static_cast<std::size_t>(net_prng_.range_inclusive(1, n));
    sc->last_read_partial = n < all;
  }
  // Half the reads go into core's read window (asked for only then: it is a call into core),
  // half hand core a foreign buffer.
  const std::span<std::byte> window = net_prng_.coin() ? sc->conn->read_window() : std::span<std::byte>();
  const std::byte* from = sc->rx_data();
  if (!window.empty()) {
    n = std::min(n, window.size());
    std::copy_n(from, n, window.begin());
    sc->rx_consume(n);
    marks_.hit("read_into_window");
    feed(id, core::input::BytesReceived{std::span<const std::byte>(window.data(), n)});
  } else {
    // A foreign buffer: core reads it during handle() and keeps nothing. The pipe's buffer
    // is not reallocated before then: only the client writes into it, in events of its own
    // (consuming moves an offset; Close and RST only consume).
    n = std::min<std::size_t>(n, limits_.staged_bytes_max);
    sc->rx_consume(n);
    feed(id, core::input::BytesReceived{std::span<const std::byte>(from, n)});
  }
}

// ---- plugin calls ------------------------------------------------------------------------

void World::start_call(ServerConn& sc, const core::action::CallPlugin& cp) {
  ++sc.running_calls;
  if (options_.scripted && faults_active_ && (options_.hold_lifecycle || !core::is_lifecycle(cp.call.kind))) {
    held_.push_back(HeldCall{sc.id, cp.slot, cp.call});
    return;
  }
  const std::uint32_t index = park(HeldCall{sc.id, cp.slot, cp.call});
  queue_.at(now() + core::Duration{options_.scripted ? 1000 : plugin_->latency_ns()},
            [this, index] { complete_parked(index); });
}

std::uint32_t World::park(const HeldCall& call) {
  if (parked_free_.empty()) {
    parked_.push_back(call);
    return static_cast<std::uint32_t>(parked_.size() - 1);
  }
  const std::uint32_t index = parked_free_.back();
  parked_free_.pop_back();
  parked_[index] = call;
  return index;
}

void World::complete_parked(std::uint32_t index) {
  const HeldCall h = parked_[index];
  parked_free_.push_back(index);
  complete_call(h.id, h.slot, h.call);
}

void World::complete_call(core::ConnectionId id, core::SlotId slot, core::PluginCall call) {
  ServerConn* sc = find(id);
  if (!sc || stopped_) return;
  PluginEffects fx;
  int err = 0;
  const bool faults = faults_active_ && !options_.scripted;
  if (memory_) {
    err = memory_->run(id, call, fx);
    PluginEffects extra;
    plugin_->callback_effects(call, faults, extra);  // the real plugin makes none by itself
    fx.disconnect = fx.disconnect || extra.disconnect;
    fx.force = fx.force || extra.force;
    fx.shutdown = fx.shutdown || extra.shutdown;
  } else {
    err = plugin_->run(id, call, faults, fx);
  }
  if (core::is_lifecycle(call.kind) && (fx.disconnect || fx.shutdown))
    marks_.hit(fx.shutdown ? "lifecycle_call_shutdown" : "lifecycle_call_disconnect");
  trace_.record(now(), id, "plg", PluginReturn{err, fx.disconnect, fx.force, fx.shutdown});
  if (fx.disconnect) {
    marks_.hit(fx.force ? "plugin_called_disconnect_force" : "plugin_called_disconnect");
    feed(id, core::input::DisconnectRequested{fx.force});
  }
  if (fx.shutdown) {
    marks_.hit("plugin_called_shutdown");
    request_shutdown("plugin shutdown()");
  }
  --sc->running_calls;
  feed(id, core::input::PluginDone{slot, err});
}

// ---- server lifecycle --------------------------------------------------------------------

void World::request_shutdown(const char* why) {
  if (exited_) return;
  trace_.record(now(), 0, "srv", std::string("shutdown requested: ") + why);
  checker_->on_shutdown_requested(now());
  const bool first = !shutdown_requested_;
  shutdown_requested_ = true;
  server_.shutdown_requested(now());
  drain_server();
  // The grace period of the shutdown: ServerState forces whoever is still live then.
  if (first)
    if (const auto at = server_.deadline())
      queue_.at(*at, [this] {
        if (exited_) return;
        server_.on_deadline(now());
        drain_server();
      });
}

void World::drain_server() {
  while (auto act = server_.next_action()) {
    trace_.record(now(), 0, "srv", *act);
    checker_->on_server_action(now(), *act);
    std::visit(
        [&](auto& a) {
          using T = std::decay_t<decltype(a)>;
          if constexpr (std::is_same_v<T, core::server_action::EndConnection>) {
            if (a.force)
              feed_later(a.id, core::input::ShutdownForced{});
            else
              feed_later(a.id, core::input::ShutdownRequested{});
          } else if constexpr (std::is_same_v<T, core::server_action::Unload>) {
            plugin_->unload();
            if (memory_) memory_->unload();
            marks_.hit("unload");
            server_.unload_done();
          } else if constexpr (std::is_same_v<T, core::server_action::Exit>) {
            exited_ = true;
          }
        },
        *act);
  }
}

void World::end_faults() {
  faults_active_ = false;
  trace_.record(now(), 0, "srv", "fault phase over");
  liveness_deadline_ = now() + core::Duration{profile_.liveness_bound_ns};
  if (!shutdown_requested_) request_shutdown("end of the fault phase");
  // release anything a scenario held back
  while (!held_.empty()) {
    const std::uint32_t index = park(held_.front());
    held_.pop_front();
    queue_.at(now() + core::Duration{1000}, [this, index] { complete_parked(index); });
  }
}

// ---- the run loop --------------------------------------------------------------------------

Outcome World::finish(OutcomeKind kind, std::string reason) {
  Outcome out;
  out.kind = kind;
  out.reason = std::move(reason);
  out.violation = checker_->violation();
  out.trace_hash = trace_.hash();
  out.trace_records = trace_.records();
  out.events = events_;
  out.requests = requests_;
  if (options_.tape) {
    out.tape_used = options_.tape->used();
    out.tape_past_end = options_.tape->past_end();
  }
  out.end = now();
  out.marks = std::move(marks_);  // the run is over: nothing counts after this
  out.marks.merge(checker_->marks());
  return out;
}

bool World::loop(std::optional<core::Instant> until) {
  for (;;) {
    if (queue_.empty() || (until && queue_.next_at() > *until)) {
      if (!until) return false;
      clock_.advance_to(*until);
      checker_->on_time(now());
      if (checker_->violation()) {
        stopped_ = true;
        return false;
      }
      return true;
    }
    core::Instant at;
    auto fn = queue_.pop(at);
    clock_.advance_to(at);
    ++events_;
    checker_->on_time(now());
    if (!checker_->violation()) fn();
    if (checker_->violation() || client_failure_) {
      stopped_ = true;
      return false;
    }
    if (exited_) return false;
    if (now() > liveness_deadline_ || events_ > options_.max_events) return false;
  }
}

Outcome World::run() {
  trace_.record(now(), 0, "srv", "world seed=" + std::to_string(profile_.seed));
  const std::uint32_t total = profile_.clients + profile_.late_clients;
  for (std::uint32_t i = 0; i < total; ++i) {
    const bool late = i >= profile_.clients;
    clients_.push_back(std::make_unique<SimClient>(*this, i + 1, client_prng_.fork(), profile_, false));
    SimClient* c = clients_.back().get();
    std::uint64_t at = client_prng_.below(profile_.connect_spread_ns + 1);
    if (late) at = (profile_.shutdown_at_ns ? *profile_.shutdown_at_ns : profile_.faults_end_ns) + client_prng_.below(5'000'000);
    queue_.at(core::Instant{at}, [c] { c->start(); });
  }
  if (profile_.shutdown_at_ns) queue_.at(core::Instant{*profile_.shutdown_at_ns}, [this] { request_shutdown("signal"); });
  if (profile_.second_signal_at_ns)
    queue_.at(core::Instant{*profile_.second_signal_at_ns}, [this] { request_shutdown("second signal"); });
  queue_.at(core::Instant{profile_.faults_end_ns}, [this] { end_faults(); });
  loop(std::nullopt);
  return conclude();
}

Outcome World::conclude() {
  if (client_failure_) {
    Violation v{client_failure_invariant_, 0, now(), *client_failure_ + " (seen by the client)"};
    auto out = finish(OutcomeKind::correctness, "");
    if (!out.violation) out.violation = v;
    return out;
  }
  if (checker_->violation()) return finish(OutcomeKind::correctness, "");
  if (!exited_) {
    std::string why = queue_.empty() ? "nothing left to happen (stuck)" : events_ > options_.max_events ? "event budget exhausted" : "liveness bound passed";
    return finish(OutcomeKind::liveness, why + "; pending:\n" + checker_->pending_summary());
  }
  checker_->at_end(now(), true);
  if (checker_->violation()) return finish(OutcomeKind::correctness, "");
  return finish(OutcomeKind::ok, "");
}

}  // namespace nbdd::sim
