#include "plugins/parse_size.hpp"

#include <gtest/gtest.h>

namespace nbdd::plugin {
namespace {

std::optional<std::uint64_t> parse(std::string_view s) {
  std::string error;
  return parse_size(s, error);
}

TEST(ParseSize, AcceptsNbdkitForms) {
  EXPECT_EQ(parse("0"), 0u);
  EXPECT_EQ(parse("512"), 512u);
  EXPECT_EQ(parse("100b"), 100u);
  EXPECT_EQ(parse("2s"), 1024u);
  EXPECT_EQ(parse("1K"), 1024u);
  EXPECT_EQ(parse("1k"), 1024u);
  EXPECT_EQ(parse("64M"), 64u << 20);
  EXPECT_EQ(parse("1G"), 1u << 30);
  EXPECT_EQ(parse("1T"), 1ull << 40);
  EXPECT_EQ(parse("2P"), 2ull << 50);
  EXPECT_EQ(parse("1E"), 1ull << 60);
  EXPECT_EQ(parse("7E"), 7ull << 60);
  EXPECT_EQ(parse("1KiB"), 1024u);
  EXPECT_EQ(parse("1MB"), 1u << 20);
  EXPECT_EQ(parse("9223372036854775807"), 9223372036854775807ull);
}

TEST(ParseSize, RejectsWithAMessage) {
  for (std::string_view bad : {"", "abc", "-1", "1Q", "1.5G", "1bb", "1sB", "8E", "9223372036854775808",
                               "99999999999999999999999", " 1", "1 G", "G"}) {
    std::string error;
    EXPECT_FALSE(parse_size(bad, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(ParseU64, PlainDecimalOnly) {
  EXPECT_EQ(parse_u64("18446744073709551615"), 18446744073709551615ull);
  EXPECT_FALSE(parse_u64("18446744073709551616"));
  EXPECT_FALSE(parse_u64("1K"));
  EXPECT_FALSE(parse_u64(""));
}

}  // namespace
}  // namespace nbdd::plugin
