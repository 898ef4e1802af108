// The sh plugin against real /bin/sh scripts: calling convention, data through pipes,
// every magic exit code, missing methods, thread_model, $tmpdir, script on stdin.
#include "plugins/sh/sh_plugin.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/plugins/host_harness.hpp"
#include "tests/plugins/temp_dir.hpp"

namespace nbdd::test {
namespace {

using plugin::sh::ShPlugin;

// A 1 MiB disk in $tmpdir/disk. pread obeys $tmpdir/code and $tmpdir/stderr when present
// (so a test can pick the exit status); writes and flushes are logged to $tmpdir/log.
constexpr const char* disk_script = R"SH(#!/bin/sh
disk="$tmpdir/disk"
case "$1" in
  load) truncate -s 1M "$disk"; echo loaded > "$tmpdir/loaded" ;;
  config)
    case "$2" in
      mode) echo "$3" > "$tmpdir/mode" ;;
      *) echo "EINVAL unknown parameter $2" >&2; exit 1 ;;
    esac ;;
  thread_model) echo parallel ;;
  open) if [ -f "$tmpdir/open-code" ]; then echo "h"; exit "$(cat "$tmpdir/open-code")"; fi
        echo "handle-$3" ;;
  close) : ;;
  get_size) echo 1M ;;
  can_write|can_flush|can_trim|can_zero|can_extents|can_multi_conn) exit 0 ;;
  can_fast_zero|is_rotational) exit 3 ;;
  can_fua) echo native ;;
  can_cache) echo emulate ;;
  pread)
    if [ -f "$tmpdir/code" ]; then
      head -c "$3" /dev/zero
      [ -f "$tmpdir/stderr" ] && cat "$tmpdir/stderr" >&2
      exit "$(cat "$tmpdir/code")"
    fi
    dd if="$disk" skip="$4" count="$3" iflag=skip_bytes,count_bytes status=none ;;
  pwrite)
    [ -f "$tmpdir/refuse-writes" ] && { echo "EROFS go away" >&2; exit 1; }
    dd of="$disk" seek="$4" conv=notrunc oflag=seek_bytes status=none
    echo "pwrite $3 $4 $5" >> "$tmpdir/log" ;;
  flush) echo "flush $3" >> "$tmpdir/log" ;;
  trim) echo "trim $3 $4 $5" >> "$tmpdir/log" ;;
  extents) echo "$4 4096 hole,zero"; echo "$(($4 + 4096)) $(($3 - 4096)) 0" ;;
  *) exit 2 ;;
esac
)SH";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct ShTest : ::testing::Test {
  ShTest() {
    script = dir.write("disk.sh", disk_script, true);
    h = std::make_unique<HostHarness>(std::make_unique<ShPlugin>());
  }
  void start_and_open(std::vector<std::string> extra = {}) {
    extra.insert(extra.begin(), "script=" + script);
    ASSERT_EQ(h->start(extra), "");
    conn.id = 9;
    ASSERT_EQ(h->open(conn, false, "exp"), 0);
  }
  std::string tmp(const std::string& name) { return h->plugin_as<ShPlugin>().tmpdir() + "/" + name; }
  void put(const std::string& name, const std::string& text) { std::ofstream(tmp(name)) << text; }

  TempDir dir;
  std::string script;
  std::unique_ptr<HostHarness> h;
  ConnectionPluginState conn;
};

TEST_F(ShTest, DataGoesThroughStdinAndStdout) {
  start_and_open();
  std::vector<std::byte> data(300000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 13 + i / 256);
  ASSERT_EQ(h->pwrite(conn, data, 12345), 0);
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(h->pread(conn, back, 12345), 0);
  EXPECT_EQ(back, data);
  EXPECT_EQ(read_file(tmp("log")), "pwrite 300000 12345 \n");
}

TEST_F(ShTest, ConfigAndCapabilitiesFollowTheScript) {
  ASSERT_EQ(h->start({script, "mode=fast"}), "");
  EXPECT_EQ(read_file(tmp("mode")), "fast\n");
  EXPECT_EQ(read_file(tmp("loaded")), "loaded\n");
  EXPECT_EQ(h->host->plugin().thread_model(), plugin::ThreadModel::parallel);
  core::ExportInfo e;
  ASSERT_EQ(h->probe(e), 0);
  EXPECT_EQ(e.size_bytes, 1u << 20);
  EXPECT_TRUE(e.caps.can_write && e.caps.can_flush && e.caps.can_trim && e.caps.can_zero && e.caps.can_fua &&
              e.caps.can_multi_conn && e.caps.can_cache && e.caps.can_extents);
  EXPECT_FALSE(e.caps.can_fast_zero);
  EXPECT_FALSE(e.caps.is_rotational);
}

TEST_F(ShTest, UnknownConfigKeyFailsWithTheScriptsMessage) {
  const std::string error = h->start({script, "colour=red"});
  EXPECT_NE(error.find("unknown parameter colour"), std::string::npos) << error;
}

TEST_F(ShTest, FlagsArePassedAsACommaList) {
  start_and_open();
  ASSERT_EQ(h->trim(conn, 4096, 8192, plugin::flag::fua), 0);
  ASSERT_EQ(h->flush(conn), 0);
  EXPECT_EQ(read_file(tmp("log")), "trim 4096 8192 fua\nflush \n");
  EXPECT_EQ(plugin::sh::flags_string(plugin::flag::fua | plugin::flag::may_trim | plugin::flag::fast_zero |
                                     plugin::flag::req_one),
            "fua,may_trim,req_one,fast_zero");
  EXPECT_EQ(plugin::sh::flags_string(0), "");
}

TEST_F(ShTest, MissingZeroFallsBackToWritingZeroes) {
  start_and_open();
  ASSERT_EQ(h->pwrite(conn, filled(8192, 0xee), 0), 0);
  ASSERT_EQ(h->zero(conn, 4096, 1024, 0), 0);
  EXPECT_EQ(h->zero(conn, 4096, 1024, plugin::flag::fast_zero), ENOTSUP);
  std::vector<std::byte> back(8192);
  ASSERT_EQ(h->pread(conn, back, 0), 0);
  for (std::size_t i = 0; i < back.size(); ++i)
    ASSERT_EQ(back[i], (i >= 1024 && i < 5120) ? std::byte{0} : std::byte{0xee}) << i;
}

TEST_F(ShTest, ExtentsAreParsed) {
  start_and_open();
  std::vector<core::Extent> out;
  ASSERT_EQ(h->extents(conn, 65536, 4096, 0, out), 0);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].offset, 4096u);
  EXPECT_EQ(out[0].length, 4096u);
  EXPECT_EQ(out[0].type, plugin::extent_hole | plugin::extent_zero);
  EXPECT_EQ(out[1].offset, 8192u);
  EXPECT_EQ(out[1].length, 65536u - 4096u);
  EXPECT_EQ(out[1].type, 0u);
}

struct ExitCase {
  int code;
  const char* error_text;
  int result;
  int shutdowns;
  int disconnects;  // 0 none, 1 soft, 2 forced
};

TEST_F(ShTest, EveryExitCodeMeansWhatNbdkitSays) {
  start_and_open();
  const ExitCase cases[] = {
      {0, "", 0, 0, 0},
      {1, "ENOSPC disk full", ENOSPC, 0, 0},
      {1, "eperm\n", EPERM, 0, 0},
      {1, "EDQUOT", EDQUOT, 0, 0},
      {1, "EPERMX not a name", EIO, 0, 0},
      {1, "", EIO, 0, 0},
      {2, "", EIO, 0, 0},  // pread is required
      {3, "", EIO, 0, 0},  // false means nothing for pread
      {4, "", 0, 1, 0},
      {5, "", ESHUTDOWN, 1, 0},
      {5, "EROFS read-only now", EROFS, 1, 0},
      {6, "", ESHUTDOWN, 0, 2},
      {7, "", 0, 0, 1},
      {8, "", ESHUTDOWN, 0, 1},
      {8, "ENOSPC full", ENOSPC, 0, 1},
      {9, "", EIO, 0, 0},
      {15, "EINVAL reserved", EINVAL, 0, 0},
      {16, "", EIO, 0, 0},
      {255, "EOVERFLOW", EOVERFLOW, 0, 0},
  };
  std::vector<std::byte> buf(512);
  std::size_t disconnects_before = 0;
  for (const auto& c : cases) {
    put("code", std::to_string(c.code));
    put("stderr", c.error_text);
    const int shutdowns_before = h->shutdowns.load();
    EXPECT_EQ(h->pread(conn, buf, 0), c.result) << "exit " << c.code << " " << c.error_text;
    EXPECT_EQ(h->shutdowns.load() - shutdowns_before, c.shutdowns) << "exit " << c.code;
    const auto d = h->disconnects();
    ASSERT_EQ(d.size() - disconnects_before, c.disconnects ? 1u : 0u) << "exit " << c.code;
    if (c.disconnects) {
      EXPECT_EQ(d.back().first, 9u);
      EXPECT_EQ(d.back().second, c.disconnects == 2);
    }
    disconnects_before = d.size();
  }
  put("code", "1");
  put("stderr", "ENOSPC disk is full");
  EXPECT_EQ(h->pread(conn, buf, 0), ENOSPC);
  EXPECT_NE(plugin::PluginHost::last_error().find("disk is full"), std::string::npos);
}

TEST_F(ShTest, DisconnectFromOpenIsIgnored) {
  ASSERT_EQ(h->start({script}), "");
  put("open-code", "7");
  ConnectionPluginState c;
  EXPECT_EQ(h->open(c), 0);
  EXPECT_TRUE(h->disconnects().empty());
  put("open-code", "8");
  ConnectionPluginState refused;
  EXPECT_EQ(h->open(refused), ESHUTDOWN);  // refusing the client is done by failing open
  EXPECT_TRUE(h->disconnects().empty());
}

TEST_F(ShTest, ShortPreadOutputIsAnError) {
  start_and_open();
  put("code", "0");
  std::vector<std::byte> buf(512);
  ASSERT_EQ(h->pread(conn, buf, 0), 0);
  const std::string short_script = dir.write("short.sh", "#!/bin/sh\ncase $1 in get_size) echo 1M;; pread) printf abc;; *) exit 2;; esac\n", true);
  HostHarness s(std::make_unique<ShPlugin>());
  ASSERT_EQ(s.start({short_script}), "");
  ConnectionPluginState c;
  ASSERT_EQ(s.open(c), 0);
  EXPECT_EQ(s.pread(c, buf, 0), EIO);
}

TEST_F(ShTest, ScriptKilledBySignalIsAnError) {
  const std::string killer = dir.write("kill.sh", "#!/bin/sh\ncase $1 in get_size) echo 1M;; pread) kill -9 $$;; *) exit 2;; esac\n", true);
  HostHarness s(std::make_unique<ShPlugin>());
  ASSERT_EQ(s.start({killer}), "");
  ConnectionPluginState c;
  ASSERT_EQ(s.open(c), 0);
  std::vector<std::byte> buf(16);
  EXPECT_EQ(s.pread(c, buf, 0), EIO);
}

TEST_F(ShTest, ScriptThatIgnoresStdinDoesNotHurtTheServer) {
  start_and_open();
  put("refuse-writes", "");
  std::vector<std::byte> big(4 << 20, std::byte{1});
  EXPECT_EQ(h->pwrite(conn, big, 0), EROFS);  // child exited early: EPIPE swallowed, status used
}

TEST_F(ShTest, MissingMethodsUseNbdkitShDefaults) {
  const std::string minimal = dir.write(
      "min.sh", "#!/bin/sh\ncase $1 in get_size) echo 64K;; pread) [ -z \"$2\" ] || exit 1; head -c $3 /dev/zero;; *) exit 2;; esac\n", true);
  HostHarness s(std::make_unique<ShPlugin>());
  ASSERT_EQ(s.start({minimal}), "");
  EXPECT_EQ(s.host->plugin().thread_model(), plugin::ThreadModel::serialize_all_requests);
  core::ExportInfo info;
  ASSERT_EQ(s.probe(info), 0);
  const auto& caps = info.caps;
  EXPECT_EQ(info.size_bytes, 65536u);
  EXPECT_EQ(info.description, "");  // no export_description method
  EXPECT_EQ(s.listed_names(), std::vector<std::string>{""});  // no list_exports: the default
  EXPECT_FALSE(caps.can_write || caps.can_flush || caps.can_trim || caps.can_zero || caps.can_fua ||
               caps.can_extents || caps.can_cache || caps.can_multi_conn);
  ConnectionPluginState c;
  ASSERT_EQ(s.open(c), 0);  // no open method: the handle is the empty string
  std::vector<std::byte> buf(100, std::byte{1});
  EXPECT_EQ(s.pread(c, buf, 0), 0);
  EXPECT_EQ(buf, std::vector<std::byte>(100));
}

TEST_F(ShTest, BadThreadModelOrMissingScriptFailsAtStart) {
  const std::string bad = dir.write("bad.sh", "#!/bin/sh\ncase $1 in thread_model) echo sometimes;; *) exit 2;; esac\n", true);
  HostHarness s(std::make_unique<ShPlugin>());
  EXPECT_NE(s.start({bad}).find("sometimes"), std::string::npos);
  HostHarness missing(std::make_unique<ShPlugin>());
  EXPECT_NE(missing.start({dir.file("absent.sh")}), "");
  HostHarness none(std::make_unique<ShPlugin>());
  EXPECT_NE(none.start({}).find("script"), std::string::npos);
}

// nbdkit runs a script without a "#!" line with /bin/sh (execvp's rule), not ENOEXEC.
TEST_F(ShTest, ScriptWithoutShebangRunsWithBinSh) {
  std::string body = disk_script;
  body.erase(0, body.find('\n') + 1);  // drop "#!/bin/sh"
  const std::string plain = dir.write("plain.sh", body, true);
  ASSERT_EQ(h->start({plain}), "");
  conn.id = 9;
  ASSERT_EQ(h->open(conn, false, "exp"), 0);
  std::vector<std::byte> data(512, std::byte{7}), back(512);
  ASSERT_EQ(h->pwrite(conn, data, 0), 0);
  ASSERT_EQ(h->pread(conn, back, 0), 0);
  EXPECT_EQ(back, data);
}

TEST_F(ShTest, TmpdirExistsWhileLoadedAndIsRemovedAtUnload) {
  ASSERT_EQ(h->start({script}), "");
  const std::string tmpdir = h->plugin_as<ShPlugin>().tmpdir();
  ASSERT_FALSE(tmpdir.empty());
  EXPECT_TRUE(std::filesystem::exists(tmpdir + "/loaded"));
  h->host->unload();
  EXPECT_FALSE(std::filesystem::exists(tmpdir));
}

TEST_F(ShTest, ListExportsAndBlockSizeComeFromTheScript) {
  const std::string multi = dir.write("multi.sh", R"SH(#!/bin/sh
case "$1" in
  list_exports) printf 'INTERLEAVED\nfirst\nthe first one\nsecond\n\n' ;;
  default_export) echo second ;;
  open) echo "$3" ;;
  get_size) [ "$2" = first ] && echo 1M || echo 2M ;;
  block_size) echo "512 4K 32M" ;;
  pread) head -c "$3" /dev/zero ;;
  *) exit 2 ;;
esac
)SH", true);
  HostHarness s(std::make_unique<ShPlugin>());
  ASSERT_EQ(s.start({multi}), "");
  ConnectionPluginState c;
  std::vector<core::ExportEntry> listed;
  ASSERT_EQ(s.list_exports(c, listed), 0);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].name, "first");
  EXPECT_EQ(listed[0].description, "the first one");
  EXPECT_EQ(listed[1].name, "second");
  EXPECT_EQ(listed[1].description, "");
  core::ExportInfo first, second;
  ASSERT_EQ(s.probe(first, false, "first"), 0);
  EXPECT_EQ(first.size_bytes, 1u << 20);
  ASSERT_EQ(s.probe(second, false, ""), 0);  // "" is what default_export prints
  EXPECT_EQ(second.name, "second");
  EXPECT_EQ(second.size_bytes, 2u << 20);
  EXPECT_EQ(second.block_size.minimum, 512u);
  EXPECT_EQ(second.block_size.preferred, 4096u);
  EXPECT_EQ(second.block_size.maximum, 32u << 20);
}

TEST_F(ShTest, ScriptDoesNotInheritOtherDescriptors) {
  const int leaky = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(leaky, 3);
  const std::string check = dir.write("fds.sh",
      "#!/bin/sh\ncase $1 in get_size) [ -e /proc/self/fd/" + std::to_string(leaky) +
          " ] && { echo EBADF leaked >&2; exit 1; }; echo 1M;; *) exit 2;; esac\n", true);
  HostHarness s(std::make_unique<ShPlugin>());
  ASSERT_EQ(s.start({check}), "");
  core::ExportInfo info;
  EXPECT_EQ(s.probe(info), 0) << plugin::PluginHost::last_error();
  ::close(leaky);
}

TEST(ShPluginStdin, ScriptDashIsReadFromStdin) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string text = "#!/bin/sh\ncase $1 in get_size) echo 2K;; pread) head -c $3 /dev/zero;; *) exit 2;; esac\n";
  ASSERT_EQ(::write(fds[1], text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fds[1]);
  HostHarness h(std::make_unique<ShPlugin>(fds[0]));
  ASSERT_EQ(h.start({"script=-"}), "");
  ::close(fds[0]);
  core::ExportInfo info;
  ASSERT_EQ(h.probe(info), 0);
  EXPECT_EQ(info.size_bytes, 2048u);
}

TEST_F(ShTest, ParallelCallsFromSeveralThreads) {
  start_and_open();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      ConnectionPluginState c;
      c.id = t;
      ASSERT_EQ(h->open(c), 0);
      std::vector<std::byte> buf(4096);
      for (int i = 0; i < 5; ++i) EXPECT_EQ(h->pread(c, buf, t * 4096), 0);
      EXPECT_EQ(h->close(c), 0);
    });
  for (auto& t : threads) t.join();
}

}  // namespace
}  // namespace nbdd::test
