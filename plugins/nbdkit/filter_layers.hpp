// The layers of an nbdkit filter chain and the objects nbdkit's filter ABI hands out
// (nbdkit-filter(3)): one nbdkit_backend per layer (every filter, then the plugin at the
// bottom), and one nbdkit_context per opened layer per connection. A filter sees a context
// as `nbdkit_next *` (that is `struct nbdkit_next_ops *`) and calls `next->pread(next, ...)`,
// so the context starts with the next_ops table. The layer functions below are nbdkit's
// backend_* rules (server/backend.c): per-context caching of get_size, block_size and the
// can_* answers, can_trim/can_zero/can_fua only when writable, zero, cache and extents
// emulated when the layer says so. Internal to plugins/nbdkit.
#pragma once
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "plugins/nbdkit/nbdkit_headers.hpp"
#include "plugins/plugin_api.hpp"

namespace nbdd::plugin::nbdkit_abi {
class FilterChain;
}

// One layer of the chain. Filters only ever pass it back to nbdkit functions.
struct nbdkit_backend {
  nbdd::plugin::nbdkit_abi::FilterChain* chain = nullptr;
  std::size_t index = 0;  // 0: the outermost filter; chain->filter_count(): the plugin
};

// One open of one layer (nbdkit's struct context). Standard layout, `next` first: a filter's
// nbdkit_next pointer is the address of this object.
struct nbdkit_context {
  nbdkit_next_ops next;
  nbdkit_backend* backend;
  void* filter_handle;                  // a filter layer: what its .open returned
  nbdd::plugin::Handle* plugin_handle;  // the plugin layer: its handle (owned)
  nbdkit_context* c_next;               // a filter layer: the context below (or null)
  bool connected;                       // prepared (nbdkit's HANDLE_CONNECTED)
  bool failed;                          // finalize failed (nbdkit's HANDLE_FAILED)
  // nbdkit's per-context caches (-1: not asked yet). Atomic: a filter may ask from any of
  // the connection's request threads; the answer is the same whoever stores it.
  std::atomic<std::int64_t> size;
  std::atomic<std::int64_t> block_min, block_preferred, block_max;
  std::atomic<int> can_write, can_flush, is_rotational, can_trim, can_zero, can_fast_zero,
      can_extents, can_fua, can_multi_conn, can_cache;
};
static_assert(std::is_standard_layout_v<nbdkit_context>, "filters cast nbdkit_next* to this object");

namespace nbdd::plugin::nbdkit_abi {

// One loaded nbdkit filter: its shared object and its struct (copied, as nbdkit does).
struct LoadedFilter {
  void* dl = nullptr;
  std::string path;
  nbdkit_filter f{};
  bool loaded = false;  // .load ran: .unload owed
};

// The filters and the plugin below them, and everything the ABI needs to walk the chain.
class FilterChain {
 public:
  FilterChain(std::vector<LoadedFilter> filters, std::unique_ptr<Plugin> plugin);
  ~FilterChain();  // dlcloses the filters (after the plugin is gone)
  FilterChain(const FilterChain&) = delete;
  FilterChain& operator=(const FilterChain&) = delete;

  std::size_t filter_count() const { return filters_.size(); }
  LoadedFilter& filter(std::size_t i) { return filters_[i]; }
  Plugin& plugin() { return *plugin_; }
  nbdkit_backend* backend(std::size_t index) { return &backends_[index]; }
  nbdkit_backend* top() { return &backends_[0]; }
  bool is_plugin(const nbdkit_backend* b) const { return b->index == filters_.size(); }
  // The filter struct of a filter layer.
  const nbdkit_filter& filter_of(const nbdkit_backend* b) const { return filters_[b->index].f; }
  nbdkit_backend* below(const nbdkit_backend* b) { return &backends_[b->index + 1]; }

  // Keeps a configuration string for as long as the chain lives (filters keep the pointers).
  const char* keep(std::string_view text) { return kept_strings_.emplace_back(text).c_str(); }

 private:
  std::vector<LoadedFilter> filters_;
  std::unique_ptr<Plugin> plugin_;
  std::vector<nbdkit_backend> backends_;  // filter_count() + 1, never resized
  std::deque<std::string> kept_strings_;
};

// The errno of the last failing layer call on this thread, for callers that only see -1 or
// NULL (control paths: open, can_*, get_size...). 0: none recorded, report EIO.
int& layer_errno();
// -1 with layer_errno() set to `err` (a positive errno).
int fail_layer(int err);

// nbdkit's backend_* functions, one layer at a time. The data functions return 0 or -1 with
// *err set; the others -1 (NULL) on failure.
int layer_config(nbdkit_backend* b, const char* key, const char* value);
int layer_config_complete(nbdkit_backend* b);
int layer_preconnect(nbdkit_backend* b, int readonly);
// `resolve_default`: add the default export's name when the layer asked for it (what nbdkit
// does for every layer below the top; the top leaves it to the host).
int layer_list_exports(nbdkit_backend* b, int readonly, nbdkit_exports* exports, bool resolve_default = true);
const char* layer_default_export(nbdkit_backend* b, int readonly);

// Opens layer `b` and, through the filters' next_open, the layers below it. NULL on failure
// (nothing left open).
nbdkit_context* layer_open(nbdkit_backend* b, int readonly, const char* export_name);
int layer_prepare(nbdkit_context* c);   // inner layers first
int layer_finalize(nbdkit_context* c);  // outer layers first
void layer_close(nbdkit_context* c);    // outer layers first; frees the contexts

inline nbdkit_next* as_next(nbdkit_context* c) { return c ? &c->next : nullptr; }
inline nbdkit_context* as_context(nbdkit_next* n) { return reinterpret_cast<nbdkit_context*>(n); }

}  // namespace nbdd::plugin::nbdkit_abi
