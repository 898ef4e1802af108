// Finding, loading and checking nbdkit plugins, --dump-plugin, and the after_fork entry point.
#include "plugins/nbdkit/nbdkit_plugin_adaptor.hpp"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "plugins/nbdkit/exported_functions.hpp"
#include "plugins/nbdkit/filtered_plugin.hpp"
#include "plugins/nbdkit/nbdkit_plugin.hpp"

#ifndef NBDD_NBDKIT_PLUGINDIR
#define NBDD_NBDKIT_PLUGINDIR "/usr/lib/x86_64-linux-gnu/nbdkit/plugins"
#endif

namespace nbdd::plugin::nbdkit_abi {

std::atomic<NbdkitPlugin*>& active_plugin();  // nbdkit_plugin.cpp

namespace {

bool ascii_alnum(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// nbdkit's rule for a plugin's .name: ASCII alphanumerics and '-', starting alphanumeric.
const char* name_problem(const char* name) {
  if (name == nullptr) return "plugin must have a .name field";
  if (*name == '\0') return "plugin.name field must not be empty";
  if (!ascii_alnum(static_cast<unsigned char>(*name))) return "plugin.name must begin with an ASCII alphanumeric character";
  for (const char* c = name + 1; *c; ++c)
    if (!ascii_alnum(static_cast<unsigned char>(*c)) && *c != '-')
      return "plugin.name must contain only ASCII alphanumeric or dash characters";
  return nullptr;
}

}  // namespace

std::unique_ptr<Plugin> adopt_if_nbdkit_plugin(void* dl, const std::string& path, std::string& error) {
  using InitFn = nbdkit_plugin* (*)();
  auto init = reinterpret_cast<InitFn>(dlsym(dl, "plugin_init"));
  if (init == nullptr) return nullptr;  // not an nbdkit plugin: the caller's
  auto refuse = [&](const std::string& why) -> std::unique_ptr<Plugin> {
    error = "nbdkit plugin " + path + ": " + why;
    dlclose(dl);
    return nullptr;
  };
  force_exported_functions_linked();
  const nbdkit_plugin* declared = init();
  if (declared == nullptr) return refuse("plugin registration function failed");
  if (declared->_api_version < 0 || declared->_api_version > 2)
    return refuse("plugin is incompatible with this version of nbdkit (_api_version = " +
                  std::to_string(declared->_api_version) + ")");
  // An older plugin's struct is shorter: copy what it declares, the rest stays null. A newer
  // one's extra fields are not ours to call.
  nbdkit_plugin fields;
  std::memset(&fields, 0, sizeof fields);
  std::memcpy(&fields, declared, std::min<std::uint64_t>(sizeof fields, declared->_struct_size));
  if (const char* problem = name_problem(fields.name)) return refuse(problem);
  if (fields.open == nullptr) return refuse("plugin must have a .open callback");
  if (fields.get_size == nullptr) return refuse("plugin must have a .get_size callback");
  if (fields.pread == nullptr && fields._pread_v1 == nullptr) return refuse("plugin must have a .pread callback");
  // nbdkit loads plugins RTLD_GLOBAL: language plugins (python, perl...) load extension
  // modules that need the interpreter's symbols. Promote the caller's handle likewise.
  if (void* global = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD)) dlclose(global);
  return std::make_unique<NbdkitPlugin>(dl, path, fields);
}

std::unique_ptr<Plugin> load_nbdkit_plugin(const std::string& path, std::string& error) {
  void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (dl == nullptr) {
    const char* e = dlerror();
    error = "cannot load plugin " + path + ": " + (e ? e : "unknown dlopen error");
    return nullptr;
  }
  std::unique_ptr<Plugin> plugin = adopt_if_nbdkit_plugin(dl, path, error);
  if (!plugin && error.empty()) {
    error = "cannot load plugin " + path + ": not an nbdkit plugin (no plugin_init)";
    dlclose(dl);
  }
  return plugin;
}

std::string_view nbdkit_plugin_dir() { return NBDD_NBDKIT_PLUGINDIR; }

std::optional<std::string> find_nbdkit_plugin(std::string_view name) {
  if (name.empty() || name.size() > 200) return std::nullopt;
  for (char c : name)
    if (!ascii_alnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return std::nullopt;
  std::string path = std::string(nbdkit_plugin_dir()) + "/nbdkit-" + std::string(name) + "-plugin.so";
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return path;
}

int after_fork(std::string& error) {
  if (std::optional<int> r = run_filters_after_fork(error)) return *r;
  NbdkitPlugin* plugin = active_plugin().load();
  return plugin ? plugin->run_after_fork(error) : 0;
}

// --- --dump-plugin ----------------------------------------------------------------------

void NbdkitPlugin::load_for_dump() const {
  if (loaded_ || loaded_for_dump_) return;
  loaded_for_dump_ = true;
  if (p_.load) p_.load();
}

// dump_plugin() prints KEY=VALUE lines on stdout; catch them (through a temporary file, so
// a long dump cannot block) to hand them to the daemon, which prints them after its own.
std::string NbdkitPlugin::capture_dump_plugin() const {
  std::string text;
  std::fflush(stdout);
  FILE* tmp = std::tmpfile();
  const int saved = ::dup(STDOUT_FILENO);
  if (tmp == nullptr || saved < 0 || ::dup2(::fileno(tmp), STDOUT_FILENO) < 0) {
    if (tmp) std::fclose(tmp);
    if (saved >= 0) ::close(saved);
    p_.dump_plugin();  // cannot capture: let it print where it prints
    return text;
  }
  p_.dump_plugin();
  std::fflush(stdout);
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  std::rewind(tmp);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, tmp)) > 0) text.append(buf, n);
  std::fclose(tmp);
  return text;
}

std::vector<std::pair<std::string, std::string>> NbdkitPlugin::dump_fields() const {
  load_for_dump();
  std::vector<std::pair<std::string, std::string>> out;
  char* real = ::realpath(path_.c_str(), nullptr);
  out.emplace_back("path", real ? real : path_);
  std::free(real);
  if (p_.version) out.emplace_back("version", p_.version);
  out.emplace_back("api_version", std::to_string(p_._api_version));
  out.emplace_back("struct_size", std::to_string(p_._struct_size));
  static constexpr const char* model_names[] = {"serialize_connections", "serialize_all_requests",
                                                "serialize_requests", "parallel"};
  const int max_model = p_._thread_model < 0 ? 0 : (p_._thread_model > 3 ? 3 : p_._thread_model);
  out.emplace_back("max_thread_model", model_names[max_model]);
  out.emplace_back("errno_is_preserved", p_.errno_is_preserved ? "1" : "0");
  auto has = [&](const char* field, bool present) {
    if (present) out.emplace_back(std::string("has_") + field, "1");
  };
  has("longname", p_.longname), has("description", p_.description), has("load", p_.load);
  has("unload", p_.unload), has("dump_plugin", p_.dump_plugin), has("config", p_.config);
  has("config_complete", p_.config_complete), has("config_help", p_.config_help);
  has("thread_model", p_.thread_model), has("get_ready", p_.get_ready), has("after_fork", p_.after_fork);
  has("cleanup", p_.cleanup), has("preconnect", p_.preconnect), has("list_exports", p_.list_exports);
  has("default_export", p_.default_export), has("open", p_.open), has("close", p_.close);
  has("export_description", p_.export_description), has("get_size", p_.get_size);
  has("block_size", p_.block_size), has("can_write", p_.can_write), has("can_flush", p_.can_flush);
  has("is_rotational", p_.is_rotational), has("can_trim", p_.can_trim), has("can_zero", p_.can_zero);
  has("can_fast_zero", p_.can_fast_zero), has("can_extents", p_.can_extents), has("can_fua", p_.can_fua);
  has("can_multi_conn", p_.can_multi_conn), has("can_cache", p_.can_cache), has("pread", p_.pread);
  has("pwrite", p_.pwrite), has("flush", p_.flush), has("trim", p_.trim), has("zero", p_.zero);
  has("extents", p_.extents), has("cache", p_.cache), has("_pread_v1", p_._pread_v1);
  has("_pwrite_v1", p_._pwrite_v1), has("_flush_v1", p_._flush_v1), has("_trim_v1", p_._trim_v1);
  has("_zero_v1", p_._zero_v1);
  if (p_.dump_plugin) {
    const std::string text = capture_dump_plugin();
    std::size_t start = 0;
    while (start < text.size()) {
      std::size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      const std::string line = text.substr(start, end - start);
      const std::size_t eq = line.find('=');
      if (!line.empty()) {
        if (eq == std::string::npos) out.emplace_back(line, "");
        else out.emplace_back(line.substr(0, eq), line.substr(eq + 1));
      }
      start = end + 1;
    }
  }
  return out;
}

}  // namespace nbdd::plugin::nbdkit_abi
