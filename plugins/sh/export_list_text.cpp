#include "plugins/sh/export_list_text.hpp"

#include <span>

namespace nbdd::plugin::sh {
namespace {

// Lines without their '\n'; a last line without '\n' counts, "a\n" is one line, not two.
std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
  return lines;
}

enum class Format { names, interleaved, names_then_descriptions };

// The format the first line names, and how many lines that header takes (0 or 1).
Format format_of(const std::vector<std::string_view>& lines, std::size_t& header_lines) {
  header_lines = 1;
  if (!lines.empty()) {
    if (lines[0] == "INTERLEAVED") return Format::interleaved;
    if (lines[0] == "NAMES+DESCRIPTIONS") return Format::names_then_descriptions;
    if (lines[0] == "NAMES") return Format::names;
  }
  header_lines = 0;
  return Format::names;
}

}  // namespace

std::vector<ListedExport> parse_export_list(std::string_view text) {
  const std::vector<std::string_view> all = split_lines(text);
  std::size_t header = 0;
  const Format format = format_of(all, header);
  const std::span<const std::string_view> lines(all.data() + header, all.size() - header);
  std::vector<ListedExport> out;
  switch (format) {
    case Format::names:
      for (std::string_view line : lines) out.push_back({std::string(line), {}});
      break;
    case Format::interleaved:
      for (std::size_t i = 0; i < lines.size(); i += 2)
        out.push_back({std::string(lines[i]), i + 1 < lines.size() ? std::string(lines[i + 1]) : std::string()});
      break;
    case Format::names_then_descriptions: {
      // An odd count leaves the last name without a description, as nbdkit does.
      const std::size_t names = (lines.size() + 1) / 2;
      for (std::size_t i = 0; i < names; ++i)
        out.push_back({std::string(lines[i]), names + i < lines.size() ? std::string(lines[names + i]) : std::string()});
      break;
    }
  }
  return out;
}

std::string first_listed_name(std::string_view text) {
  const std::vector<std::string_view> lines = split_lines(text);
  std::size_t header = 0;
  format_of(lines, header);
  return header < lines.size() ? std::string(lines[header]) : std::string();
}

}  // namespace nbdd::plugin::sh
