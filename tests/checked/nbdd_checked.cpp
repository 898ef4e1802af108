// nbdd-checked: the nbdd daemon (run_nbdd, the very same code) with the simulator's
// InvariantChecker watching every connection through net/session_tap.hpp. The integration
// tests run it instead of nbdd, so every real-client test also checks the invariants of
// docs/invariants.md on the real transport. The first violation is printed on stderr as
//   nbdd-checked: VIOLATION INV-... conn=N: message
// and the process exits at once with status 70.
//
// Connection-level invariants only (the server-level ones need ServerState's events, which
// the daemon does not report); INV-GRACE-DEADLINE with 2 s of slack (real timers fire late
// under sanitizers); the read oracle (INV-READ-MODEL) only with NBDD_CHECK_DISK=1 and a
// plugin whose disk starts zeroed (memory).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include "net/run_nbdd.hpp"
#include "net/session_tap.hpp"
#include "sim/invariants/checker.hpp"

namespace {

using namespace nbdd;

class CheckerTap final : public net::SessionTap {
 public:
  void on_connection(const core::ConnectionConfig& config, std::string_view plugin_name) override {
    const std::lock_guard lock(mutex_);
    if (!checker_) {
      sim::CheckerConfig cc;
      cc.limits = config.limits;
      cc.read_only = config.read_only;
      cc.thread_model = config.thread_model;
      cc.tls = config.tls;
      cc.server_level = false;
      const char* disk = std::getenv("NBDD_CHECK_DISK");
      cc.check_disk = disk != nullptr && std::string(disk) == "1";
      cc.one_disk_for_all_names = plugin_name == "memory";
      cc.grace_slack = core::Duration::from_ms(2000);
      checker_ = std::make_unique<sim::InvariantChecker>(cc);
    }
    const core::Instant t = tick();
    checker_->on_connection(config.id, t);
    verdict();
  }
  void on_input(core::ConnectionId id, const core::Input& input) override {
    const std::lock_guard lock(mutex_);
    const core::Instant t = tick();
    checker_->on_input(id, t, input);
    verdict();
  }
  void on_action(core::ConnectionId id, const core::Action& action) override {
    const std::lock_guard lock(mutex_);
    const core::Instant t = tick();
    checker_->on_action(id, t, action);
    verdict();
  }
  void on_status(core::ConnectionId id, core::Status status) override {
    const std::lock_guard lock(mutex_);
    checker_->on_status(id, tick(), status);
    verdict();
  }

 private:
  // Read under the lock, so the checker sees time move forward across every thread.
  core::Instant tick() {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_);
    core::Instant t{static_cast<std::uint64_t>(ns.count())};
    if (t < last_) t = last_;
    last_ = t;
    checker_->on_time(t);
    return t;
  }
  void verdict() {
    const auto& v = checker_->violation();
    if (!v) return;
    std::fprintf(stderr, "nbdd-checked: VIOLATION %s conn=%llu: %s\n", v->invariant.c_str(),
                 static_cast<unsigned long long>(v->conn), v->message.c_str());
    std::fflush(stderr);
    ::_exit(70);
  }

  std::mutex mutex_;
  std::unique_ptr<sim::InvariantChecker> checker_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  core::Instant last_{};
};

}  // namespace

int main(int argc, char** argv) {
  static CheckerTap tap;  // lives until exit: sessions may still report while run_nbdd returns
  net::install_session_tap(&tap);
  return net::run_nbdd(argc, argv);
}
