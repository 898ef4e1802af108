// SIGTERM in the middle of a large `nbdcopy` to nbdd (issue 22): libnbd 1.14 treats a reply
// that arrives before the request's whole payload was sent as a broken server and drops the
// connection ("Transport endpoint is not connected" for everything in flight). nbdd must
// instead take each refused WRITE's payload in full, answer ESHUTDOWN, exit 0, and keep every
// write it acknowledged. nbdcopy does not say which writes were acknowledged, so the disk is
// checked block by block: each block holds either the source's bytes or the original zeros,
// never anything else (a torn or misplaced write), and some of the source did land.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "tests/integration/daemon_fixture.hpp"

namespace nbdd::itest {
namespace {

constexpr std::uint64_t image_size = 512ull << 20;  // large enough that SIGTERM lands mid-copy
constexpr std::uint64_t trigger_bytes = 16ull << 20;  // SIGTERM once this much reached the file
constexpr std::size_t block = 4096;

std::uint64_t allocated_bytes(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_blocks) * 512 : 0;
}

struct BlockCensus {
  std::uint64_t copied = 0, original = 0, garbage = 0;
  std::uint64_t first_garbage = ~0ull;
};

// Classifies every block of `disk` against `source` (copied) and zeros (original).
BlockCensus census(const std::string& source, const std::string& disk) {
  BlockCensus c;
  std::ifstream src(source, std::ios::binary), dst(disk, std::ios::binary);
  std::vector<char> a(1 << 20), b(1 << 20);
  const std::vector<char> zeros(block, 0);
  for (std::uint64_t off = 0; off < image_size; off += a.size()) {
    src.read(a.data(), static_cast<std::streamsize>(a.size()));
    dst.read(b.data(), static_cast<std::streamsize>(b.size()));
    if (src.gcount() != static_cast<std::streamsize>(a.size()) ||
        dst.gcount() != static_cast<std::streamsize>(b.size())) {
      ADD_FAILURE() << "short read at " << off << " (disk size changed?)";
      return c;
    }
    for (std::size_t i = 0; i < a.size(); i += block) {
      if (std::memcmp(a.data() + i, b.data() + i, block) == 0) {
        ++c.copied;
      } else if (std::memcmp(zeros.data(), b.data() + i, block) == 0) {
        ++c.original;
      } else {
        if (c.garbage++ == 0) c.first_garbage = off + i;
      }
    }
  }
  return c;
}

enum class Attempt { mid_copy, finished_too_early };

// One copy with a SIGTERM once `trigger_bytes` reached the disk. Fails the test on any broken
// promise; returns finished_too_early (nothing checked) if the copy won the race.
Attempt copy_and_interrupt(const TempDir& dir, const std::string& source) {
  const std::string disk = dir.file("disk.img");
  ::unlink(disk.c_str());
  std::ofstream{disk};
  EXPECT_EQ(::truncate(disk.c_str(), static_cast<off_t>(image_size)), 0);  // sparse zeros
  auto d = Daemon::start_unix(dir, {"file", disk});
  if (!d) {
    ADD_FAILURE() << "nbdd did not start";
    return Attempt::mid_copy;
  }
  const std::string copy_log = dir.file("nbdcopy.log");
  const pid_t copy = spawn({"/usr/bin/nbdcopy", source, d->uri()}, copy_log, copy_log);
  std::optional<int> copy_status;
  const auto give_up = std::chrono::steady_clock::now() + 120s;
  while (allocated_bytes(disk) < trigger_bytes) {
    copy_status = wait_child(copy, 0ms);
    if (copy_status) break;
    if (std::chrono::steady_clock::now() > give_up) {
      ADD_FAILURE() << "the copy wrote under " << trigger_bytes << " bytes in 120 s";
      ::kill(copy, SIGKILL);
      ::waitpid(copy, nullptr, 0);
      return Attempt::mid_copy;
    }
    std::this_thread::sleep_for(1ms);
  }
  if (copy_status) {
    // nbdcopy ended before the signal: a race lost to a fast copy unless it failed by itself.
    EXPECT_EQ(*copy_status, 0) << read_file(copy_log);
    return Attempt::finished_too_early;  // ~Daemon checks the SIGTERM and exit 0
  }
  d->signal(SIGTERM);
  copy_status = wait_child(copy, 120s);
  if (!copy_status) {
    ADD_FAILURE() << "nbdcopy still running 120 s after SIGTERM";
    ::kill(copy, SIGKILL);
    ::waitpid(copy, nullptr, 0);
  }
  const auto daemon_status = d->wait_exit(60s);
  EXPECT_TRUE(daemon_status) << "nbdd did not exit within 60 s of SIGTERM";
  if (daemon_status) {
    EXPECT_EQ(*daemon_status, 0) << d->stderr_text();
  }
  const std::string output = read_file(copy_log);
  EXPECT_TRUE(copy_status && *copy_status != 0) << "nbdcopy succeeded although nbdd was stopped mid-copy";
  EXPECT_NE(output.find(std::strerror(ESHUTDOWN)), std::string::npos)
      << "nbdcopy did not see ESHUTDOWN replies:\n" << output;
  EXPECT_EQ(output.find(std::strerror(ENOTCONN)), std::string::npos)
      << "nbdcopy lost the connection instead of getting ESHUTDOWN replies:\n" << output;
  EXPECT_EQ(output.find("cookie"), std::string::npos) << "libnbd saw a reply it did not expect:\n" << output;
  const BlockCensus c = census(source, disk);
  EXPECT_EQ(c.garbage, 0u) << "blocks that are neither the source's nor the original's, first at offset "
                           << c.first_garbage;
  // Every write that had reached the file before SIGTERM was let finish and so acknowledged.
  EXPECT_GE(c.copied * block, trigger_bytes) << "less of the source on disk than was written before SIGTERM";
  EXPECT_GT(c.original, 0u) << "the copy was not interrupted";
  return Attempt::mid_copy;
}

TEST(NbdcopySigterm, MidCopySigtermGivesEshutdownKeepsAcknowledgedWritesAndExitsZero) {
  TempDir dir;
  const std::string source = dir.file("source.img");
  ASSERT_EQ(run_shell("head -c " + std::to_string(image_size) + " /dev/urandom > " + source).status, 0);
  // Only the timing is retried: a copy that finished before the signal checks nothing.
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (copy_and_interrupt(dir, source) == Attempt::mid_copy) return;
  }
  GTEST_SKIP() << "nbdcopy finished before SIGTERM three times; nothing was interrupted";
}

}  // namespace
}  // namespace nbdd::itest
