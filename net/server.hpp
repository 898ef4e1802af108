// The daemon: the I/O shards, the listeners, every ConnectionSession, the worker pool and
// the signals. It drives core::ServerState on its own strand (accepting -> draining ->
// unloading -> done): SIGINT/SIGTERM, the plugin's shutdown() and the end of --run's
// command are all ServerState::shutdown_requested(); the second one forces, and so does
// the grace period running out (a timer at ServerState::deadline()). Once forced, the sh
// plugin's scripts are stopped and the ExitWatchdog bounds the time to exit (exit_timeout).
//
// I/O runs on io_threads shards, one io_context and one thread each (shard 0 is the main
// io_context, which also holds the listeners, the signals and the server strand). A new
// connection goes to the next shard in turn and stays there. On io_uring (the default when
// the kernel allows it) shard 0 serves no connection and io_threads more shards each run a
// ring (net/uring_loop.hpp). Two threads sharing one
// io_context hand every completion across threads through the scheduler's condition
// variable (bench/README.md: a futex wake-up per request); one thread per shard does not.
#pragma once
#include <sys/types.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/limits.hpp"
#include "core/server_state.hpp"
#include "core/thread_model.hpp"
#include "net/busy_poll.hpp"
#include "net/connection_session.hpp"
#include "net/exit_watchdog.hpp"
#include "net/io_uring_use.hpp"
#include "net/listener.hpp"
#include "net/net_gate.hpp"
#include "net/session_registry.hpp"
#include "net/uring_loop.hpp"
#include "net/worker_pool.hpp"
#include "plugins/plugin_host.hpp"

namespace nbdd::net {

struct ServerConfig {
  core::Limits limits;
  unsigned worker_threads = 16;
  unsigned io_threads = 2;
  std::size_t max_connections = 0;  // 0 = unlimited
  std::chrono::microseconds busy_poll = busy_poll_default;  // longest spin of an I/O thread; 0 = never
  // Once shutdown is forced (second signal, or grace_period after the first one ran out):
  // how long to wait for plugin calls still running before exiting without unload (status 3).
  std::chrono::milliseconds exit_timeout{2000};
  // --tls: the mode every connection's core runs in (set_tls() gives the credentials).
  core::TlsMode tls = core::TlsMode::off;
  std::uint16_t handshake_flags_mask = 0xffff;  // --mask-handshake
  bool structured_replies = true;               // false: --no-sr
  // Connections' socket I/O on io_uring (net/uring_loop.hpp) when io_uring_wanted() says so
  // for the listeners and the kernel allows it; otherwise Asio's epoll. --io-uring.
  IoUringUse io_uring = IoUringUse::unix_only;
};

class Server {
 public:
  explicit Server(const ServerConfig& config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Hooks for the PluginHost (which is created after the Server and outlives run()).
  plugin::HostHooks hooks();
  // read_only (-r): every connection's exports are read-only, and the plugin's preconnect,
  // list_exports and open are told so.
  void set_plugin(plugin::PluginHost& host, core::ThreadModel model, bool read_only);
  // The TLS credentials for STARTTLS (required unless config.tls is off). After set_plugin().
  void set_tls(TlsContext* tls);

  // Listening; each returns an error message ("" on success). Call before run().
  std::string listen_tcp(const std::string& host, const std::string& port);
  std::string listen_unix(const std::string& path);
  bool listen_systemd(std::string& error);
  std::string serve_stdio();  // -s: one client on stdin/stdout, exit when it ends
  const Listeners& listeners() const { return listeners_; }

  // --run: watch this child; when it exits, shut down and exit with its status.
  void watch_captive_child(pid_t pid);

  // Thread-safe: the same as one SIGTERM.
  void request_shutdown();
  // Blocks until ServerState says Exit. Returns the process exit status.
  int run();

  boost::asio::io_context& io_context() { return ioc_; }
  std::size_t live_sessions() const { return registry_.size(); }
  // Shutdown requests fully handled (every EndConnection queued); for tests.
  int shutdowns_handled() const { return shutdowns_handled_.load(); }
  // Whether connections run on io_uring: false until run() has set the shards up, and false
  // when io_uring_wanted() said no or the kernel refused it (tests check which transport
  // they ran on).
  bool uses_io_uring() const { return io_uring_active_.load(); }

 private:
  void on_accept(GenericSocket socket);
  // peer_fd: the accepted socket, read once for nbdkit_peer_* (-1: stdio, no peer).
  void add_session(const Strand& strand, std::unique_ptr<Stream> stream, int peer_fd = -1);
  void on_session_finished(core::ConnectionId id);
  void on_signal(const boost::system::error_code& ec, int signo);
  void on_child_signal(const boost::system::error_code& ec);
  bool reap_child();
  void shutdown_requested(const char* why);
  void pump_server();
  void arm_grace_timer();  // at ServerState::deadline(), if any
  void on_forced();        // once, when ServerState says forced
  void maybe_give_memory_back();  // malloc_trim once most connections of a burst ended
  // How long the sh plugin's scripts get after SIGTERM, before SIGKILL, once forced: a
  // quarter of exit_timeout, so a stopped call, close and unload all fit in it.
  std::chrono::milliseconds script_kill_after() const { return config_.exit_timeout / 4; }
  void do_exit();
  boost::asio::io_context& next_shard();
  void start_shards();
  void add_shards(unsigned count);

  ServerConfig config_;
  // Shards 1..io_threads-1, created by run() (after daemonize()'s fork), each kept running
  // by a work guard until do_exit(). Declared first, destroyed last: handlers still queued
  // on shard 0 (an accepted socket) hold strands of these shards.
  std::vector<std::unique_ptr<boost::asio::io_context>> shards_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> shard_guards_;
  // One ring per entry of shards_ on io_uring (there are then io_threads of them
  // besides shard 0, and connections go only to them). Destroyed before shards_: a ring torn down completes what
  // it still holds, which may free sessions and their timers on those shards.
  std::vector<std::unique_ptr<UringLoop>> loops_;
  boost::asio::io_context ioc_{1};  // shard 0; concurrency hint: one thread runs it
  std::size_t next_shard_ = 0;
  Strand strand_;
  std::unique_ptr<WorkerPool> workers_;  // started by run(): no threads before daemonize()'s fork
  SessionRegistry registry_;
  NetGate gate_;
  core::ServerState state_;
  plugin::PluginHost* host_ = nullptr;
  bool read_only_ = false;
  core::ThreadModel thread_model_ = core::ThreadModel::parallel;
  std::unique_ptr<SessionContext> context_;
  Listeners listeners_;
  boost::asio::signal_set signals_;
  boost::asio::signal_set child_signals_;
  boost::asio::basic_waitable_timer<std::chrono::steady_clock, boost::asio::wait_traits<std::chrono::steady_clock>,
                                    Strand>
      grace_timer_;
  std::optional<core::Instant> grace_timer_at_;
  bool force_handled_ = false;
  // Since the last malloc_trim (maybe_give_memory_back()): connections finished, most live.
  std::size_t finished_since_trim_ = 0;
  std::size_t live_peak_ = 0;
  static constexpr std::size_t trim_after_connections = 16;
  ExitWatchdog watchdog_;
  pid_t child_pid_ = -1;
  std::optional<int> child_status_;
  bool single_ = false;
  bool exited_ = false;
  std::atomic<int> shutdowns_handled_{0};
  std::atomic<bool> io_uring_active_{false};
};

}  // namespace nbdd::net
