// The built-in plugins by name, as nbdkit spells them (`nbdd memory 1G`).
#pragma once
#include <memory>
#include <span>
#include <string_view>

#include "plugins/plugin_api.hpp"

namespace nbdd::plugin {

// nullptr when `name` is not a built-in.
std::unique_ptr<Plugin> make_builtin_plugin(std::string_view name);

// Every built-in name, for --help and error messages.
std::span<const std::string_view> builtin_plugin_names();

}  // namespace nbdd::plugin
