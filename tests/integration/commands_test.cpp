// Every command and option end to end with real clients (libnbd, nbdinfo, nbdcopy,
// qemu-img) against the real daemon serving the memory plugin.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "tests/integration/daemon_fixture.hpp"
#include "tests/integration/nbd_handle.hpp"

namespace nbdd::itest {
namespace {

std::vector<char> pattern(std::size_t n, unsigned seed) {
  std::vector<char> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<char>((i * 131 + seed * 17) >> 3);
  return v;
}

TEST(Commands, EveryCommandOverUnixSocket) {
  TempDir dir;
  auto d = Daemon::start_unix(dir, {"memory", "size=64M"});
  ASSERT_TRUE(d);
  Nbd h;
  ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  ASSERT_EQ(nbd_connect_uri(h, d->uri().c_str()), 0) << Nbd::error();
  EXPECT_EQ(nbd_get_size(h), 64 << 20);
  EXPECT_EQ(nbd_is_read_only(h), 0);
  EXPECT_EQ(nbd_can_flush(h), 1);
  EXPECT_EQ(nbd_can_trim(h), 1);
  EXPECT_EQ(nbd_can_zero(h), 1);
  EXPECT_EQ(nbd_can_fua(h), 1);
  EXPECT_EQ(nbd_can_cache(h), 1);
  EXPECT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 1);

  const auto data = pattern(1 << 20, 1);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 4096, 0), 0) << Nbd::error();
  ASSERT_EQ(nbd_pwrite(h, data.data(), 65536, 8 << 20, LIBNBD_CMD_FLAG_FUA), 0) << Nbd::error();
  std::vector<char> back(data.size());
  ASSERT_EQ(nbd_pread(h, back.data(), back.size(), 4096, 0), 0) << Nbd::error();
  EXPECT_EQ(back, data);
  ASSERT_EQ(nbd_flush(h, 0), 0) << Nbd::error();
  ASSERT_EQ(nbd_cache(h, 65536, 0, 0), 0) << Nbd::error();

  // trim + zero read back as zeroes.
  ASSERT_EQ(nbd_trim(h, 65536, 65536, 0), 0) << Nbd::error();
  ASSERT_EQ(nbd_zero(h, 65536, 131072, 0), 0) << Nbd::error();
  ASSERT_EQ(nbd_zero(h, 4096, 262144, LIBNBD_CMD_FLAG_NO_HOLE), 0) << Nbd::error();
  if (nbd_can_fast_zero(h) == 1) {
    ASSERT_EQ(nbd_zero(h, 4096, 266240, LIBNBD_CMD_FLAG_FAST_ZERO), 0) << Nbd::error();
  }
  ASSERT_EQ(nbd_zero(h, 4096, 270336, LIBNBD_CMD_FLAG_FUA), 0) << Nbd::error();
  ASSERT_EQ(nbd_trim(h, 4096, 274432, LIBNBD_CMD_FLAG_FUA), 0) << Nbd::error();
  std::vector<char> zeroes(65536);
  ASSERT_EQ(nbd_pread(h, back.data(), 65536, 65536, 0), 0);
  EXPECT_EQ(std::memcmp(back.data(), zeroes.data(), 65536), 0);
  ASSERT_EQ(nbd_pread(h, back.data(), 65536, 131072, 0), 0);
  EXPECT_EQ(std::memcmp(back.data(), zeroes.data(), 65536), 0);

  // block status: data at the start, a hole far away.
  struct Seen {
    std::uint64_t entries = 0;
    std::uint32_t first_flags = 99;
  } seen;
  nbd_extent_callback cb{
      [](void* user, const char* ctx, std::uint64_t, std::uint32_t* entries, std::size_t n, int*) -> int {
        auto* s = static_cast<Seen*>(user);
        if (std::strcmp(ctx, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0 && n >= 2) {
          s->entries += n / 2;
          if (s->first_flags == 99) s->first_flags = entries[1];
        }
        return 0;
      },
      &seen, nullptr};
  ASSERT_EQ(nbd_block_status(h, 1 << 20, 32 << 20, cb, 0), 0) << Nbd::error();
  EXPECT_GE(seen.entries, 1u);
  EXPECT_EQ(seen.first_flags & LIBNBD_STATE_HOLE, LIBNBD_STATE_HOLE);  // never written
  seen = {};
  ASSERT_EQ(nbd_block_status(h, 4096, 4096, cb, 0), 0) << Nbd::error();
  EXPECT_EQ(seen.first_flags & LIBNBD_STATE_HOLE, 0u);  // written data

  // Out of range: an error reply, the connection stays usable.
  EXPECT_EQ(nbd_pread(h, back.data(), 4096, 64 << 20, 0), -1);
  EXPECT_EQ(nbd_get_errno(), EINVAL);
  ASSERT_EQ(nbd_pread(h, back.data(), 4096, 0, 0), 0);
  ASSERT_EQ(nbd_shutdown(h, 0), 0);
}

TEST(Commands, TcpLoopbackAndExportName) {
  TempDir dir;
  auto d = Daemon::start_tcp(dir, {"-e", "disk1", "memory", "1M"});
  ASSERT_TRUE(d);
  {
    Nbd h;
    ASSERT_EQ(nbd_connect_uri(h, d->uri("disk1").c_str()), 0) << Nbd::error();
    EXPECT_EQ(nbd_get_size(h), 1 << 20);
    EXPECT_STREQ(nbd_get_export_name(h), "disk1");
  }
  {
    Nbd h;  // "" selects the default export
    ASSERT_EQ(nbd_connect_uri(h, d->uri().c_str()), 0) << Nbd::error();
  }
  {
    Nbd h;  // memory serves any name, as nbdkit's does
    ASSERT_EQ(nbd_connect_uri(h, d->uri("nosuch").c_str()), 0) << Nbd::error();
    EXPECT_STREQ(nbd_get_export_name(h), "nosuch");
    EXPECT_EQ(nbd_get_size(h), 1 << 20);
  }
  const auto r = run_shell("nbdinfo --list --json '" + d->uri() + "'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"disk1\""), std::string::npos) << r.output;
}

TEST(Commands, ListExportsWithLibnbd) {
  TempDir dir;
  auto d = Daemon::start_unix(dir, {"-e", "only", "memory", "1M"});
  ASSERT_TRUE(d);
  Nbd h;
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(nbd_connect_unix(h, d->socket().c_str()), 0) << Nbd::error();
  std::vector<std::string> names;
  nbd_list_callback cb{[](void* user, const char* name, const char*) -> int {
                         static_cast<std::vector<std::string>*>(user)->push_back(name);
                         return 0;
                       },
                       &names, nullptr};
  ASSERT_EQ(nbd_opt_list(h, cb), 1) << Nbd::error();
  EXPECT_EQ(names, std::vector<std::string>{"only"});
  ASSERT_EQ(nbd_opt_abort(h), 0);
}

TEST(Commands, ReadOnlyRefusesWrites) {
  TempDir dir;
  auto d = Daemon::start_unix(dir, {"-r", "memory", "1M"});
  ASSERT_TRUE(d);
  Nbd h;
  ASSERT_EQ(nbd_connect_uri(h, d->uri().c_str()), 0) << Nbd::error();
  EXPECT_EQ(nbd_is_read_only(h), 1);
  std::vector<char> buf(4096, 'x');
  ASSERT_EQ(nbd_set_strict_mode(h, 0), 0);  // let the request reach the server
  EXPECT_EQ(nbd_pwrite(h, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_TRUE(nbd_get_errno() == EPERM || nbd_get_errno() == EROFS) << nbd_get_errno();
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), 0);
  EXPECT_EQ(buf, std::vector<char>(4096, 0));
}

TEST(Commands, HundredTwentyEightPipelinedRequestsOnOneConnection) {
  TempDir dir;
  auto d = Daemon::start_unix(dir, {"memory", "64M"});
  ASSERT_TRUE(d);
  Nbd h;
  ASSERT_EQ(nbd_connect_uri(h, d->uri().c_str()), 0) << Nbd::error();
  constexpr int n = 128;
  constexpr std::size_t len = 65536;
  std::vector<std::vector<char>> bufs(n);
  std::vector<std::int64_t> cookies;
  for (int i = 0; i < n; ++i) {
    bufs[i] = pattern(len, static_cast<unsigned>(i));
    const auto c = nbd_aio_pwrite(h, bufs[i].data(), len, static_cast<std::uint64_t>(i) * len,
                                  NBD_NULL_COMPLETION, 0);
    ASSERT_GT(c, 0) << Nbd::error();
    cookies.push_back(c);
  }
  EXPECT_GE(nbd_aio_in_flight(h), 1);
  while (nbd_aio_in_flight(h) > 0) ASSERT_NE(nbd_poll(h, -1), -1) << Nbd::error();
  for (auto c : cookies) EXPECT_EQ(nbd_aio_command_completed(h, c), 1) << Nbd::error();
  std::vector<std::vector<char>> back(n, std::vector<char>(len));
  cookies.clear();
  for (int i = 0; i < n; ++i) {
    const auto c = nbd_aio_pread(h, back[i].data(), len, static_cast<std::uint64_t>(i) * len,
                                 NBD_NULL_COMPLETION, 0);
    ASSERT_GT(c, 0) << Nbd::error();
    cookies.push_back(c);
  }
  EXPECT_GE(nbd_aio_in_flight(h), 64);  // really pipelined
  while (nbd_aio_in_flight(h) > 0) ASSERT_NE(nbd_poll(h, -1), -1) << Nbd::error();
  for (auto c : cookies) EXPECT_EQ(nbd_aio_command_completed(h, c), 1) << Nbd::error();
  for (int i = 0; i < n; ++i) EXPECT_EQ(back[i], bufs[i]) << i;
}

TEST(Commands, EightConnectionsInParallel) {
  TempDir dir;
  auto d = Daemon::start_tcp(dir, {"-t", "8", "memory", "64M"});
  ASSERT_TRUE(d);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      Nbd h;
      if (nbd_connect_uri(h, d->uri().c_str()) != 0) {
        ++failures;
        return;
      }
      constexpr std::size_t len = 256 * 1024;
      for (int round = 0; round < 8; ++round) {
        const std::uint64_t off = (static_cast<std::uint64_t>(t) * 8 + round) * len;
        const auto data = pattern(len, static_cast<unsigned>(t * 100 + round));
        std::vector<char> back(len);
        if (nbd_pwrite(h, data.data(), len, off, 0) != 0 || nbd_pread(h, back.data(), len, off, 0) != 0 ||
            back != data)
          ++failures;
      }
      nbd_shutdown(h, 0);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(Commands, NbdcopyAndQemuImgRoundTrip) {
  TempDir dir;
  auto d = Daemon::start_unix(dir, {"memory", "8M"});
  ASSERT_TRUE(d);
  const std::string src = dir.file("src.img"), back = dir.file("back.img"), back2 = dir.file("back2.img");
  ASSERT_EQ(run_shell("head -c 8388608 /dev/urandom > " + src).status, 0);
  const std::string uri = d->uri();
  auto r = run_shell("nbdcopy " + src + " '" + uri + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_shell("nbdcopy '" + uri + "' " + back + " && cmp " + src + " " + back);
  EXPECT_EQ(r.status, 0) << r.output;
  r = run_shell("qemu-img convert -f raw -O raw '" + uri + "' " + back2 + " && cmp " + src + " " + back2);
  EXPECT_EQ(r.status, 0) << r.output;
  r = run_shell("qemu-img compare -f raw -F raw " + src + " '" + uri + "'");
  EXPECT_EQ(r.status, 0) << r.output;
  r = run_shell("qemu-img convert -n -f raw -O raw " + src + " '" + uri + "' && qemu-img compare -f raw -F raw " +
                src + " '" + uri + "'");
  EXPECT_EQ(r.status, 0) << r.output;
  r = run_shell("nbdinfo --size '" + uri + "'");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.output, "8388608\n");
}

TEST(Commands, OtherBuiltinPlugins) {
  TempDir dir;
  {
    auto d = Daemon::start_unix(dir, {"pattern", "1M"});
    ASSERT_TRUE(d);
    Nbd h;
    ASSERT_EQ(nbd_connect_uri(h, d->uri().c_str()), 0) << Nbd::error();
    unsigned char buf[16];
    ASSERT_EQ(nbd_pread(h, buf, sizeof buf, 8, 0), 0);
    EXPECT_EQ(buf[7], 8);  // each 8-byte word holds its offset, big-endian
    EXPECT_EQ(buf[15], 16);
  }
  {
    auto d = Daemon::start_unix(dir, {"null", "size=1M"});
    ASSERT_TRUE(d);
    const auto r = run_shell("nbdinfo --size '" + d->uri() + "'");
    EXPECT_EQ(r.output, "1048576\n");
  }
  {
    const std::string img = dir.file("disk.img");
    ASSERT_EQ(run_shell("truncate -s 2M " + img).status, 0);
    auto d = Daemon::start_unix(dir, {"file", img});
    ASSERT_TRUE(d);
    Nbd h;
    ASSERT_EQ(nbd_connect_uri(h, d->uri().c_str()), 0) << Nbd::error();
    const auto data = pattern(4096, 5);
    ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 4096, LIBNBD_CMD_FLAG_FUA), 0) << Nbd::error();
    nbd_shutdown(h, 0);
    EXPECT_EQ(read_file(img).substr(4096, 4096), std::string(data.begin(), data.end()));
  }
}

}  // namespace
}  // namespace nbdd::itest
