#include "plugins/loader.hpp"

#include <dlfcn.h>

#include "plugins/loaded_plugin.hpp"
#include "plugins/nbdkit/nbdkit_plugin_adaptor.hpp"
#include "plugins/registry.hpp"

namespace nbdd::plugin {

LoadedPlugin::~LoadedPlugin() {
  delete inner_;  // its code lives in the shared object: destroy before unmapping
  dlclose(dl_handle_);
}

namespace {

bool looks_like_path(std::string_view s) {
  return s.find('/') != std::string_view::npos || (s.size() > 3 && s.substr(s.size() - 3) == ".so");
}

std::string dl_error() {
  const char* e = dlerror();
  return e ? e : "unknown dlopen error";
}

std::unique_ptr<Plugin> load_shared_object(const std::string& path, std::string& error) {
  void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    error = "cannot load plugin " + path + ": " + dl_error();
    return nullptr;
  }
  // An nbdkit plugin (exports plugin_init): hosted through nbdkit's C ABI. The adaptor takes
  // the handle (or closes it and sets `error` when the plugin is unusable).
  if (auto nbdkit = nbdkit_abi::adopt_if_nbdkit_plugin(dl, path, error)) return nbdkit;
  if (!error.empty()) return nullptr;

  const auto* version = static_cast<const int*>(dlsym(dl, "nbdd_plugin_api_version"));
  using CreateFn = Plugin* (*)();
  auto create = reinterpret_cast<CreateFn>(dlsym(dl, "nbdd_plugin_create"));
  if (!version || !create) {
    error = "plugin " + path + " is not an nbdd plugin (missing nbdd_plugin_api_version or nbdd_plugin_create;"
            " use NBDD_REGISTER_PLUGIN)";
    dlclose(dl);
    return nullptr;
  }
  if (*version != api_version) {
    error = "plugin " + path + " was built for nbdd plugin API version " + std::to_string(*version) +
            ", this nbdd provides version " + std::to_string(api_version) + "; rebuild it";
    dlclose(dl);
    return nullptr;
  }
  Plugin* inner = create();
  if (!inner) {
    error = "plugin " + path + ": nbdd_plugin_create returned null";
    dlclose(dl);
    return nullptr;
  }
  return std::make_unique<LoadedPlugin>(dl, inner);
}

}  // namespace

std::unique_ptr<Plugin> load_plugin(std::string_view name_or_path, std::string& error) {
  if (looks_like_path(name_or_path)) return load_shared_object(std::string(name_or_path), error);
  if (auto plugin = make_builtin_plugin(name_or_path)) return plugin;
  // nbdkit's plugins by name, as nbdkit finds them: PLUGINDIR/nbdkit-NAME-plugin.so.
  if (auto path = nbdkit_abi::find_nbdkit_plugin(name_or_path)) return load_shared_object(*path, error);
  error = "unknown plugin '" + std::string(name_or_path) + "' (built-in:";
  for (auto n : builtin_plugin_names()) error += " " + std::string(n);
  error += "; nbdkit's plugins in " + std::string(nbdkit_abi::nbdkit_plugin_dir()) + "; or give the path of a .so)";
  return nullptr;
}

}  // namespace nbdd::plugin
