#include "net/server.hpp"

#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <thread>

#include "core/assert.hpp"
#include "core/overloaded.hpp"
#include "net/busy_poll.hpp"
#include "net/uring_stream.hpp"
#include "net/log.hpp"
#include "net/real_clock.hpp"
#include "plugins/nbdkit/connection_events.hpp"
#include "plugins/sh/subprocess.hpp"

namespace nbdd::net {
namespace asio = boost::asio;

using core::Overloaded;

namespace {
// Resident memory of this process in KiB (/proc/self/statm), for the debug log; 0 if unknown.
long rss_kib() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long size = 0, resident = 0;
  const bool ok = std::fscanf(f, "%ld %ld", &size, &resident) == 2;
  std::fclose(f);
  return ok ? resident * (::sysconf(_SC_PAGESIZE) / 1024) : 0;
}
}  // namespace

Server::Server(const ServerConfig& config)
    : config_(config),
      strand_(asio::make_strand(ioc_)),
      gate_(registry_),
      signals_(strand_, SIGINT, SIGTERM),
      child_signals_(strand_),
      grace_timer_(strand_) {
  state_.set_max_connections(config.max_connections);
  state_.set_grace_period(config.limits.grace_period);
}

Server::~Server() = default;

plugin::HostHooks Server::hooks() {
  plugin::HostHooks hooks;
  hooks.shutdown = [this] { request_shutdown(); };
  // Only ever called on the thread running that connection's call (PluginHost checks the
  // call context): the session feeds it with the call's result (note_plugin_disconnect).
  hooks.disconnect = [](core::ConnectionId id, bool force) { note_plugin_disconnect(id, force); };
  hooks.debug = [](std::string_view message) { log::debug(message); };
  return hooks;
}

void Server::set_plugin(plugin::PluginHost& host, core::ThreadModel model, bool read_only) {
  host_ = &host;
  thread_model_ = model;
  read_only_ = read_only;
  const bool nonblocking = host.plugin().nonblocking();
  context_ = std::make_unique<SessionContext>(
      SessionContext{nullptr, host, [this](core::ConnectionId id) { on_session_finished(id); }, nonblocking,
                     nonblocking && host.lends_reads()});
}

void Server::set_tls(TlsContext* tls) {
  NBDD_ASSERT(context_ != nullptr);  // after set_plugin()
  context_->tls = tls;
}

std::string Server::listen_tcp(const std::string& host, const std::string& port) {
  return net::listen_tcp(ioc_, strand_, host, port, listeners_);
}

std::string Server::listen_unix(const std::string& path) {
  return net::listen_unix(strand_, path, listeners_);
}

bool Server::listen_systemd(std::string& error) { return net::listen_systemd(strand_, listeners_, error); }

std::string Server::serve_stdio() {
  // Called before run(): nothing else touches the state yet.
  single_ = true;
  std::string error;
  const Strand strand = asio::make_strand(ioc_);
  auto stream = make_stdio_stream(strand, error);
  if (!stream) return error;
  add_session(strand, std::move(stream));
  return {};
}

void Server::watch_captive_child(pid_t pid) {
  child_pid_ = pid;
  child_signals_.add(SIGCHLD);
  child_signals_.async_wait([this](const boost::system::error_code& ec, int) { on_child_signal(ec); });
  // The child may have exited before SIGCHLD was caught.
  asio::post(strand_, [this] {
    if (reap_child()) shutdown_requested("--run command exited");
  });
}

void Server::request_shutdown() {
  asio::post(strand_, [this] { shutdown_requested("plugin requested shutdown"); });
}

int Server::run() {
  NBDD_ASSERT(host_ != nullptr);
  workers_ = std::make_unique<WorkerPool>(config_.worker_threads);
  context_->workers = workers_.get();
  // After signals_ registered Asio's handler (the constructor), before any I/O thread runs.
  watchdog_.start({config_.exit_timeout,
                   std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::nanoseconds(config_.limits.grace_period.ns)),
                   [kill_after = script_kill_after()] { plugin::sh::stop_all_scripts(kill_after); }});
  start_shards();
  signals_.async_wait([this](const boost::system::error_code& ec, int signo) { on_signal(ec, signo); });
  asio::post(strand_, [this] {
    for (auto& l : listeners_) {
      log::debug("listening on " + l->what());
      l->start([this](GenericSocket socket) { on_accept(std::move(socket)); },
               [this]() -> asio::io_context& { return next_shard(); });
    }
  });
  std::vector<std::thread> threads;
  const auto spin = config_.busy_poll;
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    UringLoop* loop = i < loops_.size() ? loops_[i].get() : nullptr;
    asio::io_context* shard = shards_[i].get();
    threads.emplace_back([shard, loop, spin] {
      if (loop) loop->run(spin);
      else run_with_busy_poll(*shard, spin);
    });
  }
  run_with_busy_poll(ioc_, spin);
  for (auto& t : threads) t.join();
  workers_->join();
  listeners_.clear();  // removes Unix socket files
  watchdog_.cancel();  // the plugin is unloaded: nothing of it can hold the exit up now
  return child_status_.value_or(0);
}

// On io_uring, every connection goes to a ring shard and shard 0 keeps the listeners, the
// signals and the server strand; on epoll, shard 0 serves connections too.
void Server::start_shards() {
  const bool all_unix = !listeners_.empty() && std::all_of(listeners_.begin(), listeners_.end(),
                                                           [](const auto& l) { return l->is_unix(); });
  bool rings = !single_ && io_uring_wanted(config_.io_uring, all_unix);
  if (!rings) {
    log::debug("io_uring not used (--io-uring and the listeners): connections run on epoll");
  } else {
    add_shards(std::max(config_.io_threads, 1u));
    for (auto& shard : shards_) {
      std::string why;
      auto loop = UringLoop::create(*shard, why);
      if (!loop) {
        log::debug("io_uring not used (" + why + "): connections run on epoll");
        rings = false;
        loops_.clear();
        shard_guards_.clear();
        shards_.clear();
        break;
      }
      loops_.push_back(std::move(loop));
    }
    if (rings) {
      log::debug("io_uring: " + std::to_string(loops_.size()) + " I/O threads");
      io_uring_active_ = true;
      return;
    }
  }
  add_shards(config_.io_threads > 1 ? config_.io_threads - 1 : 0);  // shard 0 is the first
}

void Server::add_shards(unsigned count) {
  for (unsigned i = 0; i < count; ++i) {
    shards_.push_back(std::make_unique<asio::io_context>(1));
    shard_guards_.push_back(asio::make_work_guard(*shards_.back()));
  }
}

asio::io_context& Server::next_shard() {
  if (!loops_.empty()) return *shards_[next_shard_++ % shards_.size()];
  const std::size_t n = shards_.size() + 1;
  const std::size_t k = next_shard_++ % n;
  return k == 0 ? ioc_ : *shards_[k - 1];
}

void Server::on_accept(GenericSocket socket) {
  const Strand strand = socket.get_executor();
  if (UringLoop* loop = UringLoop::of(strand.context())) {
    boost::system::error_code ec;
    const int fd = socket.release(ec);  // out of Asio's epoll: the ring does this socket's I/O
    if (ec) {
      log::error("accept: " + ec.message());
      return;
    }
    add_session(strand, make_uring_stream(fd, *loop), fd);
    return;
  }
  const int fd = socket.native_handle();
  add_session(strand, make_socket_stream(std::move(socket)), fd);
}

void Server::add_session(const Strand& strand, std::unique_ptr<Stream> stream, int peer_fd) {
  const auto id = state_.admit();
  if (!id) {
    log::debug("connection refused (shutting down or --max-connections reached)");
    stream->close();
    if (single_) shutdown_requested("-s client refused");
    return;
  }
  live_peak_ = std::max(live_peak_, state_.live_connections());
  core::ConnectionConfig config;
  config.id = *id;
  config.accepted_at = now();
  config.limits = config_.limits;
  config.read_only = read_only_;
  config.tls = config_.tls;
  config.handshake_flags_mask = config_.handshake_flags_mask;
  config.structured_replies = config_.structured_replies;
  config.thread_model = thread_model_;
  config.gate = &gate_;
  // Before the session's first plugin call (preconnect): who is on the other end.
  plugin::nbdkit_abi::connection_started(*id, peer_fd);
  auto session = std::make_shared<ConnectionSession>(strand, std::move(stream), config, *context_);
  registry_.add(*id, session);
  log::debug("conn=" + std::to_string(*id) + " accepted");
  session->start();
}

void Server::on_session_finished(core::ConnectionId id) {
  asio::post(strand_, [this, id] {
    plugin::nbdkit_abi::connection_finished(id);  // frees what nbdkit plugins interned on it
    registry_.remove(id);
    state_.finished(id);
    ++finished_since_trim_;
    maybe_give_memory_back();
    pump_server();
    arm_grace_timer();
    if (single_) shutdown_requested("-s client finished");
  });
}

// Load dropped: most connections of a burst ended (all, or all but an eighth of the most
// there were since the last trim). What they used (core slot buffers, sessions, Asio's
// operation memory) is free again, but glibc keeps freed memory in its heaps and per-thread
// arenas, so RSS stayed at the burst's peak and crept up burst after burst (issue 27: 37 MiB
// after 1,000 connections, 64 MiB after 8 rounds). malloc_trim() gives the free pages
// back. On the server strand, at most once per trim_after_connections finished connections:
// the walk over the heaps is not worth it after a single client.
void Server::maybe_give_memory_back() {
  const std::size_t live = state_.live_connections();
  if (finished_since_trim_ < trim_after_connections || live * 8 > live_peak_) return;
  finished_since_trim_ = 0;
  live_peak_ = live;
  const long before = rss_kib();
  const auto t0 = std::chrono::steady_clock::now();
  ::malloc_trim(0);
  if (log::verbose()) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
    log::debug("load dropped to " + std::to_string(live) + " connections: memory given back, rss " +
               std::to_string(before) + " -> " + std::to_string(rss_kib()) + " KiB in " +
               std::to_string(us.count()) + " us");
  }
}

void Server::on_signal(const boost::system::error_code& ec, int signo) {
  if (ec || exited_) return;
  watchdog_.signal_handled();  // the server's rule takes over from the watchdog's count
  shutdown_requested(signo == SIGINT ? "SIGINT" : "SIGTERM");
  signals_.async_wait([this](const boost::system::error_code& e, int s) { on_signal(e, s); });
}

bool Server::reap_child() {
  if (child_pid_ <= 0 || child_status_) return false;
  int status = 0;
  if (::waitpid(child_pid_, &status, WNOHANG) != child_pid_) return false;
  child_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

void Server::on_child_signal(const boost::system::error_code& ec) {
  if (ec || exited_) return;
  if (reap_child()) {
    shutdown_requested("--run command exited");
    return;
  }
  child_signals_.async_wait([this](const boost::system::error_code& e, int) { on_child_signal(e); });
}

void Server::shutdown_requested(const char* why) {
  if (exited_) return;
  log::debug(std::string("shutdown requested: ") + why);
  plugin::nbdkit_abi::server_shutting_down();  // every nbdkit_nanosleep wakes (ESHUTDOWN)
  state_.shutdown_requested(now());
  pump_server();
  arm_grace_timer();
  shutdowns_handled_.fetch_add(1);
}

void Server::arm_grace_timer() {
  const auto deadline = state_.deadline();
  if (exited_ || deadline == grace_timer_at_) return;
  grace_timer_at_ = deadline;
  if (!deadline) {
    grace_timer_.cancel();
    return;
  }
  grace_timer_.expires_at(to_time_point(*deadline));
  grace_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || exited_) return;  // cancelled: the deadline went away or moved
    grace_timer_at_.reset();
    state_.on_deadline(now());
    pump_server();
    arm_grace_timer();  // fired early (nothing forced): wait again
  });
}

// Every live connection is being told ShutdownForced (EndConnection{force}). What could
// still hold the exit up is a plugin call that does not return: ask the sh plugin's
// scripts to stop, and let the watchdog end the process if the calls are still stuck
// after exit_timeout.
void Server::on_forced() {
  force_handled_ = true;
  log::debug("shutdown forced: exiting within " + std::to_string(config_.exit_timeout.count()) + " ms");
  // SIGTERM to every script now, SIGKILL later: a script that ignores SIGTERM still ends
  // well within exit_timeout.
  plugin::sh::stop_all_scripts(script_kill_after());
  watchdog_.arm(config_.exit_timeout);
}

void Server::pump_server() {
  while (!exited_) {
    auto action = state_.next_action();
    if (!action) break;
    std::visit(Overloaded{
                   [&](const core::server_action::StopAccepting&) {
                     for (auto& l : listeners_) l->close();
                   },
                   [&](const core::server_action::EndConnection& end) {
                     if (end.force) registry_.post(end.id, core::input::ShutdownForced{});
                     else registry_.post(end.id, core::input::ShutdownRequested{});
                   },
                   [&](const core::server_action::Unload&) {
                     const RunningCall running("unload");
                     host_->unload();
                     state_.unload_done();
                   },
                   [&](const core::server_action::Exit&) { do_exit(); },
               },
               *action);
    // Logged once done, so a test that sees "EndConnection" knows the input is queued.
    log::debug("server act " + core::describe(*action));
  }
  if (state_.forced() && !force_handled_ && !exited_) on_forced();
}

void Server::do_exit() {
  exited_ = true;
  boost::system::error_code ignored;
  signals_.cancel(ignored);
  child_signals_.cancel(ignored);
  grace_timer_.cancel();
  for (auto& l : listeners_) l->close();
  // Every session has finished (ServerState only exits after the last one): the shards'
  // threads may end.
  for (auto& guard : shard_guards_) guard.reset();
  for (auto& shard : shards_) shard->stop();
  for (auto& loop : loops_) loop->wake();  // a ring shard sleeps outside Asio
  ioc_.stop();
}

}  // namespace nbdd::net
