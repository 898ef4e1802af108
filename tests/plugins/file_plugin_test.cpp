#include "plugins/file/file_plugin.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "tests/plugins/host_harness.hpp"
#include "tests/plugins/temp_dir.hpp"

namespace nbdd::test {
namespace {

using plugin::file::FilePlugin;

struct FileTest : ::testing::Test {
  FileTest() {
    path = dir.file("disk.img");
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::ftruncate(fd, 1 << 20), 0);
    ::close(fd);
    h = std::make_unique<HostHarness>(std::make_unique<FilePlugin>());
  }
  void start_and_open() {
    ASSERT_EQ(h->start({path}), "");
    ASSERT_EQ(h->open(conn), 0);
  }
  TempDir dir;
  std::string path;
  std::unique_ptr<HostHarness> h;
  ConnectionPluginState conn;
};

TEST_F(FileTest, WritesReachTheFileAndReadBack) {
  start_and_open();
  const auto data = bytes_of("some bytes for the file");
  ASSERT_EQ(h->pwrite(conn, data, 4000, plugin::flag::fua), 0);
  ASSERT_EQ(h->flush(conn), 0);
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(h->pread(conn, back, 4000), 0);
  EXPECT_EQ(back, data);
  const int fd = ::open(path.c_str(), O_RDONLY);
  std::vector<std::byte> raw(data.size());
  ASSERT_EQ(::pread(fd, raw.data(), raw.size(), 4000), static_cast<ssize_t>(raw.size()));
  ::close(fd);
  EXPECT_EQ(raw, data);
  EXPECT_EQ(h->cache(conn, 4096, 0), 0);
}

TEST_F(FileTest, TrimAndZeroReadBackAsZeroes) {
  start_and_open();
  ASSERT_EQ(h->pwrite(conn, filled(256 << 10, 0x77), 0), 0);
  ASSERT_EQ(h->trim(conn, 64 << 10, 64 << 10), 0);
  ASSERT_EQ(h->zero(conn, 1000, 200 << 10, 0), 0);                           // keep allocation
  ASSERT_EQ(h->zero(conn, 3000, 10, plugin::flag::may_trim | plugin::flag::fua), 0);  // may punch
  std::vector<std::byte> back(256 << 10);
  ASSERT_EQ(h->pread(conn, back, 0), 0);
  for (std::size_t i = 0; i < back.size(); ++i) {
    const bool trimmed = i >= (64 << 10) && i < (128 << 10);
    const bool zeroed = (i >= (200 << 10) && i < (200 << 10) + 1000) || (i >= 10 && i < 3010);
    // A trim may leave the data (trim is advisory); zero must not.
    if (zeroed) {
      ASSERT_EQ(back[i], std::byte{0}) << i;
    } else if (!trimmed) {
      ASSERT_EQ(back[i], std::byte{0x77}) << i;
    }
  }
}

TEST_F(FileTest, FastZeroSucceedsOrFailsWithEnotsupButNeverWritesSlowly) {
  start_and_open();
  ASSERT_EQ(h->pwrite(conn, filled(8192, 1), 0), 0);
  const int r = h->zero(conn, 8192, 0, plugin::flag::fast_zero);
  ASSERT_TRUE(r == 0 || r == ENOTSUP) << r;
  if (r == 0) {
    std::vector<std::byte> back(8192, std::byte{1});
    ASSERT_EQ(h->pread(conn, back, 0), 0);
    EXPECT_EQ(back, std::vector<std::byte>(8192));
  }
}

TEST_F(FileTest, ExtentsAreContiguousAndSeeWrittenData) {
  start_and_open();
  ASSERT_EQ(h->pwrite(conn, filled(64 << 10, 3), 512 << 10), 0);
  std::vector<core::Extent> out;
  ASSERT_EQ(h->extents(conn, 1 << 20, 0, 0, out), 0);
  ASSERT_FALSE(out.empty());
  std::uint64_t next = 0;
  for (const auto& e : out) {
    EXPECT_EQ(e.offset, next);
    next += e.length;
    // Data must never be called a zero hole (the reverse is allowed: data may be zero).
    if (e.offset < (576u << 10) && e.offset + e.length > (512u << 10)) {
      EXPECT_EQ(e.type, 0u);
    }
  }
  EXPECT_EQ(next, 1u << 20);
  ASSERT_EQ(h->extents(conn, 1 << 20, 0, plugin::flag::req_one, out), 0);
  EXPECT_EQ(out.size(), 1u);
}

TEST_F(FileTest, ReadOnlyOpenCannotWrite) {
  ASSERT_EQ(h->start({"file=" + path}), "");
  core::ExportInfo info;
  ASSERT_EQ(h->probe(info, true), 0);
  EXPECT_FALSE(info.caps.can_write);
  ASSERT_EQ(h->probe(info, false), 0);
  EXPECT_TRUE(info.caps.can_write);
  EXPECT_EQ(info.size_bytes, 1u << 20);
}

// file=: as nbdkit's, any export name is the one file, and the list is the default "".
TEST_F(FileTest, AnyExportNameIsTheFile) {
  ASSERT_EQ(h->start({path}), "");
  EXPECT_EQ(h->listed_names(), std::vector<std::string>{""});
  core::ExportInfo info;
  ASSERT_EQ(h->probe(info, false, "whatever/name"), 0);
  EXPECT_EQ(info.size_bytes, 1u << 20);
}

// Each open asks the file's size afresh: a file that grew (or shrank) since start-up, or
// since the previous client, is announced at its size now.
TEST_F(FileTest, SizeFollowsTheFileForEachOpen) {
  ASSERT_EQ(h->start({path}), "");
  core::ExportInfo info;
  ASSERT_EQ(h->probe(info), 0);
  EXPECT_EQ(info.size_bytes, 1u << 20);
  ASSERT_EQ(::truncate(path.c_str(), 3 << 20), 0);
  ASSERT_EQ(h->probe(info), 0);
  EXPECT_EQ(info.size_bytes, 3u << 20);
  ASSERT_EQ(::truncate(path.c_str(), 4096), 0);
  ASSERT_EQ(h->probe(info), 0);
  EXPECT_EQ(info.size_bytes, 4096u);
}

TEST(FilePluginReadOnly, UnwritableFileIsServedReadOnly) {
  TempDir dir;
  // root ignores permission bits; a sysfs attribute without a store method refuses
  // O_RDWR even to root (EACCES).
  std::string path = "/sys/devices/system/cpu/online";
  if (::geteuid() == 0 && ::access(path.c_str(), R_OK) != 0) GTEST_SKIP() << "no read-only file for root";
  if (::geteuid() != 0) {
    path = dir.write("ro.img", std::string(4096, 'x'));
    ASSERT_EQ(::chmod(path.c_str(), 0444), 0);
  }
  HostHarness h(std::make_unique<FilePlugin>());
  ASSERT_EQ(h.start({path}), "");
  core::ExportInfo info;
  ASSERT_EQ(h.probe(info), 0);
  EXPECT_FALSE(info.caps.can_write);
  EXPECT_FALSE(info.caps.can_zero);
}

TEST(FilePluginErrors, MissingFileFailsAtStart) {
  TempDir dir;
  HostHarness h(std::make_unique<FilePlugin>());
  const std::string error = h.start({dir.file("nope.img")});
  EXPECT_NE(error.find("nope.img"), std::string::npos) << error;
  HostHarness none(std::make_unique<FilePlugin>());
  EXPECT_NE(none.start({}).find("file"), std::string::npos);
}

TEST(FilePluginErrors, DirectoryAsFileIsRefusedWithAHint) {
  TempDir dir;
  HostHarness h(std::make_unique<FilePlugin>());
  const std::string error = h.start({"file=" + dir.path()});
  EXPECT_NE(error.find("dir="), std::string::npos) << error;
}

// cache=none and fadvise= (nbdkit-file-plugin's): the bytes are the same whatever the
// caching; bad values are refused at start-up, naming them.
TEST_F(FileTest, CacheNoneAndFadviseServeTheSameBytes) {
  ASSERT_EQ(h->start({path, "cache=none", "fadvise=random"}), "");
  ASSERT_EQ(h->open(conn), 0);
  for (int i = 0; i < 20; ++i) {  // more writes than the eviction window holds
    const auto data = filled(4096, static_cast<unsigned char>(i + 1));
    ASSERT_EQ(h->pwrite(conn, data, 4096 * i), 0);
  }
  for (int i = 0; i < 20; ++i) {
    std::vector<std::byte> back(4096);
    ASSERT_EQ(h->pread(conn, back, 4096 * i), 0);
    EXPECT_EQ(back, filled(4096, static_cast<unsigned char>(i + 1))) << i;
  }
  ASSERT_EQ(h->close(conn), 0);
}

TEST(FilePluginParameters, EveryFadviseAndCacheValue) {
  TempDir dir;
  const std::string path = dir.file("p.img");
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  ::close(fd);
  for (const char* arg : {"fadvise=normal", "fadvise=random", "fadvise=sequential", "cache=default", "cache=none"}) {
    HostHarness h(std::make_unique<FilePlugin>());
    EXPECT_EQ(h.start({path, arg}), "") << arg;
  }
  for (const char* arg : {"fadvise=fast", "cache=all", "cache="}) {
    HostHarness h(std::make_unique<FilePlugin>());
    const std::string error = h.start({path, arg});
    EXPECT_NE(error.find(std::string(arg).substr(std::string(arg).find('=') + 1)), std::string::npos) << arg << error;
    EXPECT_FALSE(error.empty()) << arg;
  }
}

}  // namespace
}  // namespace nbdd::test
