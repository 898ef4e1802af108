#include "plugins/sh/exit_status.hpp"

#include <cctype>
#include <cerrno>

namespace nbdd::plugin::sh {
namespace {

struct NamedErrno {
  std::string_view name;
  int value;
};

constexpr NamedErrno known_errnos[] = {
    {"EPERM", EPERM},         {"EIO", EIO},         {"ENOMEM", ENOMEM},       {"EINVAL", EINVAL},
    {"ENOSPC", ENOSPC},       {"EOVERFLOW", EOVERFLOW}, {"ESHUTDOWN", ESHUTDOWN}, {"ENOTSUP", ENOTSUP},
    {"EOPNOTSUPP", EOPNOTSUPP}, {"EROFS", EROFS},   {"EDQUOT", EDQUOT},       {"EFBIG", EFBIG},
};

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Splits "ENOSPC disk full" into ENOSPC and "disk full"; otherwise the default errno and
// the whole text as the message.
void parse_error(std::string_view error_text, int default_err, Status& status) {
  const std::string_view text = trim(error_text);
  std::size_t word_end = 0;
  while (word_end < text.size() && !is_space(text[word_end])) ++word_end;
  if (auto err = errno_from_name(text.substr(0, word_end))) {
    status.err = *err;
    status.message = std::string(trim(text.substr(word_end)));
  } else {
    status.err = default_err;
    status.message = std::string(text);
  }
}

}  // namespace

std::optional<int> errno_from_name(std::string_view name) {
  for (const auto& known : known_errnos) {
    if (known.name.size() != name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < name.size() && same; ++i)
      same = std::toupper(static_cast<unsigned char>(name[i])) == known.name[i];
    if (same) return known.value;
  }
  return std::nullopt;
}

Status classify_exit(int exit_code, std::string_view error_text) {
  Status status;
  auto error = [&](int default_err) {
    status.outcome = Outcome::error;
    parse_error(error_text, default_err, status);
  };
  switch (exit_code) {
    case 0: status.outcome = Outcome::ok; break;
    case 2: status.outcome = Outcome::missing; break;
    case 3: status.outcome = Outcome::false_; break;
    case 4: status.effect = SideEffect::shutdown; break;
    case 5:
      status.effect = SideEffect::shutdown;
      error(ESHUTDOWN);
      break;
    case 6:
      status.effect = SideEffect::disconnect_force;
      error(ESHUTDOWN);
      break;
    case 7: status.effect = SideEffect::disconnect; break;
    case 8:
      status.effect = SideEffect::disconnect;
      error(ESHUTDOWN);
      break;
    default: error(EIO); break;  // 1, 9-15 (reserved), 16-255, killed by a signal
  }
  return status;
}

}  // namespace nbdd::plugin::sh
