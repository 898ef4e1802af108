#include "plugins/null/null_plugin.hpp"

#include "plugins/parse_size.hpp"

namespace nbdd::plugin::null {

int NullPlugin::config(std::string_view key, std::string_view value) {
  return config_size_only(host(), "null", key, value, size_bytes_);
}

}  // namespace nbdd::plugin::null
