// Hosting nbdkit's own C plugins (nbdkit-*-plugin.so, nbdkit-plugin(3), API version 1 or 2,
// every field of nbdkit 1.32's struct nbdkit_plugin) as an nbdd::plugin::Plugin, so the
// plugin host, the core and the daemon treat them exactly like nbdd's own plugins: same
// lifecycle, same thread-model gates, same shutdown()/disconnect(force) paths. The nbdkit_*
// functions such a plugin calls are defined in this directory (abi_*.cpp); the nbdd
// executable exports them (exported-symbols.list).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "plugins/plugin_api.hpp"

namespace nbdd::plugin::nbdkit_abi {

// If the shared object `dl` (dlopen'ed by the caller) is an nbdkit plugin (it exports
// plugin_init), takes ownership of `dl` and returns the adaptor, or nullptr with `error` set
// when the plugin is unusable (dl is then closed). Returns nullptr with `error` empty, and
// leaves `dl` to the caller, when it is not an nbdkit plugin.
std::unique_ptr<Plugin> adopt_if_nbdkit_plugin(void* dl, const std::string& path, std::string& error);

// dlopen + adopt_if_nbdkit_plugin: nullptr and a one-line error unless `path` is a loadable
// nbdkit plugin.
std::unique_ptr<Plugin> load_nbdkit_plugin(const std::string& path, std::string& error);

// nbdkit's plugin directory (`pkg-config --variable=plugindir nbdkit` at build time).
std::string_view nbdkit_plugin_dir();
// DIR/nbdkit-NAME-plugin.so when NAME is a plain plugin name (letters, digits, '-', '_')
// and that file exists.
std::optional<std::string> find_nbdkit_plugin(std::string_view name);

// Runs the loaded nbdkit plugin's after_fork callback (and its filters', see
// filtered_plugin.hpp), once: the daemon calls it after it
// forked into the background (or decided not to), before accepting, as nbdkit does. If the
// daemon never calls it, the first connection's preconnect does. 0, or an errno with a
// message in `error`. Without a loaded nbdkit plugin: 0.
int after_fork(std::string& error);

}  // namespace nbdd::plugin::nbdkit_abi
