#include "plugins/null/null_plugin.hpp"

#include <cerrno>

#include "plugins/parse_size.hpp"

namespace nbdd::plugin::null {

int NullPlugin::config(std::string_view key, std::string_view value) {
  if (key != "size") {
    host().error("unknown parameter '" + std::string(key) + "' (null takes size=SIZE)");
    return EINVAL;
  }
  std::string error;
  const auto size = parse_size(value, error);
  if (!size) {
    host().error(error);
    return EINVAL;
  }
  size_bytes_ = *size;
  return 0;
}

}  // namespace nbdd::plugin::null
