// The sh plugin's side of a forced shutdown: stop_all_scripts() ends a stuck script and
// everything it started (its process group), escalates to SIGKILL when SIGTERM is ignored,
// stops waiting for output a grandchild outside the group holds, and gives a script started
// afterwards its kill_after first.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "plugins/sh/subprocess.hpp"
#include "tests/plugins/temp_dir.hpp"

namespace nbdd::test {
namespace {

using namespace std::chrono_literals;
using plugin::sh::OutputSink;
using plugin::sh::ProcessResult;
using plugin::sh::resume_scripts;
using plugin::sh::run_process;
using plugin::sh::stop_all_scripts;
using Clock = std::chrono::steady_clock;

constexpr auto kill_after = 300ms;

class ShStop : public ::testing::Test {
 protected:
  void SetUp() override { resume_scripts(); }
  void TearDown() override { resume_scripts(); }

  struct Run {
    int rc = -1;
    ProcessResult result;
    OutputSink out;
    Clock::duration took{};
  };
  // Runs `script` on this thread; stop_all_scripts() from another one after `stop_after`.
  Run run_and_stop(const std::string& script, std::chrono::milliseconds stop_after) {
    const std::string path = dir_.write("s.sh", script, true);
    Run run;
    std::thread stopper([&] {
      std::this_thread::sleep_for(stop_after);
      stop_all_scripts(kill_after);
    });
    const auto t0 = Clock::now();
    run.rc = run_process({path}, environ, {}, run.out, run.result);
    run.took = Clock::now() - t0;
    stopper.join();
    return run;
  }
  // Whether the pid a script wrote to `name` is still running.
  bool alive(const std::string& name) {
    std::ifstream in(dir_.file(name));
    pid_t pid = 0;
    in >> pid;
    if (pid <= 0) return false;
    // A zombie is dead: in a container nobody may reap an orphan.
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string pid_text, comm, state;
    stat >> pid_text >> comm >> state;
    return stat && state != "Z" && state != "X";
  }
  TempDir dir_;
};

TEST_F(ShStop, StuckScriptAndItsChildrenEndAtOnce) {
  // The sleep runs in the background of the script (same process group), as in a pipeline.
  const auto run = run_and_stop("#!/bin/sh\nsleep 30 & echo $! > \"" + dir_.file("child") + "\"\nwait\n", 200ms);
  ASSERT_EQ(run.rc, 0);
  EXPECT_EQ(run.result.exit_code, -1);
  EXPECT_EQ(run.result.signal, SIGTERM);
  EXPECT_LT(run.took, 200ms + kill_after) << "SIGTERM is sent at once";
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(alive("child")) << "the script's own child got the signal too";
}

TEST_F(ShStop, ScriptIgnoringSigtermIsKilled) {
  const auto run = run_and_stop("#!/bin/sh\ntrap '' TERM\nsleep 30\n", 200ms);
  ASSERT_EQ(run.rc, 0);
  EXPECT_EQ(run.result.signal, SIGKILL);
  EXPECT_GE(run.took, 200ms + kill_after);
  EXPECT_LT(run.took, 200ms + 3 * kill_after);
}

TEST_F(ShStop, OutputHeldByAProcessThatLeftTheGroupIsNotWaitedFor) {
  // setsid: the grandchild is in a session of its own, out of reach, with our stdout.
  const auto run = run_and_stop("#!/bin/sh\nsetsid sleep 30 &\necho $! > \"" + dir_.file("child") +
                                    "\"\nsleep 30\n",
                                200ms);
  ASSERT_EQ(run.rc, 0);
  EXPECT_EQ(run.result.signal, SIGTERM);
  EXPECT_LT(run.took, 200ms + 4 * kill_after) << "gives up kill_after after SIGKILL";
  std::ifstream in(dir_.file("child"));
  pid_t pid = 0;
  in >> pid;
  if (pid > 0) ::kill(pid, SIGKILL);  // the test's own leftover
}

TEST_F(ShStop, ScriptStartedAfterTheStopGetsKillAfterFirst) {
  stop_all_scripts(kill_after);
  const std::string quick = dir_.write("quick.sh", "#!/bin/sh\nsleep 0.1\necho done\n", true);
  OutputSink out;
  ProcessResult result;
  ASSERT_EQ(run_process({quick}, environ, {}, out, result), 0);
  EXPECT_EQ(result.exit_code, 0) << "a close or unload script may still run briefly";
  EXPECT_EQ(out.text, "done\n");

  const std::string slow = dir_.write("slow.sh", "#!/bin/sh\nexec sleep 30\n", true);
  const auto t0 = Clock::now();
  ASSERT_EQ(run_process({slow}, environ, {}, out, result), 0);
  const auto took = Clock::now() - t0;
  EXPECT_EQ(result.signal, SIGTERM);
  EXPECT_GE(took, kill_after);
  EXPECT_LT(took, 3 * kill_after);
}

TEST_F(ShStop, ScriptThatClosedItsOutputAndRunsOnIsStoppedToo) {
  const auto run = run_and_stop("#!/bin/sh\nexec >&- 2>&-\nsleep 30\n", 200ms);
  ASSERT_EQ(run.rc, 0);
  EXPECT_EQ(run.result.signal, SIGTERM);
  EXPECT_LT(run.took, 200ms + kill_after);
}

}  // namespace
}  // namespace nbdd::test
