#include "sim/entropy.hpp"

#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace nbdd::sim {

std::string ChoiceTape::to_hex() const {
  std::size_t n = words_.size();
  while (n > 0 && words_[n - 1] == 0) --n;
  std::string out;
  out.reserve(n * 8);
  char buf[9];
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(words_[i]));
    out += buf;
  }
  return out;
}

std::optional<ChoiceTape> ChoiceTape::parse(std::string_view text, std::string* error) {
  std::string hex;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
    } else if (std::isxdigit(static_cast<unsigned char>(c))) {
      hex += c;
    } else if (!std::isspace(static_cast<unsigned char>(c))) {
      if (error) *error = std::string("tape: unexpected character '") + c + "' (expected hex words)";
      return std::nullopt;
    }
  }
  if (hex.size() % 8 != 0) {
    if (error) *error = "tape: " + std::to_string(hex.size()) + " hex digits, not a multiple of 8";
    return std::nullopt;
  }
  std::vector<std::uint32_t> words;
  words.reserve(hex.size() / 8);
  for (std::size_t i = 0; i < hex.size(); i += 8)
    words.push_back(static_cast<std::uint32_t>(std::strtoul(hex.substr(i, 8).c_str(), nullptr, 16)));
  return ChoiceTape(std::move(words));
}

}  // namespace nbdd::sim
