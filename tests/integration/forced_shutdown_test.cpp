// A forced shutdown really forces (issue 27): a second SIGTERM, or the grace period running
// out after the first, closes every connection at once (also one still in the handshake),
// stops the sh plugin's stuck scripts, and nbdd exits within --exit-timeout whatever the
// plugin does: status 0 when every call returned, 3 (logged) when one is truly stuck.
// Elapsed times are printed ([ time ] lines) so a run on a loaded machine can be judged.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>

#include "tests/integration/daemon_fixture.hpp"
#include "tests/integration/nbd_handle.hpp"
#include "tests/net/raw_client.hpp"

namespace nbdd::itest {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t stuck_offset = 65536;

// pread at 64K sleeps 30 s (in a pipeline, so the sleep is a child of the script);
// its pid goes to $tmpdir/../sleep.pid for the test to check.
std::string stuck_script(const std::string& pid_file) {
  return R"(#!/bin/sh
case "$1" in
  thread_model) echo parallel ;;
  get_size) echo 1048576 ;;
  open) echo handle ;;
  pread)
    if [ "$4" = 65536 ]; then
      sleep 30 &
      echo $! > ")" + pid_file + R"("
      wait
    fi
    head -c "$3" /dev/zero ;;
  *) exit 2 ;;
esac
)";
}

long ms(Clock::duration d) { return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()); }

void report(const char* what, Clock::duration d) { std::printf("[ time     ] %s: %ld ms\n", what, ms(d)); }

bool process_running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_text, comm, state;
  stat >> pid_text >> comm >> state;
  return stat && state != "Z" && state != "X";  // an orphan zombie nobody reaps is dead
}

pid_t read_pid(const std::string& path) {
  std::ifstream in(path);
  pid_t pid = 0;
  in >> pid;
  return pid;
}

class ForcedShutdown : public ::testing::Test {
 protected:
  void SetUp() override {
    script_ = dir_.file("stuck.sh");
    pid_file_ = dir_.file("sleep.pid");
    write_file(script_, stuck_script(pid_file_), true);
  }
  void TearDown() override {
    // A truly stuck call's sleep outlives nbdd's _exit: end it by its pid.
    if (const pid_t pid = read_pid(pid_file_); pid > 0 && process_running(pid)) ::kill(pid, SIGKILL);
  }
  std::unique_ptr<Daemon> start(std::vector<std::string> extra) {
    extra.insert(extra.begin(), "-v");  // the tests synchronise on the debug log
    return Daemon::start_unix(dir_, extra);
  }
  // A client whose pread at the stuck offset has reached the plugin.
  std::int64_t stuck_read(Daemon& d, Nbd& h) {
    EXPECT_EQ(nbd_connect_uri(h, d.uri().c_str()), 0) << Nbd::error();
    const auto cookie = nbd_aio_pread(h, buf_.data(), buf_.size(), stuck_offset, NBD_NULL_COMPLETION, 0);
    EXPECT_GT(cookie, 0) << Nbd::error();
    EXPECT_TRUE(d.wait_log("pread offset=65536"));
    return cookie;
  }
  // Whether the command failed because the connection closed (no reply came).
  static bool closed_without_reply(Nbd& h, std::int64_t cookie) {
    const int r = wait_command(h, cookie);
    return r == -2 || r == ENOTCONN;  // not EIO/ESHUTDOWN: those would be replies
  }
  // SIGTERM, and once the daemon queued the graceful EndConnection, a second one.
  static Clock::time_point two_sigterms(Daemon& d) {
    d.signal(SIGTERM);
    EXPECT_TRUE(d.wait_log("force=false}"));  // signal_set would coalesce two quick signals
    const auto t0 = Clock::now();
    d.signal(SIGTERM);
    return t0;
  }
  TempDir dir_;
  std::string script_, pid_file_;
  std::vector<char> buf_ = std::vector<char>(4096);
};

TEST_F(ForcedShutdown, SecondSigtermStopsAStuckShScriptAndExitsZeroAtOnce) {
  auto d = start({"sh", script_});
  ASSERT_TRUE(d);
  Nbd h;
  const auto cookie = stuck_read(*d, h);
  for (int i = 0; i < 1000 && read_pid(pid_file_) <= 0; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_GT(read_pid(pid_file_), 0) << "the script's sleep started";
  const auto t0 = two_sigterms(*d);
  EXPECT_TRUE(closed_without_reply(h, cookie));
  const auto closed = Clock::now() - t0;
  const auto status = d->wait_exit(20s);
  const auto exited = Clock::now() - t0;
  report("second SIGTERM -> connection closed", closed);
  report("second SIGTERM -> exit", exited);
  EXPECT_EQ(status, 0) << d->stderr_text();
  EXPECT_LT(exited, 1500ms) << "the script is stopped (SIGTERM to its group) at once";
  EXPECT_FALSE(process_running(read_pid(pid_file_))) << "the script's sleep was in its process group";
  EXPECT_EQ(d->stderr_text().find("stuck plugin call"), std::string::npos);
}

TEST_F(ForcedShutdown, SecondSigtermClosesAClientInTheHandshakeAtOnce) {
  // A long grace period and handshake timeout: only the forced shutdown can close it soon.
  auto d = start({"--grace-period=20", "--handshake-timeout=30", "sh", script_});
  ASSERT_TRUE(d);
  nbdd::testing::RawClient mid;  // connected, sends nothing
  ASSERT_TRUE(mid.connect_unix(d->socket()));
  ASSERT_TRUE(d->wait_log("conn=1 accepted"));
  const auto t0 = two_sigterms(*d);
  EXPECT_TRUE(mid.wait_closed(5000));
  const auto closed = Clock::now() - t0;
  const auto status = d->wait_exit(20s);
  const auto exited = Clock::now() - t0;
  report("second SIGTERM -> handshake client closed", closed);
  report("second SIGTERM -> exit", exited);
  EXPECT_EQ(status, 0) << d->stderr_text();
  EXPECT_LT(closed, 1000ms);
  EXPECT_LT(exited, 1500ms);
}

TEST_F(ForcedShutdown, GracePeriodRunningOutForcesAStuckCallAndExitsZero) {
  auto d = start({"--grace-period=1", "sh", script_});
  ASSERT_TRUE(d);
  Nbd h;
  const auto cookie = stuck_read(*d, h);
  const auto t0 = Clock::now();
  d->signal(SIGTERM);  // only one
  EXPECT_TRUE(closed_without_reply(h, cookie));
  const auto status = d->wait_exit(20s);
  const auto exited = Clock::now() - t0;
  report("one SIGTERM, grace 1 s -> exit", exited);
  EXPECT_EQ(status, 0) << d->stderr_text();
  EXPECT_TRUE(d->stderr_text().find("shutdown forced") != std::string::npos) << d->stderr_text();
  EXPECT_GE(exited, 900ms) << "the grace period is waited for first";
  EXPECT_LT(exited, 1000ms + 2000ms) << "then at most --exit-timeout";
}

// nbdkit's own eval plugin (C, hosted) runs its script and waits for it in poll(): nbdd
// cannot stop that call, so the watchdog ends the process after --exit-timeout.
TEST_F(ForcedShutdown, TrulyStuckCallIsLoggedAndExitsThreeAfterExitTimeout) {
  if (nbdkit_binary().empty()) GTEST_SKIP() << "nbdkit (its eval plugin) is not installed";
  auto d = start({"--exit-timeout=1s", "eval", "get_size=echo 1048576", "thread_model=echo parallel",
                  "pread=echo $$ > '" + pid_file_ + "'; exec sleep 30"});
  ASSERT_TRUE(d);
  Nbd h;
  const auto cookie = stuck_read(*d, h);
  const auto t0 = two_sigterms(*d);
  EXPECT_TRUE(closed_without_reply(h, cookie));
  const auto closed = Clock::now() - t0;
  const auto status = d->wait_exit(20s);
  const auto exited = Clock::now() - t0;
  report("second SIGTERM -> connection closed", closed);
  report("second SIGTERM -> exit 3 (exit timeout 1 s)", exited);
  EXPECT_EQ(status, 3) << d->stderr_text();
  EXPECT_LT(closed, 500ms);
  EXPECT_GE(exited, 1000ms);
  EXPECT_LT(exited, 3000ms);  // the 1 s bound, plus a loaded or sanitized (TSan) machine
  const std::string err = d->stderr_text();
  EXPECT_NE(err.find("exiting with status 3 without unloading the plugin"), std::string::npos) << err;
  EXPECT_NE(err.find("stuck plugin call: "), std::string::npos) << err;
  EXPECT_EQ(err.find("server act Unload"), std::string::npos) << "no unload while a call is inside the plugin";
}

}  // namespace
}  // namespace nbdd::itest
