// Turns the plugin argument of the command line into a Plugin: a built-in by name
// (`memory`), or a shared object by path (`./libmy.so`, anything with '/' or ending in
// .so) that exports nbdd_plugin_api_version and nbdd_plugin_create (NBDD_REGISTER_PLUGIN).
// The returned Plugin keeps the shared object loaded for as long as it lives.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "plugins/plugin_api.hpp"

namespace nbdd::plugin {

// nullptr and a one-line message in `error` on failure (unknown name, dlopen failure,
// missing symbols, incompatible api_version).
std::unique_ptr<Plugin> load_plugin(std::string_view name_or_path, std::string& error);

}  // namespace nbdd::plugin
