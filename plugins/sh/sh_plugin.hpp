// `sh script=PATH` (or `script=-`: the script is read from stdin at start-up): every
// callback runs `SCRIPT METHOD ARGS...` with nbdkit-sh-plugin(3)'s calling convention and
// exit codes (exit_status.hpp), so users and tests can write plugins, and trigger
// shutdown()/disconnect(), in a few lines of shell. Each plugin instance gets a fresh
// temporary directory, passed to the script as $tmpdir and removed at unload.
//
// Arguments and results as nbdkit's: booleans are "true"/"false", flags a comma list of
// fua,may_trim,fast_zero,req_one (possibly empty), the handle is whatever `open` printed.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "plugins/plugin_api.hpp"
#include "plugins/sh/exit_status.hpp"
#include "plugins/sh/subprocess.hpp"

namespace nbdd::plugin::sh {

class ShPlugin final : public Plugin {
 public:
  // script_stdin_fd: where `script=-` reads the script from (tests pass a pipe).
  explicit ShPlugin(int script_stdin_fd = 0) : script_stdin_fd_(script_stdin_fd) {}
  ~ShPlugin() override;

  std::string_view name() const override { return "sh"; }
  std::string_view description() const override { return "runs a shell script for every callback"; }
  std::string_view magic_config_key() const override { return "script"; }
  std::string config_help() const override {
    return "script=PATH  The script to run (- : read it from stdin); other KEY=VALUE go to it";
  }
  std::vector<std::pair<std::string, std::string>> dump_fields() const override {
    return {{"max_known_status", std::to_string(max_known_status)}};
  }
  ThreadModel thread_model() const override { return thread_model_; }

  int load(Host& host) override;
  int config(std::string_view key, std::string_view value) override;
  int config_complete() override;
  int get_ready() override;
  void unload() override;
  int preconnect(bool readonly) override;
  std::optional<std::string> default_export(bool readonly) override;
  int list_exports(bool readonly, ExportList& out) override;

  int open(bool readonly, std::string_view export_name, std::unique_ptr<Handle>& out) override;
  void close(Handle& h) override;
  std::string export_description(Handle& h) override;
  int get_size(Handle& h, std::uint64_t& size) override;
  int block_size(Handle& h, std::uint32_t& minimum, std::uint32_t& preferred, std::uint32_t& maximum) override;
  int can_write(Handle& h) override { return boolean(h, "can_write"); }
  int can_flush(Handle& h) override { return boolean(h, "can_flush"); }
  int can_trim(Handle& h) override { return boolean(h, "can_trim"); }
  int can_zero(Handle& h) override { return boolean(h, "can_zero"); }
  int can_fast_zero(Handle& h) override { return boolean(h, "can_fast_zero"); }
  int can_fua(Handle& h) override { return mode(h, "can_fua"); }
  int can_multi_conn(Handle& h) override { return boolean(h, "can_multi_conn"); }
  int can_cache(Handle& h) override { return mode(h, "can_cache"); }
  int can_extents(Handle& h) override { return boolean(h, "can_extents"); }
  int is_rotational(Handle& h) override { return boolean(h, "is_rotational"); }

  int pread(Handle& h, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t flags) override;
  int pwrite(Handle& h, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t flags) override;
  int flush(Handle& h, std::uint32_t flags) override;
  int trim(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override;
  int zero(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override;
  int extents(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags,
              ExtentSink& sink) override;
  int cache(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override;

  // The script decides with can_*; these only say the callbacks exist.
  bool has_pwrite() const override { return true; }
  bool has_flush() const override { return true; }
  bool has_trim() const override { return true; }
  bool has_zero() const override { return true; }
  bool has_extents() const override { return true; }
  bool has_cache() const override { return true; }

  const std::string& tmpdir() const { return tmpdir_; }

 private:
  // Runs the script; performs shutdown()/disconnect() side effects and attaches error
  // messages to the host. `out` receives stdout.
  Status call(std::vector<std::string> args, OutputSink& out, std::span<const std::byte> input = {});
  Status call(std::vector<std::string> args);
  // Helpers for the common result shapes.
  int boolean(Handle& h, const char* method);               // 1 / 0 / -errno; missing = 0
  int mode(Handle& h, const char* method);                  // none/emulate/native
  int status_to_errno(const Status& s, std::string_view method, int if_missing);
  int set_script(std::string_view path);
  void remove_tmpdir();

  int script_stdin_fd_;
  std::string script_;
  std::string tmpdir_;
  std::vector<std::string> env_strings_;
  std::vector<char*> envp_;
  ThreadModel thread_model_ = ThreadModel::serialize_all_requests;  // nbdkit-sh's default
};

// "fua,may_trim" etc. from call flags, in nbdkit-sh's order.
std::string flags_string(std::uint32_t flags);

}  // namespace nbdd::plugin::sh
