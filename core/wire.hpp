// Big-endian loads and stores over spans. No allocation; callers check sizes first.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

namespace nbdd::core::wire {

inline std::uint16_t load_u16(const std::byte* p) {
  return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8) | std::to_integer<unsigned>(p[1]));
}
inline std::uint32_t load_u32(const std::byte* p) {
  return (std::uint32_t{load_u16(p)} << 16) | load_u16(p + 2);
}
inline std::uint64_t load_u64(const std::byte* p) {
  return (std::uint64_t{load_u32(p)} << 32) | load_u32(p + 4);
}
inline void store_u16(std::byte* p, std::uint16_t v) {
  p[0] = std::byte(v >> 8);
  p[1] = std::byte(v);
}
inline void store_u32(std::byte* p, std::uint32_t v) {
  store_u16(p, static_cast<std::uint16_t>(v >> 16));
  store_u16(p + 2, static_cast<std::uint16_t>(v));
}
inline void store_u64(std::byte* p, std::uint64_t v) {
  store_u32(p, static_cast<std::uint32_t>(v >> 32));
  store_u32(p + 4, static_cast<std::uint32_t>(v));
}

// A bounded reader over untrusted bytes: every take checks the remaining length.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> bytes) : bytes_(bytes) {}
  std::size_t remaining() const { return bytes_.size() - pos_; }
  bool u16(std::uint16_t& out) { return take(2) ? (out = load_u16(last_), true) : false; }
  bool u32(std::uint32_t& out) { return take(4) ? (out = load_u32(last_), true) : false; }
  bool u64(std::uint64_t& out) { return take(8) ? (out = load_u64(last_), true) : false; }
  bool bytes(std::size_t n, std::span<const std::byte>& out) {
    if (!take(n)) return false;
    out = {last_, n};
    return true;
  }

 private:
  bool take(std::size_t n) {
    if (remaining() < n) return false;
    last_ = bytes_.data() + pos_;
    pos_ += n;
    return true;
  }
  std::span<const std::byte> bytes_;
  std::size_t pos_ = 0;
  const std::byte* last_ = nullptr;
};

}  // namespace nbdd::core::wire
