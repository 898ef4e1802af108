// The filter chain as an nbdd Plugin: nbdkit's server-side filter lifecycle (server/
// filters.c, server/main.c) in nbdd's Plugin calls. Orders as nbdkit's: the plugin loads
// first, then the filters from the innermost out; config goes to the outermost filter and
// down through next_config; get_ready and after_fork run inside out; cleanup outside in,
// then the plugin unloads, then the filters from the innermost out. Per connection, open
// walks the chain through the filters' next_open, prepare runs inside out, finalize and
// close outside in.
#include "plugins/nbdkit/filtered_plugin.hpp"

#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "plugins/nbdkit/abi_lists.hpp"
#include "plugins/nbdkit/abi_state.hpp"
#include "plugins/nbdkit/connection_table.hpp"
#include "plugins/nbdkit/exported_functions.hpp"
#include "plugins/nbdkit/filter_layers.hpp"
#include "plugins/nbdkit/nbdkit_plugin.hpp"

#ifndef NBDD_NBDKIT_FILTERDIR
#define NBDD_NBDKIT_FILTERDIR "/usr/lib/x86_64-linux-gnu/nbdkit/filters"
#endif

namespace nbdd::plugin::nbdkit_abi {

FilterChain::FilterChain(std::vector<LoadedFilter> filters, std::unique_ptr<Plugin> plugin)
    : filters_(std::move(filters)), plugin_(std::move(plugin)), backends_(filters_.size() + 1) {
  for (std::size_t i = 0; i < backends_.size(); ++i) backends_[i] = nbdkit_backend{this, i};
}

FilterChain::~FilterChain() {
  plugin_.reset();  // nbdkit frees the plugin before the filters
  for (auto it = filters_.rbegin(); it != filters_.rend(); ++it) dlclose(it->dl);
}

namespace {

class FilteredPlugin;
// The filtered plugin that is loaded now (nbdd hosts one per process, as nbdkit), for
// after_fork().
std::atomic<FilteredPlugin*>& active_filtered_plugin() {
  static std::atomic<FilteredPlugin*> plugin{nullptr};
  return plugin;
}

ThreadModel thread_model_of(int nbdkit_model) {
  return static_cast<ThreadModel>(std::clamp(nbdkit_model, 0, 3));  // same order as nbdkit's
}

std::uint32_t nbdkit_flags(std::uint32_t flags) {
  std::uint32_t out = 0;
  if (flags & flag::fua) out |= NBDKIT_FLAG_FUA;
  if (flags & flag::may_trim) out |= NBDKIT_FLAG_MAY_TRIM;
  if (flags & flag::fast_zero) out |= NBDKIT_FLAG_FAST_ZERO;
  if (flags & flag::req_one) out |= NBDKIT_FLAG_REQ_ONE;
  return out;
}

// The errno a failed (-1/NULL) control-path call of the chain stands for.
int chain_error() {
  if (int e = layer_errno(); e > 0) return e;
  if (int e = thread_set_error(); e > 0) return e;
  return EIO;
}

// Every call starts with no error recorded (nbdkit clears its thread-local error per request).
void clear_errors() {
  layer_errno() = 0;
  thread_set_error() = 0;
}

struct FilteredHandle final : Handle {
  nbdkit_context* top = nullptr;
  std::string export_name;  // what nbdkit_export_name() answers in this connection's calls
};

class FilteredPlugin final : public Plugin {
 public:
  explicit FilteredPlugin(std::unique_ptr<FilterChain> chain)
      : chain_(std::move(chain)), thread_model_(chain_->plugin().thread_model()) {}
  ~FilteredPlugin() override {
    FilteredPlugin* self = this;
    active_filtered_plugin().compare_exchange_strong(self, nullptr);
  }

  // nbdkit names the plugin, not the filters (plugin_name passes down).
  std::string_view name() const override { return chain_->plugin().name(); }
  std::string_view description() const override { return chain_->plugin().description(); }
  std::string_view magic_config_key() const override { return chain_->plugin().magic_config_key(); }
  std::string config_help() const override {
    std::string text = chain_->plugin().config_help();
    for (std::size_t i = 0; i < chain_->filter_count(); ++i) {
      const nbdkit_filter& f = chain_->filter(i).f;
      if (!text.empty() && text.back() != '\n') text += '\n';
      text += std::string("filter: ") + f.name + (f.longname ? std::string(" (") + f.longname + ")" : "") + "\n";
      if (f.config_help) text += f.config_help;
    }
    return text;
  }
  std::vector<std::pair<std::string, std::string>> dump_fields() const override {
    return chain_->plugin().dump_fields();
  }
  ThreadModel thread_model() const override { return thread_model_; }

  // --- server lifecycle -----------------------------------------------------------
  int load(Host& host) override {
    Plugin::load(host);
    set_active_host(&host);
    set_configured(false);
    active_filtered_plugin().store(this);
    loaded_ = true;  // unload() owes the plugin its unload even if its load failed
    if (int r = chain_->plugin().load(host); r != 0) return r;
    set_active_host(&host);
    for (std::size_t i = chain_->filter_count(); i-- > 0;) {
      LoadedFilter& lf = chain_->filter(i);
      if (lf.f.load) lf.f.load();
      lf.loaded = true;
    }
    return 0;
  }

  int config(std::string_view key, std::string_view value) override {
    clear_errors();
    // Filters and plugins keep the pointers (nbdkit passes argv's own strings).
    const char* k = chain_->keep(key);
    const char* v = chain_->keep(value);
    return layer_config(chain_->top(), k, v) == 0 ? 0 : chain_error();
  }

  int config_complete() override {
    clear_errors();
    if (layer_config_complete(chain_->top()) != 0) return chain_error();
    set_configured(true);
    // nbdkit's filter_thread_model: the strictest of the plugin's and every filter's.
    int model = static_cast<int>(chain_->plugin().thread_model());
    for (std::size_t i = chain_->filter_count(); i-- > 0;) {
      const nbdkit_filter& f = chain_->filter(i).f;
      if (f.thread_model == nullptr) continue;
      const int m = f.thread_model();
      if (m == -1) return chain_error();
      model = std::min(model, m);
    }
    thread_model_ = thread_model_of(model);
    return 0;
  }

  int get_ready() override {
    clear_errors();
    if (int r = chain_->plugin().get_ready(); r != 0) return r;
    for (std::size_t i = chain_->filter_count(); i-- > 0;) {
      const nbdkit_filter& f = chain_->filter(i).f;
      if (f.get_ready && f.get_ready(static_cast<int>(thread_model_)) == -1) return chain_error();
    }
    ready_ = true;
    return 0;
  }

  // Once: the plugin's after_fork, then the filters' from the innermost out.
  int run_after_fork(std::string& error) {
    std::lock_guard lock(after_fork_mutex_);
    if (!after_fork_done_) {
      after_fork_done_ = true;
      clear_errors();
      if (auto* hosted = dynamic_cast<NbdkitPlugin*>(&chain_->plugin()))
        after_fork_result_ = hosted->run_after_fork(after_fork_error_);
      for (std::size_t i = chain_->filter_count(); after_fork_result_ == 0 && i-- > 0;) {
        const nbdkit_filter& f = chain_->filter(i).f;
        if (f.after_fork && f.after_fork(chain_->backend(i + 1)) == -1) {
          after_fork_result_ = chain_error();
          after_fork_error_ = std::string(f.name) + ": after_fork failed";
        }
      }
    }
    if (after_fork_result_ != 0) error = after_fork_error_;
    return after_fork_result_;
  }

  void unload() override {
    if (!loaded_ || unloaded_) return;
    unloaded_ = true;
    if (ready_)
      for (std::size_t i = 0; i < chain_->filter_count(); ++i) {
        const nbdkit_filter& f = chain_->filter(i).f;
        if (f.cleanup) f.cleanup(chain_->backend(i + 1));
      }
    chain_->plugin().unload();
    set_active_host(&host());  // a hosted plugin's unload cleared it; the filters still talk
    for (std::size_t i = chain_->filter_count(); i-- > 0;) {
      LoadedFilter& lf = chain_->filter(i);
      if (lf.loaded && lf.f.unload) lf.f.unload();
      lf.loaded = false;
    }
    free_all_interns();
    FilteredPlugin* self = this;
    active_filtered_plugin().compare_exchange_strong(self, nullptr);
    set_active_host(nullptr);
  }

  // --- per client, before open ----------------------------------------------------
  int preconnect(bool readonly) override {
    std::string ignored;
    if (int r = run_after_fork(ignored); r != 0) {
      host().error("after_fork failed: refusing clients");
      return r;
    }
    clear_errors();
    return layer_preconnect(chain_->top(), readonly) == 0 ? 0 : chain_error();
  }

  int list_exports(bool readonly, ExportList& out) override {
    clear_errors();
    nbdkit_exports exports;
    if (layer_list_exports(chain_->top(), readonly, &exports, /*resolve_default=*/false) != 0) return chain_error();
    for (const nbdkit_exports::Entry& e : exports.list)
      if (!out.add(e.name.get(), e.description ? e.description.get() : "")) break;
    if (exports.use_default) out.use_default();
    return 0;
  }

  std::optional<std::string> default_export(bool readonly) override {
    clear_errors();
    const char* name = layer_default_export(chain_->top(), readonly);
    if (name == nullptr) return std::nullopt;
    return std::string(name);
  }

  // --- connection -----------------------------------------------------------------
  int open(bool readonly, std::string_view export_name, std::unique_ptr<Handle>& out) override {
    auto handle = std::make_unique<FilteredHandle>();
    handle->export_name = std::string(export_name);
    ScopedExportName name(handle->export_name.c_str());
    clear_errors();
    handle->top = layer_open(chain_->top(), readonly, handle->export_name.c_str());
    if (handle->top == nullptr) return chain_error();
    if (layer_prepare(handle->top) != 0) {
      const int err = chain_error();
      layer_finalize(handle->top);
      layer_close(handle->top);
      return err;
    }
    out = std::move(handle);
    return 0;
  }

  void close(Handle& h) override {
    FilteredHandle& fh = static_cast<FilteredHandle&>(h);
    ScopedExportName name(fh.export_name.c_str());
    clear_errors();
    layer_finalize(fh.top);  // a failure is nbdkit's "permanent data loss": nothing to do now
    layer_close(fh.top);
    fh.top = nullptr;
  }

  std::string export_description(Handle& h) override {
    Scope s(h);
    const char* text = s.ops().export_description(s.next());
    return text ? std::string(text) : std::string();
  }

  int get_size(Handle& h, std::uint64_t& size) override {
    Scope s(h);
    const std::int64_t r = s.ops().get_size(s.next());
    if (r < 0) return chain_error();
    size = static_cast<std::uint64_t>(r);
    return 0;
  }

  int block_size(Handle& h, std::uint32_t& minimum, std::uint32_t& preferred, std::uint32_t& maximum) override {
    Scope s(h);
    minimum = preferred = maximum = 0;
    return s.ops().block_size(s.next(), &minimum, &preferred, &maximum) == 0 ? 0 : chain_error();
  }

  int can_write(Handle& h) override { return answer(h, &nbdkit_next_ops::can_write); }
  int can_flush(Handle& h) override { return answer(h, &nbdkit_next_ops::can_flush); }
  int can_trim(Handle& h) override { return answer(h, &nbdkit_next_ops::can_trim); }
  int is_rotational(Handle& h) override { return answer(h, &nbdkit_next_ops::is_rotational); }
  int can_multi_conn(Handle& h) override { return answer(h, &nbdkit_next_ops::can_multi_conn); }
  int can_extents(Handle& h) override { return answer(h, &nbdkit_next_ops::can_extents); }
  int can_fast_zero(Handle& h) override { return answer(h, &nbdkit_next_ops::can_fast_zero); }
  // The chain emulates zero, FUA and cache itself, layer by layer, as nbdkit does: the host
  // just passes the requests in, and offers no WRITE_ZEROES for nbdkit's ZERO_NONE.
  int can_zero(Handle& h) override {
    const int r = answer(h, &nbdkit_next_ops::can_zero);
    return r == 0 ? zero_none : r;
  }
  int can_fua(Handle& h) override { return mode(h, &nbdkit_next_ops::can_fua) ? fua_native : fua_none; }
  int can_cache(Handle& h) override { return mode(h, &nbdkit_next_ops::can_cache) ? cache_native : cache_none; }

  int pread(Handle& h, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t flags) override {
    (void)flags;
    if (buf.size() > UINT32_MAX) return EINVAL;
    Scope s(h);
    int err = 0;
    const int r = s.ops().pread(s.next(), buf.data(), static_cast<std::uint32_t>(buf.size()), offset, 0, &err);
    return data_result(r, err);
  }
  int pwrite(Handle& h, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t flags) override {
    if (buf.size() > UINT32_MAX) return EINVAL;
    Scope s(h);
    int err = 0;
    const int r = s.ops().pwrite(s.next(), buf.data(), static_cast<std::uint32_t>(buf.size()), offset,
                                 nbdkit_flags(flags & flag::fua), &err);
    return data_result(r, err);
  }
  int flush(Handle& h, std::uint32_t flags) override {
    (void)flags;
    Scope s(h);
    int err = 0;
    return data_result(s.ops().flush(s.next(), 0, &err), err);
  }
  int trim(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override {
    if (count > UINT32_MAX) return EINVAL;
    Scope s(h);
    int err = 0;
    const int r = s.ops().trim(s.next(), static_cast<std::uint32_t>(count), offset, nbdkit_flags(flags & flag::fua), &err);
    return data_result(r, err);
  }
  int zero(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override {
    if (count > UINT32_MAX) return EINVAL;
    Scope s(h);
    int err = 0;
    const std::uint32_t f = nbdkit_flags(flags & (flag::fua | flag::may_trim | flag::fast_zero));
    return data_result(s.ops().zero(s.next(), static_cast<std::uint32_t>(count), offset, f, &err), err);
  }
  int extents(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags, ExtentSink& sink) override {
    if (count > UINT32_MAX) count = UINT32_MAX;  // fewer extents than asked is allowed
    Scope s(h);
    thread_local nbdkit_extents list;  // reused: keeps its capacity
    list.reset(offset, offset + count);
    int err = 0;
    const int r = s.ops().extents(s.next(), static_cast<std::uint32_t>(count), offset,
                                  nbdkit_flags(flags & flag::req_one), &list, &err);
    if (r != 0) return data_result(r, err);
    for (const nbdkit_extent& e : list.list)
      if (!sink.add(e.offset, e.length, e.type)) break;
    return 0;
  }
  int cache(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override {
    (void)flags;
    if (count > UINT32_MAX) return EINVAL;
    Scope s(h);
    int err = 0;
    return data_result(s.ops().cache(s.next(), static_cast<std::uint32_t>(count), offset, 0, &err), err);
  }

 private:
  // One call on a connection's top context: the export name nbdkit_export_name answers,
  // errors cleared.
  class Scope {
   public:
    explicit Scope(Handle& h)
        : handle_(static_cast<FilteredHandle&>(h)), name_(handle_.export_name.c_str()) {
      clear_errors();
    }
    nbdkit_next* next() const { return as_next(handle_.top); }
    const nbdkit_next_ops& ops() const { return handle_.top->next; }

   private:
    FilteredHandle& handle_;
    ScopedExportName name_;
  };

  // A can_* that answers 1/0 (or -errno, nbdd's convention).
  static int answer(Handle& h, int (*nbdkit_next_ops::*callback)(nbdkit_next*)) {
    Scope s(h);
    const int r = (s.ops().*callback)(s.next());
    if (r < 0) return -chain_error();
    return r > 0 ? 1 : 0;
  }
  // A can_* that answers a mode (NONE 0, EMULATE 1, NATIVE 2): 1 when not NONE.
  static int mode(Handle& h, int (*nbdkit_next_ops::*callback)(nbdkit_next*)) { return answer(h, callback); }

  static int data_result(int r, int err) {
    if (r != -1) return 0;
    return err > 0 ? err : EIO;
  }

  std::unique_ptr<FilterChain> chain_;
  ThreadModel thread_model_;
  bool loaded_ = false;    // load() ran: unload() owed
  bool unloaded_ = false;
  bool ready_ = false;     // get_ready() succeeded: the filters' cleanup owed
  std::mutex after_fork_mutex_;
  bool after_fork_done_ = false;
  int after_fork_result_ = 0;
  std::string after_fork_error_;
};

bool plain_name(std::string_view name) {
  if (name.empty() || name.size() > 200) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
  });
}

bool ascii_alnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// nbdkit's rule for a .name: ASCII alphanumerics and '-', starting alphanumeric.
bool valid_name(const char* name) {
  if (name == nullptr || !ascii_alnum(*name)) return false;
  for (const char* c = name + 1; *c; ++c)
    if (!ascii_alnum(*c) && *c != '-') return false;
  return true;
}

bool load_filter(const std::string& name_or_path, LoadedFilter& out, std::string& error) {
  const bool is_path = name_or_path.find('/') != std::string::npos ||
                       (name_or_path.size() > 3 && name_or_path.ends_with(".so"));
  std::string path = name_or_path;
  if (!is_path) {
    auto found = find_nbdkit_filter(name_or_path);
    if (!found) {
      error = "--filter=" + name_or_path + ": no such filter (looked for nbdkit-" + name_or_path + "-filter.so in " +
              std::string(nbdkit_filter_dir()) + "; or give the path of a .so)";
      return false;
    }
    path = *found;
  }
  force_exported_functions_linked();
  // RTLD_GLOBAL as nbdkit: a filter may load modules that need its symbols.
  void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (dl == nullptr) {
    const char* e = dlerror();
    error = "cannot load filter " + path + ": " + (e ? e : "unknown dlopen error");
    return false;
  }
  auto refuse = [&](const std::string& why) {
    error = "nbdkit filter " + path + ": " + why;
    dlclose(dl);
    return false;
  };
  using InitFn = nbdkit_filter* (*)();
  auto init = reinterpret_cast<InitFn>(dlsym(dl, "filter_init"));
  if (init == nullptr) return refuse("not an nbdkit filter (no filter_init)");
  const nbdkit_filter* declared = init();
  if (declared == nullptr) return refuse("filter registration function failed");
  // nbdkit guarantees no filter ABI across versions: only _api_version and _version are
  // stable, and they must match the headers this nbdd was built with.
  if (declared->_api_version != NBDKIT_FILTER_API_VERSION)
    return refuse("filter is incompatible with this version of nbdkit (_api_version = " +
                  std::to_string(declared->_api_version) + ", need " + std::to_string(NBDKIT_FILTER_API_VERSION) + ")");
  if (declared->_version == nullptr || std::strcmp(declared->_version, NBDKIT_VERSION_STRING) != 0)
    return refuse(std::string("filter is incompatible with this version of nbdkit (_version = ") +
                  (declared->_version ? declared->_version : "<null>") + ", need " + NBDKIT_VERSION_STRING + ")");
  if (!valid_name(declared->name))
    return refuse("filter.name must be non-empty ASCII alphanumerics or dashes, starting alphanumeric");
  out.dl = dl;
  out.path = path;
  out.f = *declared;
  return true;
}

}  // namespace

std::string_view nbdkit_filter_dir() { return NBDD_NBDKIT_FILTERDIR; }

std::optional<std::string> find_nbdkit_filter(std::string_view name) {
  if (!plain_name(name)) return std::nullopt;
  std::string path = std::string(nbdkit_filter_dir()) + "/nbdkit-" + std::string(name) + "-filter.so";
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return path;
}

std::unique_ptr<Plugin> wrap_with_filters(std::unique_ptr<Plugin> plugin, const std::vector<std::string>& filters,
                                          std::string& error) {
  if (filters.empty()) return plugin;
  std::vector<LoadedFilter> loaded;
  loaded.reserve(filters.size());
  for (const std::string& name : filters) {
    LoadedFilter f;
    if (!load_filter(name, f, error)) {
      for (LoadedFilter& done : loaded) dlclose(done.dl);
      return nullptr;
    }
    loaded.push_back(std::move(f));
  }
  auto chain = std::make_unique<FilterChain>(std::move(loaded), std::move(plugin));
  return std::make_unique<FilteredPlugin>(std::move(chain));
}

std::optional<int> run_filters_after_fork(std::string& error) {
  FilteredPlugin* p = active_filtered_plugin().load();
  if (p == nullptr) return std::nullopt;
  return p->run_after_fork(error);
}

}  // namespace nbdd::plugin::nbdkit_abi
