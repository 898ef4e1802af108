#include "plugins/parse_size.hpp"

#include <cctype>
#include <cerrno>
#include <limits>

#include "plugins/plugin_api.hpp"

namespace nbdd::plugin {
namespace {

// Power of 1024 (or 512 for sectors) a suffix letter stands for; 0 if unknown.
std::uint64_t suffix_scale(char c) {
  switch (std::tolower(static_cast<unsigned char>(c))) {
    case 'b': return 1;
    case 's': return 512;
    case 'k': return 1ull << 10;
    case 'm': return 1ull << 20;
    case 'g': return 1ull << 30;
    case 't': return 1ull << 40;
    case 'p': return 1ull << 50;
    case 'e': return 1ull << 60;
    default: return 0;
  }
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

}  // namespace

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

std::optional<std::uint64_t> parse_size(std::string_view text, std::string& error) {
  const std::string quoted = "'" + std::string(text) + "'";
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) {
    error = "size " + quoted + ": expected a number (e.g. 512, 64M, 1G)";
    return std::nullopt;
  }
  const auto number = parse_u64(text.substr(0, digits));
  std::string_view suffix = text.substr(digits);
  std::uint64_t scale = 1;
  if (!suffix.empty()) {
    scale = suffix_scale(suffix[0]);
    std::string_view rest = suffix.substr(1);
    // "KiB"/"KB" mean the same as "K" (binary), as nbdkit accepts them; not after b/s.
    const bool binary_letter = scale >= (1ull << 10);
    const bool rest_ok = rest.empty() || (binary_letter && (iequals(rest, "ib") || iequals(rest, "b")));
    if (scale == 0 || !rest_ok) {
      error = "size " + quoted + ": unknown suffix (use b, s, K, M, G, T, P or E)";
      return std::nullopt;
    }
  }
  constexpr std::uint64_t max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (!number || *number > max / scale) {
    error = "size " + quoted + ": too large (at most 2^63-1 bytes)";
    return std::nullopt;
  }
  return *number * scale;
}

int config_size_only(Host& host, std::string_view plugin_name, std::string_view key, std::string_view value,
                     std::uint64_t& out) {
  if (key != "size") {
    host.error("unknown parameter '" + std::string(key) + "' (" + std::string(plugin_name) + " takes size=SIZE)");
    return EINVAL;
  }
  std::string error;
  const auto size = parse_size(value, error);
  if (!size) {
    host.error(error);
    return EINVAL;
  }
  out = *size;
  return 0;
}

}  // namespace nbdd::plugin
