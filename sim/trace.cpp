#include "sim/trace.hpp"

#include <algorithm>
#include <cstring>

namespace nbdd::sim {

std::string format_time(core::Instant at) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%llu.%06llums", static_cast<unsigned long long>(at.ns / 1'000'000),
                static_cast<unsigned long long>(at.ns % 1'000'000));
  return buf;
}

// FNV-1a style, a 64-bit word at a time (the value only has to be stable and sensitive).
void Trace::mix(const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    hash_ = (hash_ ^ w) * 0x100000001b3ull;
    hash_ ^= hash_ >> 29;
  }
  std::uint64_t tail = n;
  for (; i < n; ++i) tail = (tail << 8) | p[i];
  hash_ = (hash_ ^ tail) * 0x100000001b3ull;
  hash_ ^= hash_ >> 29;
}

void Trace::record(core::Instant at, std::uint64_t conn, const char* kind, const std::string& text) {
  ++records_;
  mix(&at.ns, sizeof at.ns);
  mix(&conn, sizeof conn);
  mix(kind, std::char_traits<char>::length(kind));
  mix(text.data(), text.size());
  if (full_)
    std::fprintf(out_, "  %s conn=%llu %s %s\n", format_time(at).c_str(), static_cast<unsigned long long>(conn), kind,
                 text.c_str());
  tail_.push_back(Rec{at, conn, kind, text});
  if (tail_.size() > tail_max_) tail_.pop_front();
}

void Trace::print_tail(std::FILE* out, std::size_t n) const {
  std::fprintf(out, "trace (last %zu of %llu records):\n", std::min(n, tail_.size()),
               static_cast<unsigned long long>(records_));
  const std::size_t skip = tail_.size() > n ? tail_.size() - n : 0;
  for (std::size_t i = skip; i < tail_.size(); ++i)
    std::fprintf(out, "  %s conn=%llu %s %s\n", format_time(tail_[i].at).c_str(),
                 static_cast<unsigned long long>(tail_[i].conn), tail_[i].kind, tail_[i].text.c_str());
}

}  // namespace nbdd::sim
