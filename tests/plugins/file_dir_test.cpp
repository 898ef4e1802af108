// `file dir=DIR` (nbdkit-file-plugin's directory mode): one export per regular file in DIR,
// listed as the directory is at each NBD_OPT_LIST, opened by name, and no name leads out.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "plugins/file/file_plugin.hpp"
#include "tests/plugins/host_harness.hpp"
#include "tests/plugins/temp_dir.hpp"

namespace nbdd::test {
namespace {

using plugin::file::FilePlugin;

struct FileDirTest : ::testing::Test {
  FileDirTest() {
    exports = dir.file("exports");
    std::filesystem::create_directory(exports);
    dir.write("exports/a.img", std::string(4096, 'a'));
    dir.write("exports/b.img", std::string(8192, 'b'));
    std::filesystem::create_directory(exports + "/subdir");
    dir.write("outside.img", std::string(512, 'o'));
    ::mkfifo((exports + "/fifo").c_str(), 0600);
    h = std::make_unique<HostHarness>(std::make_unique<FilePlugin>());
  }
  void start() { ASSERT_EQ(h->start({"dir=" + exports}), ""); }
  std::vector<std::string> sorted_names() {
    auto names = h->listed_names();
    std::sort(names.begin(), names.end());
    return names;
  }
  TempDir dir;
  std::string exports;
  std::unique_ptr<HostHarness> h;
};

TEST_F(FileDirTest, ListsRegularFilesOnly) {
  start();
  EXPECT_EQ(sorted_names(), (std::vector<std::string>{"a.img", "b.img"}));
}

TEST_F(FileDirTest, ListsSymlinksToFilesButNotToDirectories) {
  std::filesystem::create_symlink(dir.file("outside.img"), exports + "/link.img");
  std::filesystem::create_symlink(exports + "/subdir", exports + "/link-dir");
  start();
  EXPECT_EQ(sorted_names(), (std::vector<std::string>{"a.img", "b.img", "link.img"}));
}

TEST_F(FileDirTest, OpensEachExportByName) {
  start();
  for (const auto& [name, size, byte] : {std::tuple{"a.img", 4096u, 'a'}, std::tuple{"b.img", 8192u, 'b'}}) {
    ConnectionPluginState c;
    core::ExportInfo info;
    ASSERT_EQ(h->open(c, false, name, &info), 0) << name;
    EXPECT_EQ(info.name, name);
    EXPECT_EQ(info.size_bytes, size);
    EXPECT_TRUE(info.caps.can_write);
    std::vector<std::byte> first(1);
    ASSERT_EQ(h->pread(c, first, 0), 0);
    EXPECT_EQ(first[0], std::byte(byte));
    EXPECT_EQ(h->close(c), 0);
  }
}

TEST_F(FileDirTest, NamesThatAreNotAFileInTheDirectoryAreRefused) {
  start();
  for (const std::string& name : std::vector<std::string>{"../outside.img", "subdir/../a.img", "/etc/passwd", ".", "..", "subdir", "fifo",
                                 "missing.img", std::string("a.img\0x", 7)}) {
    core::ExportInfo info;
    EXPECT_NE(h->probe(info, false, name), 0) << name;
  }
  EXPECT_NE(plugin::PluginHost::last_error(), "");
}

TEST_F(FileDirTest, EmptyNameIsNotPermitted) {
  start();
  core::ExportInfo info;
  EXPECT_EQ(h->probe(info, false, ""), ENOENT);
  EXPECT_NE(plugin::PluginHost::last_error().find("not permitted"), std::string::npos);
}

TEST_F(FileDirTest, AFileAddedAfterStartIsListedAndServed) {
  start();
  dir.write("exports/late.img", std::string(1024, 'l'));
  EXPECT_EQ(sorted_names(), (std::vector<std::string>{"a.img", "b.img", "late.img"}));
  core::ExportInfo info;
  ASSERT_EQ(h->probe(info, false, "late.img"), 0);
  EXPECT_EQ(info.size_bytes, 1024u);
  std::filesystem::remove(exports + "/late.img");
  EXPECT_EQ(sorted_names(), (std::vector<std::string>{"a.img", "b.img"}));
  EXPECT_NE(h->probe(info, false, "late.img"), 0);
}

TEST_F(FileDirTest, SizeFollowsTheFileGrowing) {
  start();
  core::ExportInfo info;
  ASSERT_EQ(h->probe(info, false, "a.img"), 0);
  EXPECT_EQ(info.size_bytes, 4096u);
  ASSERT_EQ(::truncate((exports + "/a.img").c_str(), 1 << 20), 0);
  ASSERT_EQ(h->probe(info, false, "a.img"), 0);
  EXPECT_EQ(info.size_bytes, 1u << 20);
}

TEST_F(FileDirTest, ReadOnlyOpenCannotWrite) {
  start();
  core::ExportInfo info;
  ASSERT_EQ(h->probe(info, true, "a.img"), 0);
  EXPECT_FALSE(info.caps.can_write);
}

TEST_F(FileDirTest, ListIsCappedByTheServer) {
  start();
  ConnectionPluginState c;
  std::vector<core::ExportEntry> out;
  ASSERT_EQ(h->list_exports(c, out, false, 1), 0);
  EXPECT_EQ(out.size(), 1u);
}

TEST(FileDirErrors, FileAndDirTogetherOrADirThatIsNotOneAreRefused) {
  TempDir dir;
  const std::string file = dir.write("disk.img", "x");
  HostHarness both(std::make_unique<FilePlugin>());
  EXPECT_NE(both.start({"file=" + file, "dir=" + dir.path()}).find("same time"), std::string::npos);
  HostHarness not_dir(std::make_unique<FilePlugin>());
  EXPECT_NE(not_dir.start({"dir=" + file}).find("not a directory"), std::string::npos);
  HostHarness missing(std::make_unique<FilePlugin>());
  EXPECT_NE(missing.start({"dir=" + dir.file("nope")}).find("nope"), std::string::npos);
}

}  // namespace
}  // namespace nbdd::test
