// Internal to net/options*.cpp: nbdkit 1.32's option table (server/options.h) with nbdd's own
// options added, and what each option does to Options.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "net/options.hpp"

namespace nbdd::net {

struct OptionSpec {
  char short_name;              // 0 = long only
  std::string_view long_name;   // one row per alias (--read-only and --readonly)
  bool takes_value;
  std::string_view id;          // the same for every alias of one option
  bool nbdd_only = false;       // not one of nbdkit's (abbreviations prefer nbdkit's options)
};

std::span<const OptionSpec> option_table();
// Applies one option (`shown`: as the user spelled it, for messages). "" or an error message.
std::string apply_option(Options& o, const OptionSpec& spec, const std::string& shown, const std::string& value);
// Digits only, at most `max`.
bool parse_unsigned(std::string_view text, std::uint64_t max, std::uint64_t& out);

}  // namespace nbdd::net
