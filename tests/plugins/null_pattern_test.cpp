#include <gtest/gtest.h>

#include "plugins/null/null_plugin.hpp"
#include "plugins/pattern/pattern_plugin.hpp"
#include "tests/plugins/host_harness.hpp"

namespace nbdd::test {
namespace {

TEST(NullPlugin, ReadsZeroesDiscardsWritesAndReportsAHole) {
  HostHarness h(std::make_unique<plugin::null::NullPlugin>());
  ASSERT_EQ(h.start({"1G"}), "");
  ConnectionPluginState c;
  ASSERT_EQ(h.open(c), 0);
  ASSERT_EQ(h.pwrite(c, filled(4096, 9), 0, plugin::flag::fua), 0);
  std::vector<std::byte> back(4096, std::byte{1});
  ASSERT_EQ(h.pread(c, back, 0), 0);
  EXPECT_EQ(back, std::vector<std::byte>(4096));
  EXPECT_EQ(h.flush(c), 0);
  EXPECT_EQ(h.trim(c, 100, 0), 0);
  EXPECT_EQ(h.zero(c, 100, 0, plugin::flag::fast_zero), 0);
  EXPECT_EQ(h.cache(c, 100, 0), 0);
  std::vector<core::Extent> out;
  ASSERT_EQ(h.extents(c, 1 << 20, 0, 0, out), 0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, plugin::extent_hole | plugin::extent_zero);
  core::ExportInfo info;
  ASSERT_EQ(h.probe(info), 0);
  EXPECT_EQ(info.size_bytes, 1u << 30);
}

// nbdkit's null and pattern plugins ignore the export name: every name is the same disk.
TEST(NullPlugin, ServesAnyExportName) {
  HostHarness h(std::make_unique<plugin::null::NullPlugin>());
  ASSERT_EQ(h.start({"1M"}), "");
  EXPECT_EQ(h.listed_names(), std::vector<std::string>{""});
  for (const char* name : {"", "foo", "a/b", "..", "with space"}) {
    core::ExportInfo info;
    ASSERT_EQ(h.probe(info, false, name), 0) << name;
    EXPECT_EQ(info.name, name);
    EXPECT_EQ(info.size_bytes, 1u << 20);
    EXPECT_TRUE(info.caps.can_write);
  }
}

TEST(PatternPlugin, ServesAnyExportName) {
  HostHarness h(std::make_unique<plugin::pattern::PatternPlugin>());
  ASSERT_EQ(h.start({"1M"}), "");
  for (const char* name : {"", "foo", "../../etc/passwd"}) {
    ConnectionPluginState c;
    core::ExportInfo info;
    ASSERT_EQ(h.open(c, false, name, &info), 0) << name;
    EXPECT_EQ(info.size_bytes, 1u << 20);
    std::vector<std::byte> word(8);
    ASSERT_EQ(h.pread(c, word, 8), 0);
    EXPECT_EQ(word.back(), std::byte{8});
    EXPECT_EQ(h.close(c), 0);
  }
}

std::vector<std::byte> expected_pattern(std::uint64_t offset, std::size_t n) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t pos = offset + i;
    const std::uint64_t word = pos & ~std::uint64_t{7};
    v[i] = static_cast<std::byte>((word >> (8 * (7 - (pos & 7)))) & 0xff);
  }
  return v;
}

TEST(PatternPlugin, EveryWordHoldsItsOffsetBigEndian) {
  HostHarness h(std::make_unique<plugin::pattern::PatternPlugin>());
  ASSERT_EQ(h.start({"size=1T"}), "");
  ConnectionPluginState c;
  ASSERT_EQ(h.open(c), 0);
  std::vector<std::byte> first(16);
  ASSERT_EQ(h.pread(c, first, 0), 0);
  const std::vector<std::byte> want = {std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
                                       std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
                                       std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
                                       std::byte{0}, std::byte{0}, std::byte{0}, std::byte{8}};
  EXPECT_EQ(first, want);
  for (std::uint64_t offset : {1ull, 5ull, 7ull, 8ull, 13ull, 4093ull, (1ull << 40) - 11}) {
    for (std::size_t n : {1u, 3u, 8u, 9u, 21u}) {
      if (offset + n > (1ull << 40)) continue;
      std::vector<std::byte> got(n);
      ASSERT_EQ(h.pread(c, got, offset), 0);
      EXPECT_EQ(got, expected_pattern(offset, n)) << offset << "+" << n;
    }
  }
}

TEST(PatternPlugin, IsReadOnly) {
  HostHarness h(std::make_unique<plugin::pattern::PatternPlugin>());
  ASSERT_EQ(h.start({"64K"}), "");
  core::ExportInfo info;
  ASSERT_EQ(h.probe(info), 0);
  EXPECT_FALSE(info.caps.can_write);
  EXPECT_FALSE(info.caps.can_zero);
  EXPECT_EQ(info.size_bytes, 65536u);
}

}  // namespace
}  // namespace nbdd::test
