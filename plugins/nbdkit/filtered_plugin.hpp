// nbdkit filters (`--filter=NAME`, nbdkit-filter(3), nbdkit 1.32's filter ABI) in front of
// any nbdd plugin — built-in, loadable or nbdkit-hosted. The filters and the plugin together
// are one nbdd::plugin::Plugin, so the plugin host, the core and the daemon see nothing new:
// the same lifecycle, thread-model gates, shutdown()/disconnect(force) paths. A filter's
// nbdkit_shutdown/nbdkit_disconnect reach the Host this plugin was loaded with.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plugins/plugin_api.hpp"

namespace nbdd::plugin::nbdkit_abi {

// nbdkit's filter directory (`pkg-config --variable=filterdir nbdkit` at build time).
std::string_view nbdkit_filter_dir();
// DIR/nbdkit-NAME-filter.so when NAME is a plain name (letters, digits, '-', '_') and that
// file exists.
std::optional<std::string> find_nbdkit_filter(std::string_view name);

// Wraps `plugin` (not yet loaded) with the filters named in `filters`, nbdkit's order: the
// first is the outermost, the one the client talks to. Each is a name (found in the filter
// directory) or a path (containing '/' or ending in .so). Returns the plugin unchanged when
// `filters` is empty; nullptr with a one-line `error` when a filter cannot be loaded or was
// built for another nbdkit (nbdkit's rule: API version 6 and this very nbdkit version).
std::unique_ptr<Plugin> wrap_with_filters(std::unique_ptr<Plugin> plugin, const std::vector<std::string>& filters,
                                          std::string& error);

// The after_fork of the filtered plugin that is loaded now (the plugin's, then the filters'
// from the innermost out, once), or nullopt when no filters are loaded.
std::optional<int> run_filters_after_fork(std::string& error);

}  // namespace nbdd::plugin::nbdkit_abi
