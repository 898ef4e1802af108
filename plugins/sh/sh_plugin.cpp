// ShPlugin: the script runner and the server-lifecycle methods. Per-connection and data
// methods are in sh_data.cpp.
#include "plugins/sh/sh_plugin.hpp"

#include "plugins/sh/export_list_text.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

extern char** environ;

namespace nbdd::plugin::sh {
namespace {

// Enough for nbdd's 10000 listed exports with long names; a longer answer is an error
// rather than a list cut in the middle of a name.
constexpr std::size_t list_output_max = 16 << 20;

std::string_view trim_text(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r' || s.back() == '\t')) s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n')) s.remove_prefix(1);
  return s;
}

std::optional<ThreadModel> parse_thread_model(std::string_view text) {
  if (text == "serialize_connections") return ThreadModel::serialize_connections;
  if (text == "serialize_all_requests") return ThreadModel::serialize_all_requests;
  if (text == "serialize_requests") return ThreadModel::serialize_requests;
  if (text == "parallel") return ThreadModel::parallel;
  return std::nullopt;
}

}  // namespace

std::string flags_string(std::uint32_t flags) {
  std::string text;
  auto add = [&](std::uint32_t bit, const char* name) {
    if (!(flags & bit)) return;
    if (!text.empty()) text += ',';
    text += name;
  };
  add(flag::fua, "fua");
  add(flag::may_trim, "may_trim");
  add(flag::req_one, "req_one");
  add(flag::fast_zero, "fast_zero");
  return text;
}

ShPlugin::~ShPlugin() { remove_tmpdir(); }

void ShPlugin::remove_tmpdir() {
  if (tmpdir_.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(tmpdir_, ignored);
  tmpdir_.clear();
}

int ShPlugin::load(Host& host) {
  Plugin::load(host);
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/nbdd-sh-XXXXXX";
  if (!::mkdtemp(pattern.data())) {
    const int err = errno;
    host.error("mkdtemp " + pattern + ": " + std::strerror(err));
    return err;
  }
  tmpdir_ = pattern;
  // The child environment is ours plus tmpdir=..., built once: spawning reads it from
  // many threads, and setenv() in a threaded process is unsafe.
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "tmpdir=", 7) != 0) env_strings_.emplace_back(*e);
  env_strings_.push_back("tmpdir=" + tmpdir_);
  for (auto& s : env_strings_) envp_.push_back(s.data());
  envp_.push_back(nullptr);
  return 0;
}

Status ShPlugin::call(std::vector<std::string> args, OutputSink& out, std::span<const std::byte> input) {
  const std::string method = args.empty() ? std::string() : args.front();
  args.insert(args.begin(), script_);
  ProcessResult result;
  if (int r = run_process(args, envp_.data(), input, out, result); r != 0) {
    host().error(script_ + ": cannot run: " + std::strerror(r));
    Status failed;
    failed.outcome = Outcome::error;
    failed.err = EIO;
    return failed;
  }
  Status status = classify_exit(result.exit_code, result.error_text);
  switch (status.effect) {
    case SideEffect::none: break;
    case SideEffect::shutdown: host().shutdown(); break;
    case SideEffect::disconnect: host().disconnect(false); break;
    case SideEffect::disconnect_force: host().disconnect(true); break;
  }
  if (status.outcome == Outcome::error) {
    std::string message = status.message;
    if (message.empty())
      message = result.exit_code < 0 ? "killed by signal " + std::to_string(result.signal)
                                     : "exit status " + std::to_string(result.exit_code);
    host().error(method + ": " + message);
  }
  return status;
}

Status ShPlugin::call(std::vector<std::string> args) {
  OutputSink out;
  return call(std::move(args), out);
}

int ShPlugin::status_to_errno(const Status& s, std::string_view method, int if_missing) {
  switch (s.outcome) {
    case Outcome::ok: return 0;
    case Outcome::missing: return if_missing;
    case Outcome::error: return s.err != 0 ? s.err : EIO;
    case Outcome::false_: break;
  }
  host().error(std::string(method) + ": exit status 3 (false) is only meaningful for can_* methods");
  return EIO;
}

int ShPlugin::set_script(std::string_view path) {
  if (!script_.empty()) {
    host().error("script given twice");
    return EINVAL;
  }
  if (path != "-") {
    std::error_code ec;
    script_ = std::filesystem::absolute(std::filesystem::path(path), ec).string();
    if (ec) script_ = std::string(path);
    return 0;
  }
  // Inline script: copy stdin to $tmpdir/inline-script and run that.
  script_ = tmpdir_ + "/inline-script";
  const int fd = ::open(script_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
  if (fd < 0) return errno;
  char buffer[8192];
  int result = 0;
  for (;;) {
    const ssize_t n = ::read(script_stdin_fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) result = errno;
    if (n <= 0) break;
    if (::write(fd, buffer, static_cast<std::size_t>(n)) != n) {
      result = errno ? errno : EIO;
      break;
    }
  }
  ::close(fd);
  if (result != 0) host().error("reading the script from stdin: " + std::string(std::strerror(result)));
  return result;
}

int ShPlugin::config(std::string_view key, std::string_view value) {
  if (key == "script") {
    if (int r = set_script(value); r != 0) return r;
    return status_to_errno(call({"load"}), "load", 0);
  }
  if (script_.empty()) {
    host().error("script=PATH must come before other parameters");
    return EINVAL;
  }
  const Status s = call({"config", std::string(key), std::string(value)});
  if (s.outcome == Outcome::missing) host().error("the script takes no parameters (no config method)");
  return status_to_errno(s, "config", EINVAL);
}

int ShPlugin::config_complete() {
  if (script_.empty()) {
    host().error("the script parameter is required");
    return EINVAL;
  }
  if (int r = status_to_errno(call({"config_complete"}), "config_complete", 0); r != 0) return r;
  OutputSink out;
  const Status s = call({"thread_model"}, out);
  if (s.outcome == Outcome::missing) return 0;  // keep serialize_all_requests
  if (int r = status_to_errno(s, "thread_model", 0); r != 0) return r;
  const auto model = parse_thread_model(trim_text(out.text));
  if (!model) {
    host().error("thread_model: unknown model '" + std::string(trim_text(out.text)) + "'");
    return EINVAL;
  }
  thread_model_ = *model;
  return 0;
}

int ShPlugin::get_ready() { return status_to_errno(call({"get_ready"}), "get_ready", 0); }

void ShPlugin::unload() {
  if (!script_.empty()) call({"unload"});
  remove_tmpdir();
}

// Missing: accepted (nbdkit-sh). Exit 1 (or any error) refuses the client before the
// greeting.
int ShPlugin::preconnect(bool readonly) {
  return status_to_errno(call({"preconnect", readonly ? "true" : "false"}), "preconnect", 0);
}

// Prints the name (or any list_exports format: its first name). Missing: "". An error
// refuses the default export: a client asking for "" is turned away.
std::optional<std::string> ShPlugin::default_export(bool readonly) {
  OutputSink out;
  const Status s = call({"default_export", readonly ? "true" : "false", host().is_tls() ? "true" : "false"}, out);
  if (s.outcome == Outcome::missing) return std::string();
  if (status_to_errno(s, "default_export", 0) != 0) return std::nullopt;
  return first_listed_name(out.text);
}

// Output in one of export_list_text.hpp's formats. Missing: the default export only, as a
// plugin without list_exports.
int ShPlugin::list_exports(bool readonly, ExportList& out) {
  OutputSink text;
  text.text_max = list_output_max;
  const Status s = call({"list_exports", readonly ? "true" : "false", host().is_tls() ? "true" : "false"}, text);
  if (s.outcome == Outcome::missing) {
    out.use_default();
    return 0;
  }
  if (int r = status_to_errno(s, "list_exports", 0); r != 0) return r;
  if (text.total > text.text.size()) {
    host().error("list_exports: more than " + std::to_string(text.text_max) + " bytes of output");
    return EIO;
  }
  // Names or descriptions over 4096 bytes, and entries past nbdd's limit, are dropped.
  for (const ListedExport& e : parse_export_list(text.text)) out.add(e.name, e.description);
  return 0;
}

}  // namespace nbdd::plugin::sh
