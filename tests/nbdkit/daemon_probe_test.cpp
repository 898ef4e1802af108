// Our probe plugin (probe_plugin.c, built against nbdkit's header) served by the real nbdd
// daemon, its nbdkit_disconnect/nbdkit_shutdown calls checked from a libnbd client:
//   nbdkit_disconnect(0): the command that calls it and one already in flight complete;
//                         new commands get ESHUTDOWN.
//   nbdkit_disconnect(1): the connection drops: no reply to what was in flight.
//   nbdkit_shutdown():    the server exits 0; close ran for every open, cleanup and unload once.
// (nbdkit 1.32 has no nbdkit_disconnect, so the plugin does not load there: no comparison.)
#include <gtest/gtest.h>
#include <libnbd.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <vector>

#ifdef NBDD_BINARY
#include "tests/integration/daemon_fixture.hpp"
#include "tests/integration/nbd_handle.hpp"

namespace {

using nbdd::itest::Daemon;
using nbdd::itest::Nbd;
using nbdd::itest::TempDir;
using namespace std::chrono_literals;

constexpr std::uint64_t kSector = 512;
// The probe's sectors (see probe_plugin.c).
constexpr std::uint64_t kDisconnect = 1, kForce = 2, kShutdown = 3, kSlow = 6;

std::unique_ptr<Daemon> serve_probe(const TempDir& dir) {
  return Daemon::start_unix(dir, {NBDD_NBDKIT_PROBE_PLUGIN, "size=1M", "log=" + dir.file("probe.log")});
}

bool connect(Nbd& h, const Daemon& d, const std::string& name = "") {
  if (nbd_connect_uri(h, d.uri(name).c_str()) == 0) return true;
  ADD_FAILURE() << "connect: " << Nbd::error();
  return false;
}

bool probe_bytes(const std::vector<std::byte>& buf, std::uint64_t offset) {
  for (std::size_t i = 0; i < buf.size(); ++i)
    if (buf[i] != std::byte((offset + i) & 0xff)) return false;
  return true;
}

int count(const std::string& text, const std::string& line) {
  int n = 0;
  for (std::size_t p = 0; (p = text.find(line + "\n", p)) != std::string::npos; p += line.size())
    if (p == 0 || text[p - 1] == '\n') ++n;
  return n;
}

TEST(NbdkitDaemonProbe, GracefulDisconnectFinishesInFlightAndRefusesNewCommands) {
  TempDir dir;
  auto d = serve_probe(dir);
  ASSERT_TRUE(d);
  Nbd h;
  ASSERT_TRUE(connect(h, *d));
  std::vector<std::byte> slow(kSector), buf(kSector);
  const std::int64_t cookie = nbd_aio_pread(h, slow.data(), slow.size(), kSlow * kSector, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(cookie, 0) << Nbd::error();
  ASSERT_EQ(nbd_pread(h, buf.data(), buf.size(), kDisconnect * kSector, 0), 0) << Nbd::error();
  EXPECT_TRUE(probe_bytes(buf, kDisconnect * kSector));
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_EQ(nbd_get_errno(), ESHUTDOWN) << Nbd::error();
  const int err = nbdd::itest::wait_command(h, cookie);
  EXPECT_EQ(err, 0) << "the in-flight read failed: " << err << " " << Nbd::error();
  EXPECT_TRUE(probe_bytes(slow, kSlow * kSector));
  // Only this connection: the server serves the next one.
  Nbd other;
  ASSERT_TRUE(connect(other, *d));
  EXPECT_EQ(nbd_pread(other, buf.data(), buf.size(), 0, 0), 0) << Nbd::error();
}

TEST(NbdkitDaemonProbe, ForcedDisconnectDropsTheConnectionWithoutReplies) {
  TempDir dir;
  auto d = serve_probe(dir);
  ASSERT_TRUE(d);
  Nbd h;
  ASSERT_TRUE(connect(h, *d));
  std::vector<std::byte> slow(kSector), buf(kSector);
  const std::int64_t cookie = nbd_aio_pread(h, slow.data(), slow.size(), kSlow * kSector, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(cookie, 0) << Nbd::error();
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), kForce * kSector, 0), -1);
  EXPECT_NE(nbdd::itest::wait_command(h, cookie), 0) << "the in-flight read got a reply";
  EXPECT_FALSE(probe_bytes(slow, kSlow * kSector));
  EXPECT_TRUE(nbd_aio_is_dead(h) == 1 || nbd_aio_is_closed(h) == 1) << "the connection is still up";
  Nbd other;
  ASSERT_TRUE(connect(other, *d));
  EXPECT_EQ(nbd_pread(other, buf.data(), buf.size(), 0, 0), 0) << Nbd::error();
}

TEST(NbdkitDaemonProbe, ShutdownExitsZeroClosingEveryOpenAndUnloadingOnce) {
  TempDir dir;
  auto d = serve_probe(dir);
  ASSERT_TRUE(d);
  {
    Nbd a, b;
    ASSERT_TRUE(connect(a, *d, "a"));
    ASSERT_TRUE(connect(b, *d, "b"));
    std::vector<std::byte> buf(kSector);
    ASSERT_EQ(nbd_pread(b, buf.data(), buf.size(), 0, 0), 0) << Nbd::error();
    EXPECT_EQ(nbd_pread(a, buf.data(), buf.size(), kShutdown * kSector, 0), 0) << Nbd::error();
    const auto status = d->wait_exit(30s);
    ASSERT_TRUE(status) << "nbdd still runs 30 s after nbdkit_shutdown()";
    EXPECT_EQ(*status, 0) << d->stderr_text();
    EXPECT_EQ(nbd_pread(b, buf.data(), buf.size(), 0, 0), -1) << "served after the shutdown";
  }
  const std::string log = nbdd::itest::read_file(dir.file("probe.log"));
  EXPECT_EQ(count(log, "open a"), 1) << log;
  EXPECT_EQ(count(log, "open b"), 1) << log;
  EXPECT_EQ(count(log, "close a"), 1) << log;
  EXPECT_EQ(count(log, "close b"), 1) << log;
  EXPECT_EQ(count(log, "cleanup"), 1) << log;
  EXPECT_EQ(count(log, "unload"), 1) << log;
  EXPECT_EQ(log.substr(log.size() - 15), "cleanup\nunload\n") << log;
}

}  // namespace
#endif
