// The nbdkit_* functions themselves, called as a plugin calls them: parsing, paths,
// passwords, the extents and exports lists, interning, nanosleep's early wake-ups, and that
// every function the installed nbdkit plugins and filters import is defined and exported.
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <thread>

#include "plugins/host_context.hpp"
#include "plugins/nbdkit/abi_lists.hpp"
#include "plugins/nbdkit/connection_events.hpp"
#include "plugins/nbdkit/exported_functions.hpp"
#include "plugins/nbdkit/nbdkit_headers.hpp"

namespace {

namespace abi = nbdd::plugin::nbdkit_abi;
using namespace std::chrono_literals;

TEST(NbdkitAbi, ParseIntegersAsNbdkit) {
  int i = 0;
  EXPECT_EQ(nbdkit_parse_int("t", "0x10", &i), 0);
  EXPECT_EQ(i, 16);
  EXPECT_EQ(nbdkit_parse_int("t", "-017", &i), 0);
  EXPECT_EQ(i, -15);
  EXPECT_EQ(nbdkit_parse_int("t", "", &i), -1);
  EXPECT_EQ(nbdkit_parse_int("t", "12x", &i), -1);
  EXPECT_EQ(nbdkit_parse_int("t", "99999999999", &i), -1);
  unsigned u = 7;
  EXPECT_EQ(nbdkit_parse_unsigned("t", " -1", &u), -1);
  EXPECT_EQ(u, 7u);
  uint8_t u8 = 0;
  EXPECT_EQ(nbdkit_parse_uint8_t("t", "255", &u8), 0);
  EXPECT_EQ(u8, 255);
  EXPECT_EQ(nbdkit_parse_uint8_t("t", "256", &u8), -1);
  int8_t i8 = 0;
  EXPECT_EQ(nbdkit_parse_int8_t("t", "-128", &i8), 0);
  EXPECT_EQ(i8, -128);
  EXPECT_EQ(nbdkit_parse_int8_t("t", "128", &i8), -1);
  int64_t i64 = 0;
  EXPECT_EQ(nbdkit_parse_int64_t("t", "-9223372036854775808", &i64), 0);
  EXPECT_EQ(i64, INT64_MIN);
  uint64_t u64 = 0;
  EXPECT_EQ(nbdkit_parse_uint64_t("t", "18446744073709551615", &u64), 0);
  EXPECT_EQ(u64, UINT64_MAX);
  EXPECT_EQ(nbdkit_parse_uint64_t("t", "18446744073709551616", &u64), -1);
  EXPECT_EQ(nbdkit_parse_uint16_t("t", "65535", nullptr), 0);  // a null result pointer is allowed
}

TEST(NbdkitAbi, ParseSizeAsNbdkit) {
  EXPECT_EQ(nbdkit_parse_size("0"), 0);
  EXPECT_EQ(nbdkit_parse_size("512"), 512);
  EXPECT_EQ(nbdkit_parse_size("1k"), 1024);
  EXPECT_EQ(nbdkit_parse_size("1M"), 1 << 20);
  EXPECT_EQ(nbdkit_parse_size("2s"), 1024);
  EXPECT_EQ(nbdkit_parse_size("3b"), 3);
  EXPECT_EQ(nbdkit_parse_size("7E"), 7ll << 60);
  EXPECT_EQ(nbdkit_parse_size("8E"), -1);  // overflow
  EXPECT_EQ(nbdkit_parse_size("1MiB"), -1);
  EXPECT_EQ(nbdkit_parse_size("-1"), -1);
  EXPECT_EQ(nbdkit_parse_size("x"), -1);
  EXPECT_EQ(nbdkit_parse_size("1x"), -1);
}

TEST(NbdkitAbi, ParseBool) {
  for (const char* s : {"1", "true", "TRUE", "t", "yes", "Y", "on"}) EXPECT_EQ(nbdkit_parse_bool(s), 1) << s;
  for (const char* s : {"0", "false", "F", "no", "n", "OFF"}) EXPECT_EQ(nbdkit_parse_bool(s), 0) << s;
  for (const char* s : {"", "2", "yess", "of"}) EXPECT_EQ(nbdkit_parse_bool(s), -1) << s;
}

TEST(NbdkitAbi, PathsAndPasswords) {
  char* p = nbdkit_absolute_path("x/y");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(std::string(p), std::filesystem::current_path().string() + "/x/y");
  std::free(p);
  EXPECT_EQ(nbdkit_absolute_path(""), nullptr);
  p = nbdkit_realpath("/usr/../usr/bin");
  ASSERT_NE(p, nullptr);
  EXPECT_STREQ(p, "/usr/bin");
  std::free(p);
  EXPECT_EQ(nbdkit_realpath("/no/such/file/here"), nullptr);

  char* pw = nullptr;
  ASSERT_EQ(nbdkit_read_password("secret", &pw), 0);
  EXPECT_STREQ(pw, "secret");
  std::free(pw);

  char file[] = "/tmp/nbdd-pwXXXXXX";
  const int fd = ::mkstemp(file);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "from file\nsecond line\n", 22), 22);
  ::close(fd);
  ASSERT_EQ(nbdkit_read_password((std::string("+") + file).c_str(), &pw), 0);
  EXPECT_STREQ(pw, "from file");
  std::free(pw);
  const int rfd = ::open(file, O_RDONLY);
  ASSERT_GE(rfd, 3);
  ASSERT_EQ(nbdkit_read_password(("-" + std::to_string(rfd)).c_str(), &pw), 0);
  EXPECT_STREQ(pw, "from file");
  std::free(pw);
  EXPECT_EQ(::fcntl(rfd, F_GETFD), -1) << "nbdkit closes the password file descriptor";
  EXPECT_EQ(nbdkit_read_password("-1", &pw), -1);  // stdout is refused
  ::unlink(file);
}

TEST(NbdkitAbi, ExtentsFollowNbdkitRules) {
  nbdkit_extents* e = nbdkit_extents_new(100, 200);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(nbdkit_add_extent(e, 0, 50, 0), 0);    // wholly before start: ignored
  EXPECT_EQ(nbdkit_add_extent(e, 50, 70, 1), 0);   // clipped to start at 100
  EXPECT_EQ(nbdkit_add_extent(e, 120, 10, 1), 0);  // same type: merged
  EXPECT_EQ(nbdkit_add_extent(e, 130, 0, 3), 0);   // empty: ignored
  EXPECT_EQ(nbdkit_add_extent(e, 130, 500, 3), 0);  // clipped at end
  EXPECT_EQ(nbdkit_add_extent(e, 700, 5, 0), -1);  // not contiguous
  ASSERT_EQ(nbdkit_extents_count(e), 2u);
  EXPECT_EQ(nbdkit_get_extent(e, 0).offset, 100u);
  EXPECT_EQ(nbdkit_get_extent(e, 0).length, 30u);
  EXPECT_EQ(nbdkit_get_extent(e, 0).type, 1u);
  EXPECT_EQ(nbdkit_get_extent(e, 1).offset, 130u);
  EXPECT_EQ(nbdkit_get_extent(e, 1).length, 70u);
  nbdkit_extents_free(e);

  e = nbdkit_extents_new(100, 200);
  EXPECT_EQ(nbdkit_add_extent(e, 150, 10, 0), -1);  // the first extent must cover start
  nbdkit_extents_free(e);
  EXPECT_EQ(nbdkit_extents_new(5, 4), nullptr);
  nbdkit_extents_free(nullptr);
}

TEST(NbdkitAbi, ExportsFollowNbdkitRules) {
  nbdkit_exports* x = nbdkit_exports_new();
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(nbdkit_add_export(x, "a", "first"), 0);
  EXPECT_EQ(nbdkit_add_export(x, "", nullptr), 0);
  EXPECT_EQ(nbdkit_add_export(x, std::string(4097, 'n').c_str(), nullptr), -1);
  EXPECT_EQ(nbdkit_add_export(x, std::string(4096, 'n').c_str(), nullptr), 0);
  ASSERT_EQ(nbdkit_exports_count(x), 3u);
  EXPECT_STREQ(nbdkit_get_export(x, 0).name, "a");
  EXPECT_STREQ(nbdkit_get_export(x, 0).description, "first");
  EXPECT_EQ(nbdkit_get_export(x, 1).description, nullptr);
  EXPECT_FALSE(x->use_default);
  EXPECT_EQ(nbdkit_use_default_export(x), 0);
  EXPECT_TRUE(x->use_default);
  for (int i = 3; i < 10000; ++i) ASSERT_EQ(nbdkit_add_export(x, "e", nullptr), 0);
  EXPECT_EQ(nbdkit_add_export(x, "one too many", nullptr), -1);
  nbdkit_exports_free(x);
}

TEST(NbdkitAbi, InternedStringsAreCopies) {
  std::string source = "hello";
  const char* a = nbdkit_strdup_intern(source.c_str());
  const char* b = nbdkit_strndup_intern("hello world", 5);
  const char* c = nbdkit_printf_intern("%s-%d", "x", 42);
  source = "changed";
  EXPECT_STREQ(a, "hello");
  EXPECT_STREQ(b, "hello");
  EXPECT_STREQ(c, "x-42");
  EXPECT_EQ(nbdkit_strdup_intern(nullptr), nullptr);
}

// A callback context for connection `id`, as PluginHost sets it around plugin calls.
struct InConnection {
  explicit InConnection(nbdd::core::ConnectionId id)
      : scope(reinterpret_cast<const nbdd::plugin::PluginHost*>(&marker), id, true) {}
  static inline int marker = 0;
  nbdd::plugin::detail::ScopedCallContext scope;
};

TEST(NbdkitAbi, NanosleepSleepsAndWakesEarly) {
  abi::reset_for_tests();
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(nbdkit_nanosleep(0, 20'000'000), 0);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
  EXPECT_EQ(nbdkit_nanosleep(INT_MAX, 0), -1);  // too long

  // This connection's end wakes its sleeper, not another connection's.
  std::thread ender([] {
    std::this_thread::sleep_for(50ms);
    abi::connection_ending(8);
    std::this_thread::sleep_for(100ms);
    abi::connection_ending(7);
  });
  t0 = std::chrono::steady_clock::now();
  {
    InConnection in(7);
    errno = 0;
    EXPECT_EQ(nbdkit_nanosleep(30, 0), -1);
    EXPECT_EQ(errno, ESHUTDOWN);
  }
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 140ms);
  EXPECT_LT(waited, 10s);
  ender.join();
  abi::connection_finished(7);
  abi::connection_finished(8);

  // Server shutdown wakes everyone, also sleeps that start after it.
  std::thread stopper([] {
    std::this_thread::sleep_for(50ms);
    abi::server_shutting_down();
  });
  t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(nbdkit_nanosleep(30, 0), -1);
  EXPECT_EQ(errno, ESHUTDOWN);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  stopper.join();
  EXPECT_EQ(nbdkit_nanosleep(30, 0), -1);
  abi::reset_for_tests();
}

TEST(NbdkitAbi, ConnectionFunctionsOutsideAConnectionFail) {
  EXPECT_EQ(nbdkit_export_name(), nullptr);
  EXPECT_EQ(nbdkit_is_tls(), -1);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  EXPECT_EQ(nbdkit_peer_name(reinterpret_cast<sockaddr*>(&ss), &len), -1);
  EXPECT_EQ(nbdkit_peer_pid(), -1);
  InConnection in(99);  // a connection the daemon never described: no peer known
  EXPECT_EQ(nbdkit_is_tls(), 0);
  EXPECT_EQ(nbdkit_peer_name(reinterpret_cast<sockaddr*>(&ss), &len), -1);
}

TEST(NbdkitAbi, PeerOfAUnixSocketConnection) {
  abi::reset_for_tests();
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  abi::connection_started(5, sv[0]);
  {
    InConnection in(5);
    EXPECT_EQ(nbdkit_peer_pid(), ::getpid());
    EXPECT_EQ(nbdkit_peer_uid(), ::getuid());
    EXPECT_EQ(nbdkit_peer_gid(), ::getgid());
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ASSERT_EQ(nbdkit_peer_name(reinterpret_cast<sockaddr*>(&ss), &len), 0);
    EXPECT_EQ(ss.ss_family, AF_UNIX);
  }
  abi::connection_finished(5);
  ::close(sv[0]);
  ::close(sv[1]);
}

// Every nbdkit_* symbol an installed plugin or filter imports is in our table and exported
// from this executable (dlsym in the global scope is what dlopen's resolution sees).
TEST(NbdkitAbi, EveryImportedSymbolIsExported) {
  std::set<std::string> defined;
  for (const auto& f : abi::exported_functions()) {
    defined.insert(f.name);
    EXPECT_EQ(reinterpret_cast<void*>(f.address), dlsym(RTLD_DEFAULT, f.name)) << f.name << " not exported";
  }
  const std::string cmd = std::string("nm -D --undefined-only ") + NBDD_NBDKIT_PLUGINDIR + "/*.so " +
                          NBDD_NBDKIT_FILTERDIR + "/*.so 2>/dev/null | awk '{print $2}' | grep '^nbdkit_' | sort -u";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char line[256];
  int imported = 0;
  while (std::fgets(line, sizeof line, p)) {
    std::string name(line);
    while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
    ++imported;
    EXPECT_TRUE(defined.count(name)) << name << " is imported by an installed plugin/filter but not defined";
  }
  ::pclose(p);
  EXPECT_GT(imported, 30);
}

}  // namespace
