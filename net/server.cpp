#include "net/server.hpp"

#include <sys/wait.h>

#include <boost/asio/post.hpp>
#include <csignal>
#include <thread>

#include "core/assert.hpp"
#include "core/overloaded.hpp"
#include "net/busy_poll.hpp"
#include "net/log.hpp"
#include "net/real_clock.hpp"
#include "plugins/nbdkit/connection_events.hpp"

namespace nbdd::net {
namespace asio = boost::asio;

using core::Overloaded;

Server::Server(const ServerConfig& config)
    : config_(config),
      strand_(asio::make_strand(ioc_)),
      gate_(registry_),
      signals_(strand_, SIGINT, SIGTERM),
      child_signals_(strand_) {
  state_.set_max_connections(config.max_connections);
}

Server::~Server() = default;

plugin::HostHooks Server::hooks() {
  plugin::HostHooks hooks;
  hooks.shutdown = [this] { request_shutdown(); };
  hooks.disconnect = [this](core::ConnectionId id, bool force) {
    registry_.post(id, core::input::DisconnectRequested{force});
  };
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
  for (unsigned i = 1; i < config_.io_threads; ++i) {
    shards_.push_back(std::make_unique<asio::io_context>(1));
    shard_guards_.push_back(asio::make_work_guard(*shards_.back()));
  }
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
  for (auto& shard : shards_) threads.emplace_back([&shard, spin] { run_with_busy_poll(*shard, spin); });
  run_with_busy_poll(ioc_, spin);
  for (auto& t : threads) t.join();
  workers_->join();
  listeners_.clear();  // removes Unix socket files
  return child_status_.value_or(0);
}

asio::io_context& Server::next_shard() {
  const std::size_t n = shards_.size() + 1;
  const std::size_t k = next_shard_++ % n;
  return k == 0 ? ioc_ : *shards_[k - 1];
}

void Server::on_accept(GenericSocket socket) {
  const Strand strand = socket.get_executor();
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
  core::ConnectionConfig config;
  config.id = *id;
  config.accepted_at = now();
  config.limits = config_.limits;
  config.read_only = read_only_;
  config.tls = config_.tls;
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
    pump_server();
    if (single_) shutdown_requested("-s client finished");
  });
}

void Server::on_signal(const boost::system::error_code& ec, int signo) {
  if (ec || exited_) return;
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
  state_.shutdown_requested();
  pump_server();
  shutdowns_handled_.fetch_add(1);
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
                     host_->unload();
                     state_.unload_done();
                   },
                   [&](const core::server_action::Exit&) { do_exit(); },
               },
               *action);
    // Logged once done, so a test that sees "EndConnection" knows the input is queued.
    log::debug("server act " + core::describe(*action));
  }
}

void Server::do_exit() {
  exited_ = true;
  boost::system::error_code ignored;
  signals_.cancel(ignored);
  child_signals_.cancel(ignored);
  for (auto& l : listeners_) l->close();
  // Every session has finished (ServerState only exits after the last one): the shards'
  // threads may end.
  for (auto& guard : shard_guards_) guard.reset();
  for (auto& shard : shards_) shard->stop();
  ioc_.stop();
}

}  // namespace nbdd::net
