// The whole of nbdd's main(): `nbdd [OPTIONS] PLUGIN [KEY=VALUE...]`, nbdkit's command line
// (see docs/daemon.md). Kept out of main() so another executable (nbdd-checked, which taps
// every session into the simulator's checker) runs exactly the same daemon.
// Start-up order as nbdkit's: parse, load and configure the plugin, load the TLS credentials,
// listen, run --run's command, change user (-u/-g), fork into the background, write the pid
// file, the plugin's after_fork, serve. The plugin's preconnect, list_exports and open run
// per connection (issue 21), never at start-up.
#include <netdb.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <set>
#include <string>

#include "nbdd_version.hpp"  // generated: cmake/version.cmake
#include "net/captive.hpp"
#include "net/daemonize.hpp"
#include "net/listener.hpp"
#include "net/log.hpp"
#include "net/options.hpp"
#include "net/run_nbdd.hpp"
#include "net/server.hpp"
#include "net/tls_context.hpp"
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

// --dump-plugin in nbdkit's order: path, name, version, api_version, struct_size,
// max_thread_model, thread_model, errno_is_preserved, magic_config_key, has_* lines, then the
// plugin's own fields. nbdkit's plugins (hosted) report their own values; for nbdd's
// plugins the path is the file their code is in (nbdd itself for the built-ins) and the has_*
// lines say what the Plugin interface can tell: the data calls it implements.
void print_dump(plugin::Plugin& p, const std::string& given) {
  auto fields = p.dump_fields();
  auto take = [&](std::string_view key) -> std::optional<std::string> {
    for (auto it = fields.begin(); it != fields.end(); ++it)
      if (it->first == key) {
        std::string value = std::move(it->second);
        fields.erase(it);
        return value;
      }
    return std::nullopt;
  };
  const bool hosted = [&] {
    for (const auto& f : fields)
      if (f.first == "api_version") return true;
    return false;
  }();
  auto line = [](std::string_view key, std::string_view value) {
    std::printf("%.*s=%.*s\n", static_cast<int>(key.size()), key.data(), static_cast<int>(value.size()), value.data());
  };
  std::string path;
  // A loadable plugin named by its path is that file; a built-in's code is nbdd itself.
  const bool by_path = given.find('/') != std::string::npos ||
                       (given.size() > 3 && given.compare(given.size() - 3, 3, ".so") == 0);  // the loader's rule
  if (auto reported = take("path")) path = *reported;
  else if (char* real = ::realpath(by_path ? given.c_str() : "/proc/self/exe", nullptr)) path = real, std::free(real);
  if (!path.empty()) line("path", path);
  line("name", p.name());
  if (auto v = take("version")) line("version", *v);
  else if (!hosted) line("version", NBDD_VERSION);  // a built-in's version is nbdd's
  line("api_version", take("api_version").value_or("2"));
  for (const char* key : {"struct_size", "max_thread_model"})
    if (auto v = take(key)) line(key, *v);
  line("thread_model", core::to_string(p.thread_model()));
  if (auto v = take("errno_is_preserved")) line("errno_is_preserved", *v);
  if (!p.magic_config_key().empty()) line("magic_config_key", p.magic_config_key());
  if (!hosted) {
    // Every nbdd plugin has these; the rest only when it implements them.
    for (const char* key : {"has_config", "has_config_complete", "has_open", "has_get_size", "has_pread"})
      line(key, "1");
    const std::pair<const char*, bool> optional_calls[] = {
        {"has_pwrite", p.has_pwrite()}, {"has_flush", p.has_flush()},     {"has_trim", p.has_trim()},
        {"has_zero", p.has_zero()},     {"has_extents", p.has_extents()}, {"has_cache", p.has_cache()}};
    for (const auto& [key, present] : optional_calls)
      if (present) line(key, "1");
  }
  for (auto it = fields.begin(); it != fields.end();) {  // nbdkit's has_* lines, in their order
    if (it->first.rfind("has_", 0) == 0) {
      line(it->first, it->second);
      it = fields.erase(it);
    } else {
      ++it;
    }
  }
  if (!p.description().empty()) line("description", p.description());
  for (const auto& [key, value] : fields) line(key, value);
}

// --dump-config: nbdkit's keys where nbdd has the same thing (nbdkit's plugin and filter
// directories are where nbdd finds nbdkit's plugins and filters by name).
void print_config() {
  if (char* exe = ::realpath("/proc/self/exe", nullptr)) {
    std::printf("binary=%s\n", exe);
    std::free(exe);
  }
  std::printf("exit_with_parent=yes\n");
  std::printf("filterdir=%.*s\n", static_cast<int>(plugin::nbdkit_abi::nbdkit_filter_dir().size()),
              plugin::nbdkit_abi::nbdkit_filter_dir().data());
  std::printf("name=nbdd\n");
  std::printf("plugindir=%.*s\n", static_cast<int>(plugin::nbdkit_abi::nbdkit_plugin_dir().size()),
              plugin::nbdkit_abi::nbdkit_plugin_dir().data());
  std::printf("selinux=no\n");
  std::printf("tls=yes\n");
  std::printf("version=%s\n", NBDD_VERSION);
  std::printf("version_git=%s\n", NBDD_GIT_REVISION);
  unsigned major = 0, minor = 0;
  if (std::sscanf(NBDD_VERSION, "%u.%u", &major, &minor) == 2)
    std::printf("version_major=%u\nversion_minor=%u\n", major, minor);
  std::printf("zstd=no\n");  // the memory plugin has no zstd allocator
}

struct TempDir {
  std::string path;
  ~TempDir() {
    if (!path.empty()) ::rmdir(path.c_str());
  }
};

// A path the user gave, made absolute now: a background nbdd changes to / before using it.
std::string absolute_path(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char* cwd = ::getcwd(nullptr, 0);
  if (cwd == nullptr) return path;
  std::string out = std::string(cwd) + "/" + path;
  std::free(cwd);
  return out;
}

// The TCP addresses to listen on: -i's (or every address) as given, or with -4/-6 the
// numeric addresses of that family it resolves to, so the listener binds only those.
std::vector<std::string> tcp_hosts(const net::Options& o, const std::string& port, std::string& error) {
  if (o.family == net::AddressFamily::any) return {o.ipaddr.value_or("")};
  addrinfo hints{};
  hints.ai_family = o.family == net::AddressFamily::ipv4 ? AF_INET : AF_INET6;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const char* host = o.ipaddr ? o.ipaddr->c_str() : nullptr;
  const char* flag = o.family == net::AddressFamily::ipv4 ? "-4" : "-6";
  if (const int rc = ::getaddrinfo(host, port.c_str(), &hints, &found); rc != 0) {
    error = std::string(flag) + ": cannot resolve '" + o.ipaddr.value_or("") + "' port " + port + ": " +
            ::gai_strerror(rc);
    return {};
  }
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    char text[NI_MAXHOST];
    if (::getnameinfo(ai->ai_addr, ai->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) == 0 &&
        seen.insert(text).second)
      out.emplace_back(text);
  }
  ::freeaddrinfo(found);
  if (out.empty()) error = std::string(flag) + ": no address to listen on";
  return out;
}

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
    unix_path = absolute_path(*o.unix_path);  // as nbdkit: $unixsocket, and the unlink at exit after chdir("/")
  }
  if (!unix_path.empty())
    if (auto e = server.listen_unix(unix_path); !e.empty()) return e;
  if (o.wants_tcp()) {
    const std::string port = o.port.value_or("10809");
    std::string e;
    for (const auto& host : tcp_hosts(o, port, e))
      if (e = server.listen_tcp(host, port); !e.empty()) return e;
    if (!e.empty()) return e;
  }
  return {};
}

// --swap (nbdkit's): everything in RAM now and later, so serving a swap device never waits
// for swap. Locks are not inherited across fork: called before it (where a failure is seen)
// and again in the background child.
std::string lock_memory() {
  if (::mlockall(MCL_CURRENT | MCL_FUTURE) != 0) return std::string("--swap: mlockall: ") + std::strerror(errno);
  return {};
}

int run_daemon(const net::Options& o, std::unique_ptr<plugin::Plugin> plugin_ptr) {
  // Under socket activation nbdd never forks, as nbdkit: the activator (systemd, libnbd's
  // `nbdinfo -- [ nbdd ... ]`) waits for this very process.
  const bool foreground = o.foreground || o.single || o.run || o.exit_with_parent || net::socket_activated();
  const std::string pidfile = o.pidfile ? absolute_path(*o.pidfile) : std::string();
  const bool to_syslog = o.log == net::LogDestination::syslog_log ||
                         (o.log == net::LogDestination::automatic && !foreground);
  net::log::configure(o.log == net::LogDestination::null_log ? net::log::Sink::null_sink
                      : to_syslog                            ? net::log::Sink::syslog_sink
                                                             : net::log::Sink::stderr_sink,
                      o.verbose);

  // TLS set-up (net/tls_context.hpp): the credentials load before the server exists, so a bad
  // file fails before listening and forking, and because the mode depends on them (nbdkit:
  // without --tls, TLS is on when certificates load; --tls=on without them falls back to off).
  // Declared before the server, which uses it until run() returns.
  std::string tls_error;
  const std::unique_ptr<net::TlsContext> tls = net::make_tls_context(o, tls_error);
  if (!tls_error.empty()) return fail(tls_error);

  net::ServerConfig config;
  config.limits.grace_period = o.grace_period;
  config.handshake_flags_mask = o.handshake_flags_mask;
  config.structured_replies = !o.no_structured_replies;
  config.limits.handshake_timeout = o.handshake_timeout;
  config.worker_threads = o.threads;
  config.max_connections = o.max_connections;
  config.busy_poll = std::chrono::microseconds(o.busy_poll_us);
  config.io_uring = o.io_uring;
  config.exit_timeout = std::chrono::milliseconds(o.exit_timeout.ns / 1'000'000);
  config.tls = net::effective_tls_mode(o, tls.get());
  net::Server server(config);
  plugin::PluginHost host(std::move(plugin_ptr), server.hooks());
  if (o.single) plugin::nbdkit_abi::set_stdio_in_use(true);  // nbdkit_stdio_safe() is 0 under -s
  if (auto e = host.start(o.plugin_args); !e.empty()) return fail(e);
  // -e NAME: the name NBD_OPT_LIST shows when the plugin has no list_exports of its own.
  if (o.exportname) host.set_export_name_option(*o.exportname);
  server.set_plugin(host, host.plugin().thread_model(), o.readonly);

  server.set_tls(tls.get());  // TLS set-up, continued: null when TLS is off

  TempDir tmp;
  std::string unix_path;
  if (auto e = listen_all(o, server, tmp, unix_path); !e.empty()) return fail(e);
  if (o.exit_with_parent)
    if (auto e = net::exit_with_parent(); !e.empty()) return fail(e);
  // --run's command starts here, as nbdkit's: listening, still as the user who started nbdd
  // (so with -u it can reach a private socket), before the fork. Clients are accepted once
  // the server runs, after the plugin's after_fork.
  pid_t captive = -1;
  // A failure after the command started must not leave it running on its own.
  auto fail_started = [&captive](const std::string& message) {
    if (captive > 0) {
      ::kill(captive, SIGTERM);
      ::waitpid(captive, nullptr, 0);
    }
    return fail(message);
  };
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
    ep.tls = static_cast<int>(config.tls);  // 0 off, 1 on, 2 require, as nbdkit's $tls
    std::string error;
    const pid_t pid = net::spawn_captive(*o.run, ep, error);
    if (pid < 0) return fail(error);
    captive = pid;
    server.watch_captive_child(pid);
  }
  // -u/-g: after binding (a port below 1024 needs root), before anything is served.
  if (auto e = net::change_user(o.user, o.group); !e.empty()) return fail_started(e);
  if (o.swap)
    if (auto e = lock_memory(); !e.empty()) return fail_started(e);
  // Whatever can fail is checked before the fork, where the user still sees the message.
  if (o.pidfile && !foreground)
    if (auto e = net::check_pidfile_writable(pidfile); !e.empty()) return fail_started(e);
  int ready_fd = -1;
  if (!foreground) {
    if (auto e = net::daemonize(server.io_context(), ready_fd); !e.empty()) return fail_started(e);
    if (o.swap)
      if (auto e = lock_memory(); !e.empty()) return fail_started(e);
  }
  {
    // nbdkit's after_fork: after the fork (or the decision not to fork), before serving.
    std::string e;
    if (plugin::nbdkit_abi::after_fork(e) != 0) return fail_started("plugin after_fork: " + e);
  }
  if (o.pidfile)
    if (auto e = net::write_pidfile(pidfile); !e.empty()) return fail_started(e);
  net::daemon_ready(ready_fd);  // the background parent exits 0 now
  return server.run();
}

// nbdkit refuses these with socket activation: the listening sockets are given.
std::string socket_activation_conflict(const net::Options& o) {
  if (!net::socket_activated()) return {};
  const char* flag = o.single ? "-s" : o.run ? "--run" : o.ipaddr ? "-i" : o.port ? "-p" : o.unix_path ? "-U" : nullptr;
  if (flag == nullptr) return {};
  if (o.single)
    return "-s cannot be used with socket activation (LISTEN_FDS): the NBD connection is on a listening "
           "socket, not on stdin";
  return std::string("cannot use socket activation (LISTEN_FDS) with the ") + flag + " option";
}

// -V with a plugin: nbdd's version, then the plugin's name and version (nbdkit's form).
void print_versions(const plugin::Plugin& p) {
  std::fputs(net::version_text().c_str(), stdout);
  std::string version = NBDD_VERSION;
  for (const auto& [key, value] : p.dump_fields())
    if (key == "version") version = value;
  std::printf("%.*s %s\n", static_cast<int>(p.name().size()), p.name().data(), version.c_str());
}

}  // namespace

int nbdd::net::run_nbdd(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  const auto parsed = net::parse_options(argc, argv);
  if (!parsed.ok()) return fail(parsed.error);
  const net::Options& o = parsed.options;
  switch (o.immediate) {
    case net::ImmediateAction::dump_config: print_config(); return 0;
    case net::ImmediateAction::long_options: std::fputs(net::long_options_text().c_str(), stdout); return 0;
    case net::ImmediateAction::short_options: std::fputs(net::short_options_text().c_str(), stdout); return 0;
    case net::ImmediateAction::none: break;
  }
  if (o.plugin.empty() && o.help) {
    std::fputs(net::usage_text().c_str(), stdout);
    return 0;
  }
  if (o.plugin.empty() && o.version) {
    std::fputs(net::version_text().c_str(), stdout);
    return 0;
  }
  if (auto e = socket_activation_conflict(o); !e.empty()) return fail(e);
  // nbdkit warns about -D flags no plugin used; nbdd applies none, so it says so for each.
  for (const auto& flag : o.debug_flags)
    std::fprintf(stderr, "nbdd: warning: -D %s: nbdkit debug flags are not applied by nbdd\n", flag.c_str());
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
  if (o.version) {
    print_versions(*plugin);
    return 0;
  }
  if (o.dump_plugin) {
    print_dump(*plugin, o.plugin);
    return 0;
  }
  try {
    return run_daemon(o, std::move(plugin));
  } catch (const std::exception& e) {  // start-up/configuration failures only (architecture §2)
    return fail(e.what());
  }
}
