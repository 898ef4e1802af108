// Size arguments as nbdkit writes them (nbdkit_parse_size(3)): "512", "1K", "64M", "1G",
// "1T", "1E", "2s" (512-byte sectors), "100b" (bytes); K..E are powers of 1024, also
// spelled "KiB"/"KB". Case-insensitive suffix. The result fits in int64_t, as nbdkit's.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nbdd::plugin {

// nullopt and a message in `error` (e.g. "size: '12Q': unknown suffix") on failure.
std::optional<std::uint64_t> parse_size(std::string_view text, std::string& error);

class Host;

// config() for plugins whose one parameter is size=SIZE (memory, null, pattern): parses
// `value` into `out`, or attaches the reason with host.error() and returns EINVAL.
int config_size_only(Host& host, std::string_view plugin_name, std::string_view key, std::string_view value,
                     std::uint64_t& out);

// Unsigned decimal integer without suffix (for sh extents output, counts...).
std::optional<std::uint64_t> parse_u64(std::string_view text);

}  // namespace nbdd::plugin
