// The whole of nbdd's main(): `nbdd [OPTIONS] PLUGIN [KEY=VALUE...]`, nbdkit's command line
// (see docs/daemon.md). Kept out of main() so another executable (nbdd-checked, which taps
// every session into the simulator's checker) runs exactly the same daemon.
// Start-up order as nbdkit's: parse, load and configure the plugin, listen, fork into the
// background, write the pid file, run --run's command, serve. The plugin's preconnect,
// list_exports and open run per connection (issue 21), never at start-up.
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "net/captive.hpp"
#include "net/daemonize.hpp"
#include "net/listener.hpp"
#include "net/log.hpp"
#include "net/options.hpp"
#include "net/run_nbdd.hpp"
#include "net/server.hpp"
#include "plugins/loader.hpp"
#include "plugins/nbdkit/connection_events.hpp"
#include "plugins/nbdkit/filtered_plugin.hpp"
#include "plugins/nbdkit/nbdkit_plugin_adaptor.hpp"

namespace {
using namespace nbdd;

int fail(const std::string& message) {
  std::fprintf(stderr, "nbdd: %s\n", message.c_str());
  return 1;
}

void print_dump(plugin::Plugin& p) {
  std::printf("name=%.*s\n", static_cast<int>(p.name().size()), p.name().data());
  if (!p.description().empty())
    std::printf("description=%.*s\n", static_cast<int>(p.description().size()), p.description().data());
  std::printf("thread_model=%s\n", core::to_string(p.thread_model()));
  if (!p.magic_config_key().empty())
    std::printf("magic_config_key=%.*s\n", static_cast<int>(p.magic_config_key().size()),
                p.magic_config_key().data());
  for (const auto& [key, value] : p.dump_fields()) std::printf("%s=%s\n", key.c_str(), value.c_str());
}

struct TempDir {
  std::string path;
  ~TempDir() {
    if (!path.empty()) ::rmdir(path.c_str());
  }
};

std::string listen_all(const net::Options& o, net::Server& server, TempDir& tmp, std::string& unix_path) {
  if (o.single) return server.serve_stdio();
  std::string error;
  if (server.listen_systemd(error)) return error;
  const bool private_socket = (o.unix_path && *o.unix_path == "-") || (o.run && !o.wants_tcp() && !o.unix_path);
  if (private_socket) {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base && *base ? base : "/tmp") + "/nbddXXXXXX";
    if (!::mkdtemp(templ.data())) return "cannot create a private socket directory in " + templ;
    tmp.path = templ;
    unix_path = templ + "/socket";
  } else if (o.unix_path) {
    unix_path = *o.unix_path;
  }
  if (!unix_path.empty())
    if (auto e = server.listen_unix(unix_path); !e.empty()) return e;
  if (o.wants_tcp())
    if (auto e = server.listen_tcp(o.ipaddr.value_or(""), o.port.value_or("10809")); !e.empty()) return e;
  return {};
}

// A path the user gave, made absolute now: a background nbdd changes to / before using it.
std::string absolute_path(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char* cwd = ::getcwd(nullptr, 0);
  if (cwd == nullptr) return path;
  std::string out = std::string(cwd) + "/" + path;
  std::free(cwd);
  return out;
}

int run_daemon(const net::Options& o, std::unique_ptr<plugin::Plugin> plugin_ptr) {
  // Under socket activation nbdd never forks, as nbdkit: the activator (systemd, libnbd's
  // `nbdinfo -- [ nbdd ... ]`) waits for this very process.
  const bool foreground = o.foreground || o.single || o.run || o.exit_with_parent || net::socket_activated();
  const std::string pidfile = o.pidfile ? absolute_path(*o.pidfile) : std::string();
  const bool to_syslog = o.log == net::LogDestination::syslog_log ||
                         (o.log == net::LogDestination::automatic && !foreground);
  net::log::configure(to_syslog ? net::log::Sink::syslog_sink : net::log::Sink::stderr_sink, o.verbose);

  net::ServerConfig config;
  config.limits.grace_period = o.grace_period;
  config.limits.handshake_timeout = o.handshake_timeout;
  config.worker_threads = o.threads;
  config.max_connections = o.max_connections;
  config.busy_poll = std::chrono::microseconds(o.busy_poll_us);
  net::Server server(config);
  plugin::PluginHost host(std::move(plugin_ptr), server.hooks());
  if (o.single) plugin::nbdkit_abi::set_stdio_in_use(true);  // nbdkit_stdio_safe() is 0 under -s
  if (auto e = host.start(o.plugin_args); !e.empty()) return fail(e);
  // -e NAME: the name NBD_OPT_LIST shows when the plugin has no list_exports of its own.
  if (o.exportname) host.set_export_name_option(*o.exportname);
  server.set_plugin(host, host.plugin().thread_model(), o.readonly);

  TempDir tmp;
  std::string unix_path;
  if (auto e = listen_all(o, server, tmp, unix_path); !e.empty()) return fail(e);
  if (o.exit_with_parent)
    if (auto e = net::exit_with_parent(); !e.empty()) return fail(e);
  // Whatever can fail is checked before the fork, where the user still sees the message.
  if (o.pidfile && !foreground)
    if (auto e = net::check_pidfile_writable(pidfile); !e.empty()) return fail(e);
  int ready_fd = -1;
  if (!foreground)
    if (auto e = net::daemonize(server.io_context(), ready_fd); !e.empty()) return fail(e);
  {
    // nbdkit's after_fork: after the fork (or the decision not to fork), before serving.
    std::string e;
    if (plugin::nbdkit_abi::after_fork(e) != 0) return fail("plugin after_fork: " + e);
  }
  if (o.pidfile)
    if (auto e = net::write_pidfile(pidfile); !e.empty()) return fail(e);
  net::daemon_ready(ready_fd);  // the background parent exits 0 now
  if (o.run) {
    net::CaptiveEndpoint ep;
    if (!unix_path.empty()) ep.unix_path = unix_path;
    ep.host = o.ipaddr;
    for (const auto& l : server.listeners())
      if (auto port = l->tcp_port()) {
        ep.port = port;
        break;
      }
    ep.export_name = o.exportname.value_or("");
    std::string error;
    const pid_t pid = net::spawn_captive(*o.run, ep, error);
    if (pid < 0) return fail(error);
    server.watch_captive_child(pid);
  }
  return server.run();
}

}  // namespace

int nbdd::net::run_nbdd(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  const auto parsed = net::parse_options(argc, argv);
  if (!parsed.ok()) return fail(parsed.error);
  const net::Options& o = parsed.options;
  if (o.version) {
    std::fputs(net::version_text().c_str(), stdout);
    return 0;
  }
  if (o.help && o.plugin.empty()) {
    std::fputs(net::usage_text().c_str(), stdout);
    return 0;
  }
  if (o.single && net::socket_activated())
    return fail("-s cannot be used with socket activation (LISTEN_FDS): the NBD connection is on a listening socket, not on stdin");
  std::string error;
  auto plugin = plugin::load_plugin(o.plugin, error);
  if (!plugin) return fail(error.empty() ? "cannot load plugin '" + o.plugin + "'" : error);
  // nbdkit's filters in front of any plugin (built-in, loadable or nbdkit's): the chain is
  // one Plugin to the host, the core and the server.
  plugin = plugin::nbdkit_abi::wrap_with_filters(std::move(plugin), o.filters, error);
  if (!plugin) return fail(error);
  if (o.help) {
    std::fputs(net::usage_text().c_str(), stdout);
    std::printf("\n%.*s plugin parameters:\n%s\n", static_cast<int>(plugin->name().size()),
                plugin->name().data(), plugin->config_help().c_str());
    return 0;
  }
  if (o.dump_plugin) {
    print_dump(*plugin);
    return 0;
  }
  try {
    return run_daemon(o, std::move(plugin));
  } catch (const std::exception& e) {  // start-up/configuration failures only (architecture §2)
    return fail(e.what());
  }
}
