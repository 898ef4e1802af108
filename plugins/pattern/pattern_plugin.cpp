#include "plugins/pattern/pattern_plugin.hpp"

#include <algorithm>
#include <cstring>

#include "plugins/parse_size.hpp"

namespace nbdd::plugin::pattern {
namespace {

void store_be64(std::byte* out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<std::byte>(v & 0xff);
    v >>= 8;
  }
}

}  // namespace

void fill_pattern(std::span<std::byte> out, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < out.size()) {
    const std::uint64_t pos = offset + done;
    const std::uint64_t word = pos & ~std::uint64_t{7};
    const std::size_t skip = static_cast<std::size_t>(pos - word);
    const std::size_t n = std::min<std::size_t>(8 - skip, out.size() - done);
    if (n == 8) {
      store_be64(out.data() + done, word);
    } else {  // unaligned head or short tail: build the word, copy the wanted bytes
      std::byte tmp[8];
      store_be64(tmp, word);
      std::memcpy(out.data() + done, tmp + skip, n);
    }
    done += n;
  }
}

int PatternPlugin::config(std::string_view key, std::string_view value) {
  return config_size_only(host(), "pattern", key, value, size_bytes_);
}

}  // namespace nbdd::plugin::pattern
