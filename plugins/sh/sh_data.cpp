// ShPlugin: per-connection and data methods. Every one is `SCRIPT METHOD HANDLE ...`.
#include <cerrno>
#include <string>

#include "plugins/parse_size.hpp"
#include "plugins/sh/sh_plugin.hpp"

namespace nbdd::plugin::sh {
namespace {

struct ShHandle final : Handle {
  std::string id;  // what `open` printed, trailing newline removed
};

const std::string& id_of(Handle& h) { return static_cast<ShHandle&>(h).id; }

std::string_view strip_newline(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Extent type as nbdkit-sh accepts it: a number, or words such as "hole,zero" / "data".
std::optional<std::uint32_t> parse_type(std::string_view text) {
  if (text.empty()) return 0;
  if (auto n = parse_u64(text)) return static_cast<std::uint32_t>(*n & 3);
  std::uint32_t type = 0;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view word = text.substr(0, comma);
    if (word == "hole") type |= extent_hole;
    else if (word == "zero") type |= extent_zero;
    else if (word != "data" && !word.empty()) return std::nullopt;
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
  }
  return type;
}

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) words.push_back(line.substr(start, i - start));
  }
  return words;
}

}  // namespace

int ShPlugin::open(bool readonly, std::string_view export_name, std::unique_ptr<Handle>& out) {
  OutputSink text;
  const Status s = call({"open", readonly ? "true" : "false", std::string(export_name), host().is_tls() ? "true" : "false"}, text);
  if (int r = status_to_errno(s, "open", 0); r != 0) return r;
  auto handle = std::make_unique<ShHandle>();
  if (s.outcome == Outcome::ok) handle->id = std::string(strip_newline(text.text));
  out = std::move(handle);
  return 0;
}

void ShPlugin::close(Handle& h) { call({"close", id_of(h)}); }

// Prints the description; one trailing newline is removed. Missing or failing: none.
std::string ShPlugin::export_description(Handle& h) {
  OutputSink out;
  const Status s = call({"export_description", id_of(h)}, out);
  if (s.outcome != Outcome::ok) return {};
  std::string_view text = out.text;
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  return std::string(text);
}

int ShPlugin::get_size(Handle& h, std::uint64_t& size) {
  OutputSink out;
  const Status s = call({"get_size", id_of(h)}, out);
  if (s.outcome == Outcome::missing) {
    host().error("get_size: the script must implement get_size");
    return EIO;
  }
  if (int r = status_to_errno(s, "get_size", EIO); r != 0) return r;
  std::string error;
  const auto parsed = parse_size(strip_newline(out.text), error);
  if (!parsed) {
    host().error("get_size: " + error);
    return EIO;
  }
  size = *parsed;
  return 0;
}

// Output: "MINIMUM PREFERRED MAXIMUM". Missing: no constraints.
int ShPlugin::block_size(Handle& h, std::uint32_t& minimum, std::uint32_t& preferred, std::uint32_t& maximum) {
  minimum = preferred = maximum = 0;
  OutputSink out;
  const Status s = call({"block_size", id_of(h)}, out);
  if (s.outcome == Outcome::missing) return 0;
  if (int r = status_to_errno(s, "block_size", 0); r != 0) return r;
  const auto words = split_words(strip_newline(out.text));
  std::string ignored;
  std::optional<std::uint64_t> v[3];
  for (std::size_t i = 0; i < 3 && words.size() == 3; ++i) v[i] = parse_size(words[i], ignored);
  if (!v[0] || !v[1] || !v[2] || *v[0] > 0xffffffffu || *v[1] > 0xffffffffu || *v[2] > 0xffffffffu) {
    host().error("block_size: expected MINIMUM PREFERRED MAXIMUM, got '" + std::string(strip_newline(out.text)) + "'");
    return EIO;
  }
  minimum = static_cast<std::uint32_t>(*v[0]);
  preferred = static_cast<std::uint32_t>(*v[1]);
  maximum = static_cast<std::uint32_t>(*v[2]);
  return 0;
}

int ShPlugin::boolean(Handle& h, const char* method) {
  const Status s = call({method, id_of(h)});
  switch (s.outcome) {
    case Outcome::ok: return 1;
    case Outcome::false_: return 0;
    case Outcome::missing: return 0;  // nbdkit-sh: an absent can_* means false
    case Outcome::error: return -(s.err != 0 ? s.err : EIO);
  }
  return -EIO;
}

// can_fua / can_cache print none, emulate or native. Missing: none.
int ShPlugin::mode(Handle& h, const char* method) {
  OutputSink out;
  const Status s = call({method, id_of(h)}, out);
  if (s.outcome == Outcome::missing || s.outcome == Outcome::false_) return 0;
  if (s.outcome == Outcome::error) return -(s.err != 0 ? s.err : EIO);
  const std::string_view answer = strip_newline(out.text);
  if (answer == "none") return 0;
  if (answer == "emulate") return 1;
  if (answer == "native") return 2;
  host().error(std::string(method) + ": expected none, emulate or native, got '" + std::string(answer) + "'");
  return -EIO;
}

int ShPlugin::pread(Handle& h, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t flags) {
  OutputSink out;
  out.fixed = buf;
  const Status s = call({"pread", id_of(h), std::to_string(buf.size()), std::to_string(offset), flags_string(flags)},
                        out);
  if (s.outcome == Outcome::missing) {
    host().error("pread: the script must implement pread");
    return EIO;
  }
  if (int r = status_to_errno(s, "pread", EIO); r != 0) return r;
  if (out.total != buf.size()) {
    host().error("pread: the script printed " + std::to_string(out.total) + " bytes, expected " +
                 std::to_string(buf.size()));
    return EIO;
  }
  return 0;
}

int ShPlugin::pwrite(Handle& h, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t flags) {
  OutputSink out;
  const Status s = call({"pwrite", id_of(h), std::to_string(buf.size()), std::to_string(offset), flags_string(flags)},
                        out, buf);
  return status_to_errno(s, "pwrite", EROFS);
}

int ShPlugin::flush(Handle& h, std::uint32_t flags) {
  return status_to_errno(call({"flush", id_of(h), flags_string(flags)}), "flush", EIO);
}

int ShPlugin::trim(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) {
  return status_to_errno(call({"trim", id_of(h), std::to_string(count), std::to_string(offset), flags_string(flags)}),
                         "trim", EIO);
}

// Missing zero: ENOTSUP, so the host writes zeroes instead (or fails a fast zero).
int ShPlugin::zero(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) {
  return status_to_errno(call({"zero", id_of(h), std::to_string(count), std::to_string(offset), flags_string(flags)}),
                         "zero", ENOTSUP);
}

int ShPlugin::cache(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) {
  return status_to_errno(call({"cache", id_of(h), std::to_string(count), std::to_string(offset), flags_string(flags)}),
                         "cache", 0);
}

// Output: one extent per line, "OFFSET LENGTH TYPE".
int ShPlugin::extents(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags, ExtentSink& sink) {
  OutputSink out;
  const Status s =
      call({"extents", id_of(h), std::to_string(count), std::to_string(offset), flags_string(flags)}, out);
  if (int r = status_to_errno(s, "extents", EIO); r != 0) return r;
  std::string_view rest = out.text;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    const std::string_view line = strip_newline(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    const auto words = split_words(line);
    if (words.empty()) continue;
    std::string ignored;
    const auto ext_offset = words.size() >= 2 ? parse_size(words[0], ignored) : std::nullopt;
    const auto ext_length = words.size() >= 2 ? parse_size(words[1], ignored) : std::nullopt;
    const auto type = parse_type(words.size() >= 3 ? words[2] : std::string_view());
    if (!ext_offset || !ext_length || !type || words.size() > 3) {
      host().error("extents: cannot parse line '" + std::string(line) + "'");
      return EIO;
    }
    if (!sink.add(*ext_offset, *ext_length, *type)) break;
  }
  return 0;
}

}  // namespace nbdd::plugin::sh
