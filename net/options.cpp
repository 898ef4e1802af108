// The command-line parser: glibc getopt_long's rules (permutation, `--`, bundled short
// options, attached or separate values, unambiguous long prefixes) over nbdkit 1.32's option
// table plus nbdd's own options. What each option does is in options_apply.cpp.
#include "net/options.hpp"

#include <charconv>
#include <cstdlib>
#include <cstdint>
#include <string_view>

#include "net/options_table.hpp"

namespace nbdd::net {
namespace {

const OptionSpec* find_short(char c) {
  for (const auto& s : option_table())
    if (s.short_name == c) return &s;
  return nullptr;
}

// glibc's matching: an exact name wins; otherwise every option the prefix starts must be the
// same option (aliases such as --export/--export-name/--exportname count as one). One rule
// more, so that nbdd's own options take no abbreviation away from nbdkit's users: when the
// prefix is ambiguous only because of nbdd's options, nbdkit's option wins (`--exit` is
// --exit-with-parent, as in nbdkit, although --exit-timeout also starts with it).
const OptionSpec* find_long(std::string_view name, std::string& error) {
  const OptionSpec* found = nullptr;
  const OptionSpec* found_nbdkit = nullptr;
  bool ambiguous = false, ambiguous_nbdkit = false;
  std::string candidates;
  for (const auto& s : option_table()) {
    if (s.long_name == name) return &s;
    if (s.long_name.substr(0, name.size()) != name) continue;
    candidates += " '--" + std::string(s.long_name) + "'";
    if (found && found->id != s.id) ambiguous = true;
    if (!found) found = &s;
    if (s.nbdd_only) continue;
    if (found_nbdkit && found_nbdkit->id != s.id) ambiguous_nbdkit = true;
    if (!found_nbdkit) found_nbdkit = &s;
  }
  if (ambiguous && found_nbdkit && !ambiguous_nbdkit) return found_nbdkit;
  if (ambiguous) {
    error = "option '--" + std::string(name) + "' is ambiguous; possibilities:" + candidates;
    return nullptr;
  }
  if (!found) error = "unknown option '--" + std::string(name) + "' (see nbdd --help)";
  return found;
}

// Combinations, once everything is parsed (nbdkit's checks after its getopt loop).
std::string check(const Options& o) {
  if (o.immediate != ImmediateAction::none) return {};
  if (o.plugin.empty()) {
    if (o.help || o.version) return {};
    if (o.dump_plugin)
      return "--dump-plugin needs a plugin: 'nbdd PLUGIN --dump-plugin' (for the server itself use --dump-config)";
    return "no plugin given (usage: nbdd [OPTIONS] PLUGIN [KEY=VALUE...])";
  }
  if (o.help || o.version) return {};
  if (o.single && o.dump_plugin) return "-s cannot be combined with --dump-plugin";
  if (o.dump_plugin) return {};
  if (o.single && (o.port || o.ipaddr || o.unix_path)) return "-s cannot be combined with -p, -i or -U";
  if (o.single && o.run) return "-s cannot be combined with --run";
  // -U together with -p/-i serves both (an nbdd extension; nbdkit allows one).
  return {};
}

}  // namespace

bool Options::wants_tcp() const {
  if (single) return false;
  if (port || ipaddr) return true;
  return !unix_path && !run;
}

bool parse_unsigned(std::string_view text, std::uint64_t max, std::uint64_t& out) {
  if (text.empty()) return false;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc{} && ptr == end && out <= max;
}

std::optional<core::Duration> parse_duration(const std::string& text) {
  std::string_view t = text;
  std::uint64_t scale_ns = 1'000'000'000;
  if (t.size() > 2 && t.substr(t.size() - 2) == "ms") {
    scale_ns = 1'000'000;
    t.remove_suffix(2);
  } else if (t.size() > 1 && t.back() == 's') {
    t.remove_suffix(1);
  }
  const auto dot = t.find('.');
  std::uint64_t whole = 0;
  if (!parse_unsigned(t.substr(0, dot), 1'000'000, whole)) return std::nullopt;
  std::uint64_t ns = whole * scale_ns;
  if (dot != std::string_view::npos) {
    std::string_view frac = t.substr(dot + 1);
    if (frac.empty() || frac.size() > 9) return std::nullopt;
    std::uint64_t f = 0;
    if (!parse_unsigned(frac, 999'999'999, f)) return std::nullopt;
    std::uint64_t denom = 1;
    for (std::size_t i = 0; i < frac.size(); ++i) denom *= 10;
    ns += f * scale_ns / denom;
  }
  return core::Duration{ns};
}

ParseResult parse_options(const std::vector<std::string>& args, bool posixly_correct) {
  ParseResult r;
  Options& o = r.options;
  std::vector<std::string> operands;  // the plugin name and its arguments, in order
  std::size_t i = 1;
  // The next word as an option's value, whatever it looks like (as getopt).
  auto next_value = [&](std::string& value, const std::string& shown) -> bool {
    if (i + 1 >= args.size()) {
      r.error = "option '" + shown + "' requires an argument";
      return false;
    }
    value = args[++i];
    return true;
  };
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a.size() < 2 || a[0] != '-') {  // not an option ("-" alone is a word, as getopt)
      if (posixly_correct) break;
      operands.push_back(a);
      continue;
    }
    if (a[1] == '-') {
      const auto eq = a.find('=');
      const std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      const OptionSpec* spec = find_long(name, r.error);
      if (!spec) return r;
      const std::string shown = "--" + std::string(spec->long_name);
      std::string value;
      if (spec->takes_value) {
        if (eq != std::string::npos) value = a.substr(eq + 1);
        else if (!next_value(value, shown)) return r;
      } else if (eq != std::string::npos) {
        r.error = "option '" + shown + "' takes no argument";
        return r;
      }
      if (r.error = apply_option(o, *spec, shown, value); !r.error.empty()) return r;
      if (o.immediate != ImmediateAction::none) return r;
      continue;
    }
    for (std::size_t k = 1; k < a.size(); ++k) {  // bundled short options: -fv, -p10809
      const OptionSpec* spec = find_short(a[k]);
      const std::string shown = std::string("-") + a[k];
      if (!spec) {
        r.error = "unknown option '" + shown + "' (see nbdd --help)";
        return r;
      }
      std::string value;
      if (spec->takes_value) {
        if (k + 1 < a.size()) value = a.substr(k + 1);
        else if (!next_value(value, shown)) return r;
        k = a.size();
      }
      if (r.error = apply_option(o, *spec, shown, value); !r.error.empty()) return r;
    }
  }
  operands.insert(operands.end(), args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  if (!operands.empty()) {
    o.plugin = operands.front();
    o.plugin_args.assign(operands.begin() + 1, operands.end());
  }
  r.error = check(o);
  return r;
}

ParseResult parse_options(int argc, const char* const* argv) {
  std::vector<std::string> args(argv, argv + argc);
  return parse_options(args, std::getenv("POSIXLY_CORRECT") != nullptr);
}

}  // namespace nbdd::net
