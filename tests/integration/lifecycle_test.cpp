// Per-connection exports (issue 21) with real clients, side by side with nbdkit 1.32 where
// that is cheap: NBD_OPT_LIST asks the plugin each time (memory: one export; file dir=: every
// file; -e NAME), any export name reaches the plugin's open, a file's size is read for each
// connection, an `sh` script sees preconnect/open/get_size/close per connection (INFO opens
// and closes), a refusing preconnect ends the connection before the greeting, a refused
// open is an error the client can survive, and SIGTERM during a slow open answers the GO
// with NBD_REP_ERR_SHUTDOWN and closes the handle.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/integration/daemon_fixture.hpp"
#include "tests/integration/nbd_handle.hpp"
#include "tests/net/raw_client.hpp"

namespace nbdd::itest {
namespace {
using nbdd::testing::RawClient;
namespace nbdc = nbdd::testing::nbdc;

// The export names of `nbdinfo --list --json URI`, in order; nullopt if nbdinfo failed.
std::optional<std::vector<std::string>> listed_names(const Daemon& d) {
  const auto r = run_shell("nbdinfo --list --json '" + d.uri() + "'");
  if (r.status != 0) {
    ADD_FAILURE() << "nbdinfo --list: " << r.output;
    return std::nullopt;
  }
  std::vector<std::string> names;
  const std::regex name_re("\"export-name\": \"([^\"]*)\"");
  for (auto it = std::sregex_iterator(r.output.begin(), r.output.end(), name_re); it != std::sregex_iterator(); ++it)
    names.push_back((*it)[1]);
  return names;
}

void write_bytes(const std::string& path, std::size_t n, char fill) { write_file(path, std::string(n, fill)); }

TEST(Lifecycle, ListOnMemoryShowsOneExportAsNbdkitDoes) {
  TempDir dir;
  auto d = Daemon::start_unix(dir, {"memory", "1M"});
  ASSERT_TRUE(d);
  const auto names = listed_names(*d);
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, std::vector<std::string>{""});
  if (auto k = Daemon::start_nbdkit_unix(dir, {"memory", "1M"})) {
    EXPECT_EQ(listed_names(*k), names);
  }
}

// -e NAME: the one name listed when the plugin has no list_exports of its own, and
// $exportname / $uri for --run (as before issue 21).
TEST(Lifecycle, ExportNameOptionIsTheListedName) {
  TempDir dir;
  auto d = Daemon::start_unix(dir, {"-e", "foo", "memory", "1M"});
  ASSERT_TRUE(d);
  EXPECT_EQ(listed_names(*d), std::vector<std::string>{"foo"});
  const auto r = run_shell(std::string(nbdd_binary()) +
                           " -U - -e foo --run 'echo \"$exportname $uri\"; nbdinfo --size \"$uri\"' memory 1M");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("foo nbd+unix:///foo?socket="), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1048576"), std::string::npos) << r.output;
}

TEST(Lifecycle, AnyExportNameOpensOnMemory) {
  TempDir dir;
  auto d = Daemon::start_unix(dir, {"memory", "1M"});
  ASSERT_TRUE(d);
  const auto q = run_shell("qemu-img info --output=json '" + d->uri("anyname") + "'");
  EXPECT_EQ(q.status, 0) << q.output;
  EXPECT_NE(q.output.find("\"virtual-size\": 1048576"), std::string::npos) << q.output;
  const auto i = run_shell("nbdinfo '" + d->uri("foo") + "'");
  EXPECT_EQ(i.status, 0) << i.output;
  EXPECT_NE(i.output.find("export=\"foo\""), std::string::npos) << i.output;
  EXPECT_NE(i.output.find("export-size: 1048576"), std::string::npos) << i.output;
}

// file dir=DIR: one export per regular file, listed on each NBD_OPT_LIST (a file created
// after start-up is listed too), opened by name; no way out of DIR.
TEST(Lifecycle, FileDirListsEveryFileAndOpensThemByName) {
  TempDir dir;
  const std::string disks = dir.file("disks");
  ASSERT_EQ(::mkdir(disks.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((disks + "/subdir").c_str(), 0755), 0);
  write_bytes(disks + "/a.img", 1 << 20, 'a');
  write_file(dir.file("secret"), "outside");
  auto d = Daemon::start_unix(dir, {"file", "dir=" + disks});
  ASSERT_TRUE(d);
  write_bytes(disks + "/b.img", 2 << 20, 'b');  // after start-up
  auto names = listed_names(*d);
  ASSERT_TRUE(names);
  std::sort(names->begin(), names->end());
  EXPECT_EQ(*names, (std::vector<std::string>{"a.img", "b.img"}));
  if (auto k = Daemon::start_nbdkit_unix(dir, {"file", "dir=" + disks})) {
    auto theirs = listed_names(*k);
    ASSERT_TRUE(theirs);
    std::sort(theirs->begin(), theirs->end());
    EXPECT_EQ(theirs, names);
  }
  {
    Nbd h;
    ASSERT_EQ(nbd_connect_uri(h, d->uri("b.img").c_str()), 0) << Nbd::error();
    EXPECT_EQ(nbd_get_size(h), 2 << 20);
    std::vector<char> buf(4096);
    ASSERT_EQ(nbd_pread(h, buf.data(), buf.size(), 4096, 0), 0) << Nbd::error();
    EXPECT_EQ(buf, std::vector<char>(4096, 'b'));
  }
  for (const char* bad : {"../secret", "subdir", "nosuch.img"}) {
    Nbd h;
    ASSERT_EQ(nbd_set_export_name(h, bad), 0);
    EXPECT_EQ(nbd_connect_unix(h, d->socket().c_str()), -1) << bad;
  }
  Nbd after;  // still serving
  ASSERT_EQ(nbd_connect_uri(after, d->uri("a.img").c_str()), 0) << Nbd::error();
}

// The size is the file's at each connection's open: a grown file is served whole to a new
// client; after it shrinks, a new client sees the new size and reads past it are refused
// (EINVAL), and a client connected before reads an error past the new end, not a crash.
TEST(Lifecycle, FileThatGrowsAndShrinksIsAnnouncedAtItsSizeToEachClient) {
  TempDir dir;
  const std::string disk = dir.file("disk.img");
  write_bytes(disk, 1 << 20, 'x');
  auto d = Daemon::start_unix(dir, {"file", disk});
  ASSERT_TRUE(d);
  ASSERT_EQ(::truncate(disk.c_str(), 4 << 20), 0);
  Nbd before;
  ASSERT_EQ(nbd_connect_uri(before, d->uri().c_str()), 0) << Nbd::error();
  EXPECT_EQ(nbd_get_size(before), 4 << 20);
  std::vector<char> buf(4096);
  ASSERT_EQ(nbd_pread(before, buf.data(), buf.size(), (4 << 20) - 4096, 0), 0) << Nbd::error();
  EXPECT_EQ(buf, std::vector<char>(4096, 0));  // the grown part reads as zeroes

  ASSERT_EQ(::truncate(disk.c_str(), 512 << 10), 0);
  Nbd after;
  ASSERT_EQ(nbd_set_strict_mode(after, 0), 0);  // let the out-of-range read reach the server
  ASSERT_EQ(nbd_connect_uri(after, d->uri().c_str()), 0) << Nbd::error();
  EXPECT_EQ(nbd_get_size(after), 512 << 10);
  EXPECT_EQ(nbd_pread(after, buf.data(), buf.size(), 1 << 20, 0), -1);
  EXPECT_EQ(nbd_get_errno(), EINVAL) << Nbd::error();
  ASSERT_EQ(nbd_pread(after, buf.data(), buf.size(), 0, 0), 0) << Nbd::error();
  EXPECT_EQ(buf, std::vector<char>(4096, 'x'));

  EXPECT_EQ(nbd_pread(before, buf.data(), buf.size(), 1 << 20, 0), -1);  // past the new end
  EXPECT_NE(nbd_get_errno(), 0) << Nbd::error();
  ASSERT_EQ(nbd_pread(before, buf.data(), buf.size(), 0, 0), 0) << Nbd::error();  // still usable
}

// An sh script that logs its calls; it refuses the client in preconnect while DIR/refuse
// exists, refuses to open the export "bad", and sleeps 3 s in the open of "slow".
std::string logging_script(const TempDir& dir) {
  return "#!/bin/sh\n"
         "dir='" + dir.path + "'\n" + R"(case "$1" in
  load|unload|config|config_complete|get_ready|after_fork|thread_model|dump_plugin|magic_config_key) ;;
  *) echo "$*" >> "$dir/calls.log" ;;
esac
case "$1" in
  thread_model) echo parallel ;;
  preconnect) if [ -e "$dir/refuse" ]; then echo "EACCES not today" >&2; exit 1; fi ;;
  open) case "$3" in
          bad) echo "ENOENT no export called bad" >&2; exit 1 ;;
          slow) sleep 3 ;;
        esac
        echo "h-$3" ;;
  get_size) echo 1048576 ;;
  pread) head -c "$3" /dev/zero ;;
  close) ;;
  *) exit 2 ;;
esac
)";
}

// The log's lines for the calls a connection's lifecycle is made of (the can_* queries and
// reads left out: their order is the driver's business).
std::vector<std::string> lifecycle_calls(const TempDir& dir) {
  std::vector<std::string> out;
  std::istringstream in(read_file(dir.file("calls.log")));
  for (std::string line; std::getline(in, line);) {
    const std::string method = line.substr(0, line.find(' '));
    if (method == "preconnect" || method == "open" || method == "get_size" || method == "close" ||
        method == "list_exports" || method == "default_export")
      out.push_back(line);
  }
  return out;
}

// Waits until the log holds `closes` close lines (the close runs after the client left).
bool wait_closes(const TempDir& dir, std::size_t closes) {
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < end) {
    const auto calls = lifecycle_calls(dir);
    if (static_cast<std::size_t>(std::count_if(calls.begin(), calls.end(), [](const std::string& c) {
          return c.rfind("close ", 0) == 0;
        })) >= closes)
      return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// The fixture's readiness probe (one connect, then close) costs one preconnect: wait for it
// and start the log afresh. Nothing else may have run by then (no start-up open).
void forget_the_probe(const TempDir& dir) {
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (lifecycle_calls(dir).empty() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(lifecycle_calls(dir), std::vector<std::string>{"preconnect false"});
  write_file(dir.file("calls.log"), "");
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += "\n  " + l;
  return s;
}

// Runs the same two clients against a server: nbdinfo (INFO, then GO) of "foo", then
// libnbd's GO of "bar" with one read. Returns the lifecycle calls the script logged.
std::vector<std::string> two_clients_calls(const Daemon& d, const TempDir& dir) {
  const auto i = run_shell("nbdinfo '" + d.uri("foo") + "'");
  EXPECT_EQ(i.status, 0) << i.output;
  // nbdinfo's GO handle is closed by the server after nbdinfo left: wait for it, so the
  // second client's calls cannot interleave with it (the order would be a race).
  EXPECT_TRUE(wait_closes(dir, 2));
  {
    Nbd h;
    EXPECT_EQ(nbd_connect_uri(h, d.uri("bar").c_str()), 0) << Nbd::error();
    std::vector<char> buf(512);
    EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), 0) << Nbd::error();
    EXPECT_EQ(nbd_shutdown(h, 0), 0);
  }
  EXPECT_TRUE(wait_closes(dir, 3));
  return lifecycle_calls(dir);
}

TEST(Lifecycle, ShScriptSeesPreconnectOpenGetSizeCloseForEachConnection) {
  const std::vector<std::string> want = {
      "preconnect false",
      "open false foo false", "get_size h-foo", "close h-foo",  // nbdinfo's INFO
      "open false foo false", "get_size h-foo", "close h-foo",  // and its GO
      "preconnect false",
      "open false bar false", "get_size h-bar", "close h-bar",
  };
  {
    TempDir dir;
    write_file(dir.file("plugin.sh"), logging_script(dir), true);
    auto d = Daemon::start_unix(dir, {"sh", dir.file("plugin.sh")});
    ASSERT_TRUE(d);
    forget_the_probe(dir);
    const auto calls = two_clients_calls(*d, dir);
    EXPECT_EQ(calls, want) << "nbdd:" << joined(calls);
  }
  if (nbdkit_binary().empty()) return;
  TempDir dir;  // the same against nbdkit: the expectation is nbdkit's behaviour
  write_file(dir.file("plugin.sh"), logging_script(dir), true);
  auto k = Daemon::start_nbdkit_unix(dir, {"sh", dir.file("plugin.sh")});
  ASSERT_TRUE(k);
  forget_the_probe(dir);
  const auto calls = two_clients_calls(*k, dir);
  EXPECT_EQ(calls, want) << "nbdkit:" << joined(calls);
}

// A preconnect that fails closes the connection before the greeting (as nbdkit's); the
// server goes on serving the next client.
TEST(Lifecycle, RefusingPreconnectEndsTheClientBeforeTheHandshake) {
  TempDir dir;
  write_file(dir.file("plugin.sh"), logging_script(dir), true);
  auto d = Daemon::start_unix(dir, {"sh", dir.file("plugin.sh")});
  ASSERT_TRUE(d);
  write_file(dir.file("refuse"), "");
  {
    RawClient c;
    ASSERT_TRUE(c.connect_unix(d->socket()));
    std::uint8_t byte = 0;
    EXPECT_FALSE(c.read_exact(&byte, 1, 20000));  // not one byte of greeting
    EXPECT_TRUE(c.wait_closed(100));
  }
  const auto refused = run_shell("nbdinfo '" + d->uri() + "'");
  EXPECT_NE(refused.status, 0) << refused.output;
  for (const auto& call : lifecycle_calls(dir)) EXPECT_EQ(call, "preconnect false");
  ::unlink(dir.file("refuse").c_str());
  const auto ok = run_shell("nbdinfo '" + d->uri() + "'");
  EXPECT_EQ(ok.status, 0) << ok.output;
}

// An open the plugin refuses is an error reply (NBD_REP_ERR_UNKNOWN, as nbdkit 1.32): the
// client fails, may try another name on the same connection, and the server keeps serving.
TEST(Lifecycle, RefusedOpenIsAnErrorAndTheServerKeepsServing) {
  TempDir dir;
  write_file(dir.file("plugin.sh"), logging_script(dir), true);
  auto d = Daemon::start_unix(dir, {"sh", dir.file("plugin.sh")});
  ASSERT_TRUE(d);
  {
    Nbd h;
    EXPECT_EQ(nbd_connect_uri(h, d->uri("bad").c_str()), -1);
  }
  RawClient c;
  ASSERT_TRUE(c.connect_unix(d->socket()));
  ASSERT_TRUE(c.start_handshake());
  EXPECT_FALSE(c.go("bad"));
  EXPECT_EQ(c.last_option_error, nbdc::rep_err_unknown);
  EXPECT_EQ(c.go("good"), 1u << 20);
  Nbd other;
  ASSERT_EQ(nbd_connect_uri(other, d->uri("other").c_str()), 0) << Nbd::error();
  EXPECT_EQ(nbd_get_size(other), 1 << 20);
}

// SIGTERM while a GO's open is running (the script sleeps 3 s in it): the GO is answered
// NBD_REP_ERR_SHUTDOWN once the open returns, the handle it returned is closed, and nbdd
// exits 0.
TEST(Lifecycle, SigtermDuringASlowOpenAnswersErrShutdownClosesAndExitsZero) {
  TempDir dir;
  write_file(dir.file("plugin.sh"), logging_script(dir), true);
  // The slow open finishes within the grace period of the shutdown (10 s here).
  auto d = Daemon::start_unix(dir, {"--grace-period=10", "sh", dir.file("plugin.sh")});
  ASSERT_TRUE(d);
  RawClient c;
  ASSERT_TRUE(c.connect_unix(d->socket()));
  ASSERT_TRUE(c.start_handshake());
  std::optional<std::uint64_t> size;
  std::thread go([&] { size = c.go("slow"); });
  const auto open_started = [&] {
    const auto calls = lifecycle_calls(dir);
    return std::find(calls.begin(), calls.end(), "open false slow false") != calls.end();
  };
  for (int i = 0; i < 3000 && !open_started(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(open_started());
  d->signal(SIGTERM);
  go.join();
  EXPECT_FALSE(size);
  EXPECT_EQ(c.last_option_error, nbdc::rep_err_shutdown);
  c.close();
  const auto status = d->wait_exit(30s);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0) << d->stderr_text();
  const auto calls = lifecycle_calls(dir);
  EXPECT_EQ(calls.back(), "close h-slow") << joined(calls);
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "close h-slow"), 1) << joined(calls);
}

}  // namespace
}  // namespace nbdd::itest
