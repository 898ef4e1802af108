// copy_to_cold must be exactly memcpy for every size and alignment: the streaming path has
// an unaligned head, 64-byte rounds and a tail, each of which can be off by one.
#include "plugins/memory/cold_copy.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace nbdd::plugin::memory {
namespace {

std::vector<std::byte> numbered(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + seed) & 0xff);
  return v;
}

TEST(ColdCopy, MatchesMemcpyAtEveryAlignmentAroundTheThreshold) {
  const std::size_t sizes[] = {0, 1, 63, 4096, cold_copy_bytes_min - 1, cold_copy_bytes_min,
                               cold_copy_bytes_min + 1, cold_copy_bytes_min + 63, 65536, 65536 + 17};
  const auto src = numbered(65536 + 128, 7);
  for (std::size_t n : sizes) {
    for (std::size_t dst_off = 0; dst_off < 17; ++dst_off) {
      for (std::size_t src_off : {std::size_t{0}, std::size_t{3}, std::size_t{16}}) {
        // Guard bytes on both sides catch a write before the start or past the end.
        std::vector<std::byte> dst(n + 64, std::byte{0xEE});
        copy_to_cold(dst.data() + dst_off, src.data() + src_off, n);
        ASSERT_EQ(std::memcmp(dst.data() + dst_off, src.data() + src_off, n), 0) << n << " " << dst_off;
        for (std::size_t i = 0; i < dst_off; ++i) ASSERT_EQ(dst[i], std::byte{0xEE}) << n << " " << dst_off;
        for (std::size_t i = dst_off + n; i < dst.size(); ++i) ASSERT_EQ(dst[i], std::byte{0xEE}) << n;
      }
    }
  }
}

}  // namespace
}  // namespace nbdd::plugin::memory
