// The real nbdd daemon hosting nbdkit's installed plugins and filters, against nbdkit 1.32
// serving the same command line: each case starts both servers in the foreground (-f) on
// Unix sockets in its own temporary directory, then reads each with real clients —
// `nbdinfo --json` (size and every flag, compared line by line) and libnbd (every byte, the
// errno of a read past the end, of a write, of a read a filter fails, the bytes read back
// after the write). The cases run in parallel (each its own daemons), so the table stays fast.
#include <gtest/gtest.h>
#include <libnbd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifdef NBDD_BINARY
#include "tests/integration/daemon_fixture.hpp"
#include "tests/integration/nbd_handle.hpp"

// Under ASan the perl case is left out: at the daemon's exit LeakSanitizer's tracer itself
// crashes inside an nbdd that has the perl interpreter loaded ("Tracer caught signal 11",
// also with nbdd serving the smallest perl script by hand), which says nothing of nbdd.
#if defined(__SANITIZE_ADDRESS__)
#define NBDD_TABLE_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NBDD_TABLE_UNDER_ASAN 1
#endif
#endif
#ifndef NBDD_TABLE_UNDER_ASAN
#define NBDD_TABLE_UNDER_ASAN 0
#endif

namespace {

using nbdd::itest::Daemon;
using nbdd::itest::Nbd;
using nbdd::itest::TempDir;
using namespace std::chrono_literals;

struct Case {
  std::string name;
  std::vector<std::string> filters;          // outermost first, as --filter=
  std::string plugin;                        // a name (found in nbdkit's plugin directory) or a path
  std::vector<std::string> args;             // "{dir}": the case's directory, "{server}": nbdd|nbdkit
  std::uint64_t size = 0;                    // what both must serve (so equal answers are not both wrong)
  bool readonly = false;                     // -r
  bool one_client = false;                   // exitlast: one libnbd client, then the server exits 0
};

std::string plugin_path(const std::string& name) {
  return std::string(NBDD_NBDKIT_PLUGINDIR) + "/nbdkit-" + name + "-plugin.so";
}

// nbdd has built-ins named memory, file, null, pattern and sh: nbdkit's are reached by path
// (the others by name, which checks nbdd's lookup in nbdkit's plugin directory).
std::string nbdkit_so(const std::string& name) { return plugin_path(name); }

// What one client sees of one server.
struct Seen {
  std::string info;              // nbdinfo --json --no-content, without the "uri" line
  std::uint64_t size = 0;
  std::vector<std::byte> bytes;  // the whole export (until the first failing read)
  int read_errno = 0;            // errno of the first failing read, 0 if none
  int past_end_errno = 0;        // a 512-byte read at the end (libnbd's strict checks off)
  int write_errno = 0;           // a 4 KiB write at 4096 (strict checks off)
  std::vector<std::byte> after_write;  // 4 KiB read back at 4096 after it
  int exit_status = -1;          // one_client cases: how the server ended after the client
  std::string error;             // what went wrong on the client side, if anything
};

int pread_errno(nbd_handle* h, std::byte* buf, std::size_t n, std::uint64_t off) {
  if (nbd_pread(h, buf, n, off, 0) == 0) return 0;
  const int e = nbd_get_errno();
  return e ? e : -1;
}

Seen look_at(Daemon& d, const Case& c) {
  Seen s;
  // nbdinfo's NBD_OPT_INFO ends an exitlast server's last client in nbdd (a documented
  // difference): a one_client case is read only by libnbd's NBD_OPT_GO.
  if (!c.one_client) {
    auto info = nbdd::itest::run_shell("nbdinfo --json --no-content '" + d.uri() + "'", 60);
    if (info.status != 0) {
      s.error = "nbdinfo: " + info.output;
      return s;
    }
    std::istringstream lines(info.output);
    for (std::string line; std::getline(lines, line);)
      if (line.find("\"uri\"") == std::string::npos) s.info += line + "\n";
  }
  auto handle = std::make_unique<Nbd>();
  Nbd& h = *handle;
  nbd_set_strict_mode(h, 0);  // send what the server must refuse, to see its errno
  if (nbd_connect_uri(h, d.uri().c_str()) == -1) {
    s.error = "connect: " + Nbd::error();
    return s;
  }
  s.size = static_cast<std::uint64_t>(nbd_get_size(h));
  s.bytes.resize(s.size);
  for (std::uint64_t off = 0; off < s.size;) {
    const std::uint64_t n = std::min<std::uint64_t>(s.size - off, 256 << 10);
    if ((s.read_errno = pread_errno(h, s.bytes.data() + off, n, off)) != 0) {
      s.bytes.resize(off);
      break;
    }
    off += n;
  }
  std::vector<std::byte> buf(4096, std::byte{0x5a});
  s.past_end_errno = pread_errno(h, buf.data(), 512, s.size);
  if (nbd_pwrite(h, buf.data(), buf.size(), 4096, 0) == -1) s.write_errno = nbd_get_errno() ? nbd_get_errno() : -1;
  s.after_write.resize(4096);
  if (pread_errno(h, s.after_write.data(), 4096, 4096) != 0) s.after_write.clear();
  nbd_shutdown(h, 0);
  if (c.one_client) {
    handle.reset();  // the last client has gone
    if (auto st = d.wait_exit(30s)) s.exit_status = *st;
  }
  return s;
}

std::vector<std::string> expand(std::vector<std::string> args, const TempDir& dir, const std::string& server) {
  for (auto& a : args) {
    for (std::size_t p; (p = a.find("{dir}")) != std::string::npos;) a.replace(p, 5, dir.path);
    for (std::size_t p; (p = a.find("{server}")) != std::string::npos;) a.replace(p, 8, server);
  }
  return args;
}

struct Outcome {
  Seen nbdd, nbdkit;
  std::string nbdd_log, nbdkit_log;  // log= files (the log filter's case)
};

// The files the file, split and sh cases serve: one copy per server (the case writes).
void prepare(const TempDir& dir) {
  for (const std::string server : {"nbdd", "nbdkit"}) {
    std::string disk(1 << 20, '\0');
    disk.replace(4096, 11, "file bytes!");
    disk.replace(700000, 3, "end");
    nbdd::itest::write_file(dir.file(server + ".img"), disk);
    nbdd::itest::write_file(dir.file(server + "2.img"), std::string(1 << 20, 'B'));
  }
  nbdd::itest::write_file(dir.file("script.sh"),
                          "#!/bin/sh\n"
                          "case \"$1\" in\n"
                          "  get_size) echo 65536 ;;\n"
                          "  pread) dd if=/dev/zero bs=$3 count=1 2>/dev/null | tr '\\0' s ;;\n"
                          "  can_write) exit 3 ;;\n"
                          "  *) exit 2 ;;\n"
                          "esac\n",
                          true);
  // The language plugins' scripts (perl, lua): 64 KiB of one letter, read-only.
  nbdd::itest::write_file(dir.file("script.pl"),
                          "sub open { return 1; }\n"
                          "sub get_size { return 65536; }\n"
                          "sub pread { my ($h, $count, $offset, $flags) = @_; return 'p' x $count; }\n");
  nbdd::itest::write_file(dir.file("script.lua"),
                          "function open(readonly) return 1 end\n"
                          "function get_size(h) return 65536 end\n"
                          "function pread(h, count, offset, flags) return string.rep('l', count) end\n");
}

Outcome run_case(const Case& c) {
  Outcome o;
  TempDir dir;
  prepare(dir);
  for (const std::string server : {"nbdkit", "nbdd"}) {
    std::vector<std::string> argv;
    if (c.readonly) argv.push_back("-r");
    for (const auto& f : c.filters) argv.push_back("--filter=" + f);
    argv.push_back(c.plugin);
    const auto args = expand(c.args, dir, server);
    argv.insert(argv.end(), args.begin(), args.end());
    auto d = server == "nbdd" ? Daemon::start_unix(dir, argv) : Daemon::start_nbdkit_unix(dir, argv);
    Seen& seen = server == "nbdd" ? o.nbdd : o.nbdkit;
    if (!d) {
      seen.error = server + " did not start";
      continue;
    }
    seen = look_at(*d, c);
    (server == "nbdd" ? o.nbdd_log : o.nbdkit_log) = nbdd::itest::read_file(dir.file(server + ".log"));
  }
  return o;
}

// 1 MiB of nbdkit's data plugin: an MBR with one partition (LBA 8, 1024 sectors), bytes in
// it, a hole, more bytes at the end.
const std::string kData =
    "data=@0x1be 0 0 0 0 0x83 0 0 0 8 0 0 0 0 4 0 0 @0x1fe 0x55 0xaa @4096 \"hello\" "
    "@20000 0x41*3000 @1048570 1 2 3 4 5 6";

Case over_data(std::string name, std::vector<std::string> filters, std::vector<std::string> extra, std::uint64_t size) {
  Case c{std::move(name), std::move(filters), "data", {kData, "size=1M"}, size};
  c.args.insert(c.args.end(), extra.begin(), extra.end());
  return c;
}

std::vector<Case> table() {
  const std::string eval_size = "get_size=echo 65536";
  const std::string eval_read = "pread=dd if=/dev/zero bs=$3 count=1 2>/dev/null | tr \"\\\\0\" e";
  std::vector<Case> t = {
      // plugins
      {"data", {}, "data", {kData, "size=1M"}, 1 << 20},
      {"data-ro", {}, "data", {kData, "size=1M"}, 1 << 20, true},
      {"file", {}, nbdkit_so("file"), {"file={dir}/{server}.img"}, 1 << 20},
      {"full", {}, "full", {"1M"}, 1 << 20},
      {"memory", {}, nbdkit_so("memory"), {"size=1M"}, 1 << 20},
      {"null", {}, nbdkit_so("null"), {"1M"}, 1 << 20},
      {"pattern", {}, nbdkit_so("pattern"), {"size=1M"}, 1 << 20},
      {"random", {}, "random", {"size=1M", "seed=7"}, 1 << 20},
      {"sparse-random", {}, "sparse-random", {"size=1M", "seed=7", "percent=30", "runlength=65536"}, 1 << 20},
      {"zero", {}, "zero", {}, 0},
      {"eval", {}, "eval", {eval_size, eval_read}, 65536},
      {"sh", {}, nbdkit_so("sh"), {"{dir}/script.sh"}, 65536},
      {"split", {}, "split", {"{dir}/{server}.img", "{dir}/{server}2.img"}, 2 << 20},
      // language plugins, as their users type them: the script is the first bare argument
#if !NBDD_TABLE_UNDER_ASAN
      {"perl", {}, "perl", {"{dir}/script.pl"}, 65536},
#endif
      {"lua", {}, "lua", {"{dir}/script.lua"}, 65536},
      // filters
      over_data("cow", {"cow"}, {}, 1 << 20),
      over_data("cache", {"cache"}, {"cache-min-block-size=4096"}, 1 << 20),
      over_data("delay", {"delay"}, {"rdelay=1ms", "wdelay=1ms"}, 1 << 20),
      over_data("error", {"error"}, {"error=ENOSPC", "error-pread-rate=100%"}, 1 << 20),
      over_data("error-write", {"error"}, {"error=ENOMEM", "error-pwrite-rate=1"}, 1 << 20),
      over_data("log", {"log"}, {"logfile={dir}/{server}.log"}, 1 << 20),
      over_data("offset", {"offset"}, {"offset=4096", "range=65536"}, 65536),
      over_data("partition", {"partition"}, {"partition=1"}, 1024 * 512),
      over_data("truncate", {"truncate"}, {"truncate=100000"}, 100000),
      over_data("truncate-round", {"truncate"}, {"round-up=65536"}, 1 << 20),
      over_data("blocksize", {"blocksize"}, {"minblock=4096", "maxdata=65536"}, 1 << 20),
      over_data("nozero", {"nozero"}, {"zeromode=emulate"}, 1 << 20),
      over_data("noextents", {"noextents"}, {}, 1 << 20),
      over_data("readahead", {"readahead"}, {}, 1 << 20),
      over_data("retry", {"retry"}, {"retries=2", "retry-delay=1"}, 1 << 20),
      over_data("exitlast", {"exitlast"}, {}, 1 << 20),
      over_data("limit", {"limit"}, {"limit=1"}, 1 << 20),
      over_data("fua", {"fua"}, {"fuamode=force"}, 1 << 20),
      over_data("multi-conn", {"multi-conn"}, {"multi-conn-mode=unsafe"}, 1 << 20),
      over_data("swab", {"swab"}, {"swab-bits=32"}, 1 << 20),
      over_data("protect", {"protect"}, {"protect=4096-8191"}, 1 << 20),
      over_data("checkwrite", {"checkwrite"}, {}, 1 << 20),
      over_data("cacheextents", {"cacheextents"}, {}, 1 << 20),
      over_data("nocache", {"nocache"}, {"cachemode=none"}, 1 << 20),
      over_data("stack", {"cow", "offset", "truncate"}, {"offset=512", "truncate=40000"}, 40000 - 512),
  };
  t[find_if(t.begin(), t.end(), [](const Case& c) { return c.name == "exitlast"; }) - t.begin()].one_client = true;
  return t;
}

TEST(NbdkitDaemonTable, PluginsAndFiltersServedAsNbdkitServesThem) {
  if (nbdd::itest::nbdkit_binary().empty()) GTEST_SKIP() << "nbdkit is not installed";
  const auto cases = table();
  std::vector<Outcome> outcomes(cases.size());
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&] {
      for (std::size_t i; (i = next++) < cases.size();) outcomes[i] = run_case(cases[i]);
    });
  for (auto& w : workers) w.join();

  int plugins = 0, filters = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const Outcome& o = outcomes[i];
    SCOPED_TRACE("case " + c.name);
    (c.filters.empty() ? plugins : filters) += 1;
    EXPECT_EQ(o.nbdkit.error, "");
    EXPECT_EQ(o.nbdd.error, "");
    if (!o.nbdkit.error.empty() || !o.nbdd.error.empty()) continue;
    EXPECT_EQ(o.nbdd.info, o.nbdkit.info);
    if (c.one_client) {
      EXPECT_EQ(o.nbdkit.exit_status, 0);
      EXPECT_EQ(o.nbdd.exit_status, 0);
    } else {
      EXPECT_NE(o.nbdd.info.find("\"export-size\": " + std::to_string(c.size) + ","), std::string::npos) << o.nbdd.info;
    }
    EXPECT_EQ(o.nbdd.size, c.size);
    EXPECT_EQ(o.nbdd.size, o.nbdkit.size);
    EXPECT_EQ(o.nbdd.read_errno, o.nbdkit.read_errno);
    EXPECT_TRUE(o.nbdd.bytes == o.nbdkit.bytes) << "bytes differ (" << o.nbdd.bytes.size() << " and "
                                                << o.nbdkit.bytes.size() << " read)";
    EXPECT_EQ(o.nbdd.past_end_errno, o.nbdkit.past_end_errno);
    EXPECT_NE(o.nbdd.past_end_errno, 0);
    EXPECT_EQ(o.nbdd.write_errno, o.nbdkit.write_errno);
    EXPECT_TRUE(o.nbdd.after_write == o.nbdkit.after_write) << "bytes read back after the write differ";
    if (c.name == "error") { EXPECT_EQ(o.nbdd.read_errno, ENOSPC); }
    if (c.name == "error-write") { EXPECT_EQ(o.nbdd.write_errno, ENOMEM); }
    if (c.name == "protect") { EXPECT_EQ(o.nbdd.write_errno, EPERM); }
    if (c.name == "eval" || c.name == "sh") { EXPECT_EQ(o.nbdd.bytes.size(), c.size); }
    if (c.name == "perl" || c.name == "lua") {
      EXPECT_EQ(o.nbdd.bytes.size(), c.size);
      if (!o.nbdd.bytes.empty()) { EXPECT_EQ(o.nbdd.bytes[100], std::byte(c.name[0])); }
    }
    if (c.name == "full") { EXPECT_EQ(o.nbdd.write_errno, ENOSPC); }
    if (c.name == "data-ro") { EXPECT_EQ(o.nbdd.write_errno, EPERM); }
    if (c.name == "log") {
      EXPECT_NE(o.nbdd_log.find("Read id="), std::string::npos) << o.nbdd_log;
      EXPECT_NE(o.nbdd_log.find("Write id="), std::string::npos) << o.nbdd_log;
    }
  }
  EXPECT_GE(plugins, 10);
  EXPECT_GE(filters, 15);
}

}  // namespace
#endif
