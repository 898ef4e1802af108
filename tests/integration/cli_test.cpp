// The command line end to end: version/help/dump-plugin, bad usage, -P, background mode,
// -s, --run captive mode, systemd socket activation, --exit-with-parent, IPv6, syslog.
#include <gtest/gtest.h>
#include <sys/prctl.h>

#include "tests/integration/daemon_fixture.hpp"
#include "tests/integration/nbd_handle.hpp"
#include "tests/net/raw_client.hpp"

namespace nbdd::itest {
namespace {

std::string nbdd() { return std::string("'") + nbdd_binary() + "'"; }

TEST(Cli, VersionHelpDumpPlugin) {
  auto r = run_shell(nbdd() + " --version");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.output.rfind("nbdd ", 0), 0u) << r.output;
  r = run_shell(nbdd() + " -V");
  EXPECT_EQ(r.status, 0);
  r = run_shell(nbdd() + " --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("--run"), std::string::npos);
  r = run_shell(nbdd() + " --help memory");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("size"), std::string::npos) << r.output;
  r = run_shell(nbdd() + " --dump-plugin memory");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("name=memory"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("thread_model="), std::string::npos) << r.output;
  r = run_shell(nbdd() + " --dump-plugin sh");
  EXPECT_NE(r.output.find("max_known_status=8"), std::string::npos) << r.output;
}

TEST(Cli, BadUsageExitsOneNamingTheProblem) {
  struct Case {
    const char* args;
    const char* mentions;
  };
  const Case cases[] = {
      {"", "no plugin"},
      {"-f --frobnicate memory 1M", "--frobnicate"},
      {"-f -p notaport memory 1M", "port"},
      {"-f nosuchplugin", "nosuchplugin"},
      {"-f memory size=banana", "size"},
      {"-f -U /nonexistent-dir/x/sock memory 1M", "/nonexistent-dir/x/sock"},
      {"-f -t -1 memory 1M", "thread"},
      {"-f memory 1M --frobnicate", "--frobnicate"},  // after the plugin: still an option
      {"-f memory 1M --no", "ambiguous"},
      {"-f --vsock memory 1M", "--vsock"},
      {"-f -o memory 1M", "not supported"},
      {"-f -U - -u no-such-user-here memory 1M", "no-such-user-here"},
      {"-f -U - -g no-such-group-here memory 1M", "no-such-group-here"},
      {"-f memory 1M allocator=malloc,mlock=maybe", "mlock"},
      {"-f memory 1M allocator=zstd", "allocator=zstd"},
      {"-f file /dev/null cache=sometimes", "cache"},
      {"-f file /dev/null fadvise=never", "fadvise"},
  };
  for (const auto& c : cases) {
    const auto r = run_shell(nbdd() + " " + c.args, 30);
    EXPECT_EQ(r.status, 1) << c.args << ": " << r.output;
    EXPECT_NE(r.output.find(c.mentions), std::string::npos) << c.args << ": " << r.output;
  }
  const auto r = run_shell(nbdd() + " -f -U /tmp/" + std::string(200, 'x') + " memory 1M", 30);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("too long"), std::string::npos) << r.output;
}

TEST(Cli, SingleClientOnStdinStdout) {
  Nbd h;
  const char* argv[] = {nbdd_binary(), "-s", "memory", "1M", nullptr};
  ASSERT_EQ(nbd_connect_command(h, const_cast<char**>(argv)), 0) << Nbd::error();
  EXPECT_EQ(nbd_get_size(h), 1 << 20);
  char buf[512] = "hello";
  ASSERT_EQ(nbd_pwrite(h, buf, sizeof buf, 0, 0), 0) << Nbd::error();
  char back[512];
  ASSERT_EQ(nbd_pread(h, back, sizeof back, 0, 0), 0) << Nbd::error();
  EXPECT_STREQ(back, "hello");
  ASSERT_EQ(nbd_shutdown(h, 0), 0);  // nbd_close then reaps the daemon
}

TEST(Cli, SingleClientOverPipes) {
  int to_nbdd[2], from_nbdd[2];
  ASSERT_EQ(::pipe2(to_nbdd, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(from_nbdd, O_CLOEXEC), 0);
  TempDir dir;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(to_nbdd[0], 0);
    ::dup2(from_nbdd[1], 1);
    const int err = ::open(dir.file("err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(err, 2);
    ::execl(nbdd_binary(), nbdd_binary(), "-s", "memory", "1M", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(to_nbdd[0]);
  ::close(from_nbdd[1]);
  nbdd::testing::RawClient c;
  c.adopt_pipes(from_nbdd[0], to_nbdd[1]);
  EXPECT_EQ(c.handshake(), 1u << 20);
  ASSERT_TRUE(c.send_request(nbdd::testing::nbdc::cmd_write, 1, 0, 4, {1, 2, 3, 4}));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, 0u);
  ASSERT_TRUE(c.send_request(nbdd::testing::nbdc::cmd_read, 2, 0, 4));
  r = c.read_reply();
  ASSERT_TRUE(r);
  std::uint8_t back[4];
  ASSERT_TRUE(c.read_exact(back, 4));
  EXPECT_EQ(back[3], 4);
  ASSERT_TRUE(c.send_request(nbdd::testing::nbdc::cmd_disc, 3, 0, 0));
  EXPECT_EQ(wait_child(pid, 20s), 0) << read_file(dir.file("err"));
}

TEST(Cli, SingleClientWithNbdsh) {
  const auto r = run_shell("nbdsh -c 'h.connect_command([\"" + std::string(nbdd_binary()) +
                           "\", \"-s\", \"memory\", \"1M\"]); print(h.get_size())'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "1048576\n");
}

TEST(Cli, SystemdSocketActivation) {
  Nbd h;
  const char* argv[] = {nbdd_binary(), "-f", "memory", "2M", nullptr};
  ASSERT_EQ(nbd_connect_systemd_socket_activation(h, const_cast<char**>(argv)), 0) << Nbd::error();
  EXPECT_EQ(nbd_get_size(h), 2 << 20);
  char buf[4096];
  ASSERT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), 0) << Nbd::error();
}

TEST(Cli, CaptiveRunExitsWithTheCommandStatus) {
  TempDir dir;
  const std::string out = dir.file("out");
  auto r = run_shell(nbdd() + " --run 'nbdinfo --size \"$uri\" > " + out + "; echo \"$unixsocket\" >> " + out +
                     "; exit 3' memory 1M");
  EXPECT_EQ(r.status, 3) << r.output;
  const auto text = read_file(out);
  EXPECT_EQ(text.rfind("1048576\n", 0), 0u) << text;
  EXPECT_NE(text.find("/socket"), std::string::npos) << text;
  // The private socket is gone afterwards.
  const auto path = text.substr(text.find('\n') + 1);
  EXPECT_FALSE(can_connect_unix(path.substr(0, path.size() - 1)));

  const auto port = free_tcp_port();
  r = run_shell(nbdd() + " -p " + std::to_string(port) + " -i 127.0.0.1 --run 'test \"$port\" = " +
                std::to_string(port) + " && nbdinfo --size \"$uri\"' memory 3M");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("3145728"), std::string::npos) << r.output;

  r = run_shell(nbdd() + " -U - --run 'nbdcopy \"$uri\" - | wc -c' -e e1 memory 1M");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("1048576"), std::string::npos) << r.output;
}

TEST(Cli, BackgroundModeWithPidFile) {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);  // the daemonized grandchild becomes ours to reap
  TempDir dir;
  const std::string pidfile = dir.file("nbdd.pid"), sock = dir.file("bg.sock");
  auto r = run_shell(nbdd() + " -P " + pidfile + " -U " + sock + " memory 1M", 60);
  ASSERT_EQ(r.status, 0) << r.output;
  const int pid = std::atoi(read_file(pidfile).c_str());
  ASSERT_GT(pid, 1);
  bool listening = false;
  for (int i = 0; i < 3000 && !listening; ++i) {
    listening = can_connect_unix(sock);
    if (!listening) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(listening);
  r = run_shell("nbdinfo --size 'nbd+unix:///?socket=" + sock + "'");
  EXPECT_EQ(r.output, "1048576\n") << r.output;
  ::kill(pid, SIGTERM);
  const auto status = wait_child(pid, 20s);
  EXPECT_EQ(status, 0);
  if (!status) ::kill(pid, SIGKILL);
}

// nbdkit makes every path the user gave absolute before it forks: a relative file= and a
// relative -P work in background mode (nbdd changes to / after the fork).
TEST(Cli, RelativePathsWorkInBackgroundMode) {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  TempDir dir;
  write_file(dir.file("disk.img"), std::string(1 << 20, 'r'));
  const std::string sock = dir.file("rel.sock");
  auto r = run_shell("cd '" + dir.path + "' && " + nbdd() + " -P rel.pid -U " + sock + " file disk.img", 60);
  ASSERT_EQ(r.status, 0) << r.output;
  const int pid = std::atoi(read_file(dir.file("rel.pid")).c_str());
  ASSERT_GT(pid, 1) << "the pid file is in the directory nbdd was started from";
  r = run_shell("nbdsh -u 'nbd+unix:///?socket=" + sock + "' -c 'print(h.get_size()); print(h.pread(4, 0))'");
  EXPECT_EQ(r.output, "1048576\nbytearray(b'rrrr')\n") << r.output;
  ::kill(pid, SIGTERM);
  EXPECT_EQ(wait_child(pid, 20s), 0);
}

// A relative -U is made absolute, as nbdkit does: $unixsocket names it fully, and a background
// nbdd (which changes to /) still removes its socket at exit.
TEST(Cli, RelativeUnixSocketIsMadeAbsolute) {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  TempDir dir;
  auto r = run_shell("cd '" + dir.path + "' && " + nbdd() + " -U run.sock memory 1M --run 'echo \"$unixsocket\"'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, dir.file("run.sock") + "\n");
  r = run_shell("cd '" + dir.path + "' && " + nbdd() + " -P bg.pid -U bg.sock memory 1M", 60);
  ASSERT_EQ(r.status, 0) << r.output;
  const int pid = std::atoi(read_file(dir.file("bg.pid")).c_str());
  ASSERT_GT(pid, 1);
  EXPECT_TRUE(can_connect_unix(dir.file("bg.sock")));
  ::kill(pid, SIGTERM);
  EXPECT_EQ(wait_child(pid, 20s), 0);
  EXPECT_NE(::access(dir.file("bg.sock").c_str(), F_OK), 0) << "the socket was left behind";
}

TEST(Cli, PidFileThatCannotBeWrittenFailsBeforeTheFork) {
  TempDir dir;
  const auto r = run_shell(nbdd() + " -P /nonexistent-dir/x.pid -U " + dir.file("s.sock") + " memory 1M", 30);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("pidfile"), std::string::npos) << r.output;
}

// -U on the socket of a server that still answers is refused; the first server keeps it.
TEST(Cli, UnixSocketOfALiveServerIsNotTakenOver) {
  TempDir dir;
  auto first = Daemon::start_unix(dir, {"memory", "1M"});
  ASSERT_TRUE(first);
  const auto r = run_shell(nbdd() + " -f -U " + first->socket() + " memory 2M", 30);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("Address already in use"), std::string::npos) << r.output;
  const auto size = run_shell("nbdinfo --size '" + first->uri() + "'");
  EXPECT_EQ(size.output, "1048576\n") << "the first server still serves its socket";
}

// Socket activation without -f: nbdd does not fork (the activator waits for this process), so
// `nbdinfo -- [ nbdd ... ]` leaves no daemon behind; and -s is refused there, with a message.
TEST(Cli, SocketActivationNeverForksAndRefusesSingle) {
  const auto r = run_shell("nbdinfo --size -- [ " + nbdd() + " memory 1234567 ]");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "1234567\n");
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = run_shell("pgrep -f 'memory 123456[7]' > /dev/null").status != 0;  // [7]: not this shell
    if (!gone) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(gone) << "an nbdd was left behind";
  const auto s = run_shell("sh -c 'LISTEN_PID=$$ LISTEN_FDS=1 exec " + std::string(nbdd_binary()) +
                           " -s memory 1M' < /dev/null", 30);
  EXPECT_EQ(s.status, 1) << s.output;
  EXPECT_NE(s.output.find("socket activation"), std::string::npos) << s.output;
  // -p, -i, -U and --run are refused there too, as nbdkit refuses them.
  for (const char* flag : {"-p 10809", "-i 127.0.0.1", "-U /tmp/x.sock", "--run true"}) {
    const auto t = run_shell("sh -c 'LISTEN_PID=$$ LISTEN_FDS=1 exec " + std::string(nbdd_binary()) + " -f " + flag +
                                 " memory 1M' < /dev/null",
                             30);
    EXPECT_EQ(t.status, 1) << flag << ": " << t.output;
    EXPECT_NE(t.output.find("socket activation"), std::string::npos) << flag << ": " << t.output;
  }
}

TEST(Cli, ExitWithParent) {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  TempDir dir;
  const std::string pidfile = dir.file("nbdd.pid"), sock = dir.file("ewp.sock");
  // sh starts nbdd and exits after a while: nbdd must follow.
  const pid_t sh = spawn({"/bin/sh", "-c",
                          nbdd() + " -f --exit-with-parent -P " + pidfile + " -U " + sock +
                              " memory 1M & while ! test -s " + pidfile + "; do sleep 0.1; done; sleep 0.5"},
                         dir.file("sh.out"), dir.file("sh.err"));
  ASSERT_TRUE(wait_child(sh, 60s));
  const int pid = std::atoi(read_file(pidfile).c_str());
  ASSERT_GT(pid, 1);
  const auto status = wait_child(pid, 20s);
  EXPECT_EQ(status, 0);
  if (!status) ::kill(pid, SIGKILL);
}

TEST(Cli, Ipv6Loopback) {
  TempDir dir;
  const auto port = free_tcp_port();
  const pid_t pid = spawn({nbdd_binary(), "-f", "-i", "::1", "-p", std::to_string(port), "memory", "1M"},
                          dir.file("out"), dir.file("err"));
  CommandResult r;
  for (int i = 0; i < 300; ++i) {
    if (auto early = wait_child(pid, 0ms)) {  // could not listen: no IPv6 on this machine
      GTEST_SKIP() << "nbdd -i ::1 exited with " << *early << ": " << read_file(dir.file("err"));
    }
    r = run_shell("nbdinfo --size 'nbd://[::1]:" + std::to_string(port) + "'", 30);
    if (r.status == 0) break;
    std::this_thread::sleep_for(100ms);
  }
  ::kill(pid, SIGTERM);
  EXPECT_EQ(wait_child(pid, 20s), 0);
  EXPECT_EQ(r.output, "1048576\n") << r.output << read_file(dir.file("err"));
}

TEST(Cli, VerboseLogShowsInputsAndActions) {
  TempDir dir;
  auto d = Daemon::start_unix(dir, {"-v", "memory", "1M"});
  ASSERT_TRUE(d);
  const auto r = run_shell("nbdinfo --size '" + d->uri() + "'");
  EXPECT_EQ(r.status, 0);
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait_exit(20s), 0);
  const auto log = d->stderr_text();
  EXPECT_NE(log.find("conn=1 in "), std::string::npos) << log;
  EXPECT_NE(log.find("conn=1 act Send"), std::string::npos) << log;
}

// -v logs each plugin call with its arguments and result (net/call_log.hpp), in nbdkit's
// words (net/connection_session.cpp calls describe_plugin_call for inline, worker and lent calls).
TEST(Cli, VerboseLogShowsPluginCalls) {
  TempDir dir;
  auto d = Daemon::start_unix(dir, {"-v", "memory", "1M"});
  ASSERT_TRUE(d);
  const auto r = run_shell("nbdsh -u '" + d->uri() +
                           "' -c 'h.pread(4096, 8192)' -c 'h.pread(65536, 0)' -c 'h.zero(512, 0)'");
  EXPECT_EQ(r.status, 0) << r.output;
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait_exit(20s), 0);
  const auto log = d->stderr_text();
  EXPECT_NE(log.find("memory: open readonly=0 exportname=\"\" -> 0"), std::string::npos) << log;
  EXPECT_NE(log.find("memory: pread count=4096 offset=8192 -> 0"), std::string::npos) << log;
  EXPECT_NE(log.find("memory: pread count=65536 offset=0 -> 0"), std::string::npos) << "lent read:\n" << log;
  EXPECT_NE(log.find("memory: zero count=512 offset=0 may_trim="), std::string::npos) << log;
}

// Options after the plugin and its parameters, as nbdkit's permuting getopt reads them.
TEST(Cli, OptionsAfterThePlugin) {
  TempDir dir;
  write_file(dir.file("x.img"), std::string(1 << 16, 'x'));
  // -r after the file name: the export is read-only.
  auto r = run_shell(nbdd() + " -U - file " + dir.file("x.img") + " -r --run 'nbdinfo --json \"$uri\"'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"is_read_only\": true"), std::string::npos) << r.output;
  r = run_shell(nbdd() + " -U - file " + dir.file("x.img") + " --run 'nbdinfo --json \"$uri\"'");
  EXPECT_NE(r.output.find("\"is_read_only\": false"), std::string::npos) << r.output;
  r = run_shell(nbdd() + " memory --dump-plugin");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("name=memory\n"), std::string::npos) << r.output;
  // `--` ends the options: "-r" is the plugin's (and memory refuses it as a parameter).
  r = run_shell(nbdd() + " -f -U - memory 1M -- -r");
  EXPECT_EQ(r.status, 1) << r.output;
}

// --dump-plugin in nbdkit's form: path, name, version, api_version, thread_model, has_* lines.
TEST(Cli, DumpPluginHasNbdkitsFields) {
  const auto r = run_shell(nbdd() + " file --dump-plugin");
  EXPECT_EQ(r.status, 0) << r.output;
  for (const char* line : {"path=", "name=file\n", "version=", "api_version=2\n", "thread_model=parallel\n",
                           "magic_config_key=file\n", "has_pread=1\n", "has_pwrite=1\n", "has_extents=1\n"})
    EXPECT_NE(r.output.find(line), std::string::npos) << line << " in:\n" << r.output;
  EXPECT_EQ(r.output.rfind("path=", 0), 0u) << "path comes first, as nbdkit's";
  const auto pattern = run_shell(nbdd() + " pattern --dump-plugin");
  EXPECT_NE(pattern.output.find("has_pread=1"), std::string::npos) << pattern.output;
  EXPECT_EQ(pattern.output.find("has_pwrite=1"), std::string::npos) << "pattern is read-only:\n" << pattern.output;
}

TEST(Cli, DumpConfigLongAndShortOptions) {
  auto r = run_shell(nbdd() + " --dump-config");
  EXPECT_EQ(r.status, 0) << r.output;
  for (const char* key : {"binary=/", "plugindir=/", "filterdir=/", "name=nbdd\n", "version=", "exit_with_parent=yes"})
    EXPECT_NE(r.output.find(key), std::string::npos) << key << " in:\n" << r.output;
  r = run_shell(nbdd() + " --long-options");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("--read-only\n"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("--long-options"), std::string::npos) << r.output;
  r = run_shell(nbdd() + " --short-options");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.output.rfind("-4\n-6\n-D\n", 0), 0u) << r.output;
}

// -u/-g: the sockets are bound as root, then the daemon serves as the user it was told.
TEST(Cli, UserAndGroupAreDroppedAfterListening) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to change user";
  TempDir dir;
  ::chmod(dir.path.c_str(), 0755);
  auto d = Daemon::start_unix(dir, {"-u", "nobody", "-g", "nogroup", "memory", "1M"});
  ASSERT_TRUE(d);
  auto trimmed = [](std::string text) { return text.substr(0, text.find('\n')); };
  const std::string uid = trimmed(run_shell("id -u nobody").output);
  const std::string gid = trimmed(run_shell("getent group nogroup | cut -d: -f3").output);
  const std::string status = read_file("/proc/" + std::to_string(d->pid()) + "/status");
  // Real, effective, saved and filesystem ids alike.
  EXPECT_NE(status.find("Uid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid + "\n"), std::string::npos) << status;
  EXPECT_NE(status.find("Gid:\t" + gid + "\t" + gid + "\t" + gid + "\t" + gid + "\n"), std::string::npos) << status;
  EXPECT_NE(status.find("Groups:\t" + gid + " \n"), std::string::npos) << "supplementary groups:\n" << status;
  const auto r = run_shell("nbdinfo --size '" + d->uri() + "'");
  EXPECT_EQ(r.output, "1048576\n") << r.output;
}

// Not permitted (an ordinary user asking for root): exit 1 with the reason, never serving on.
TEST(Cli, ChangingUserThatIsNotAllowedIsRefused) {
  // As root, drop to nobody first (setpriv) so the change is one that is not permitted.
  const std::string as_user =
      ::geteuid() == 0 ? "setpriv --reuid=nobody --regid=nogroup --clear-groups " : std::string();
  auto r = run_shell(as_user + nbdd() + " -f -U - -u 0 memory 1M", 30);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("setuid(0): Operation not permitted"), std::string::npos) << r.output;
  r = run_shell(as_user + nbdd() + " -f -U - -g 0 memory 1M", 30);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("setgid(0): Operation not permitted"), std::string::npos) << r.output;
}

// -4 / -6: only addresses of that family are listened on.
TEST(Cli, AddressFamilyOptions) {
  const auto port = std::to_string(free_tcp_port());
  auto r = run_shell(nbdd() + " -4 -p " + port +
                     " --run 'nbdinfo --size nbd://127.0.0.1:" + port + " && ! nbdinfo --size \"nbd://[::1]:" + port +
                     "\" 2>/dev/null' memory 1M");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("1048576"), std::string::npos) << r.output;
  r = run_shell(nbdd() + " -f -4 -i ::1 -p " + port + " memory 1M", 30);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("-4"), std::string::npos) << r.output;
}

// --log=null: not even errors are printed (nbdkit's meaning).
TEST(Cli, LogNullDropsEverything) {
  TempDir dir;
  auto d = Daemon::start_unix(dir, {"--log=null", "-v", "memory", "1M"});
  ASSERT_TRUE(d);
  EXPECT_EQ(run_shell("nbdinfo --size '" + d->uri() + "'").status, 0);
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait_exit(20s), 0);
  EXPECT_EQ(d->stderr_text(), "");
}

// $tls and the URI scheme under --tls, as nbdkit's captive mode sets them: unset when TLS is
// off (asked for, or --tls=on without credentials), 1 with on, 2 with require (nbds://).
TEST(Cli, CaptiveTlsVariables) {
  TempDir dir;
  const std::string psk = dir.file("keys.psk");
  ASSERT_EQ(run_shell("psktool -u alice -p '" + psk + "' >/dev/null").status, 0);
  auto r = run_shell(nbdd() + " -U - memory 1M --run 'echo \"tls=${tls-unset} $uri\"'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("tls=unset nbd+unix:///?socket="), std::string::npos) << r.output;
  r = run_shell(nbdd() + " -U - memory 1M --tls=require --tls-psk=" + psk + " --run 'echo \"tls=${tls-unset} $uri\"'");
  EXPECT_NE(r.output.find("tls=2 nbds+unix:///?socket="), std::string::npos) << r.output;
  r = run_shell(nbdd() + " -U - memory 1M --tls=on --tls-psk=" + psk +
                " -e 'a b' --run 'echo \"tls=${tls-unset} $uri\"'");
  EXPECT_NE(r.output.find("tls=1 nbd+unix:///a%20b?socket="), std::string::npos) << r.output;
  r = run_shell("HOME=" + dir.path + " " + nbdd() + " -U - memory 1M --tls=on --run 'echo \"tls=${tls-unset}\"'");
  EXPECT_NE(r.output.find("tls=unset"), std::string::npos) << "no credentials: TLS off\n" << r.output;
}

// -D: nbdkit's syntax is checked, and nbdd says it does not apply the flag.
TEST(Cli, DebugFlagsAreNotSilentlyIgnored) {
  auto r = run_shell(nbdd() + " -U - -D memory.dir=1 memory 1M --run 'nbdinfo --size \"$uri\"'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("-D memory.dir=1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("not applied"), std::string::npos) << r.output;
}

// file cache=none and fadvise=: the data path still serves the same bytes.
TEST(Cli, FileCacheNoneAndFadvise) {
  TempDir dir;
  write_file(dir.file("d.img"), std::string(1 << 20, 'd'));
  const auto r = run_shell(nbdd() + " -U - file " + dir.file("d.img") +
                           " cache=none fadvise=sequential --run 'nbdcopy \"$uri\" " + dir.file("copy") +
                           " && nbdsh -u \"$uri\" -c \"h.pwrite(b\\\"W\\\" * 65536, 0)\"'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_file(dir.file("copy")), std::string(1 << 20, 'd'));
  EXPECT_EQ(read_file(dir.file("d.img")).substr(0, 65537), std::string(65536, 'W') + "d");
}

}  // namespace
}  // namespace nbdd::itest
