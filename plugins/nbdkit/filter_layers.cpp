// nbdkit's backend rules, one layer of a filter chain at a time (server/backend.c,
// server/filters.c and, for the plugin at the bottom, server/plugins.c): a filter layer calls
// the filter's callback with the context below, or passes the call down when the filter has
// none; the plugin layer calls the nbdd Plugin (built-in, loadable or nbdkit-hosted) and
// translates its answers into nbdkit's (ZERO_NATIVE/EMULATE, FUA and cache modes, -1 with
// *err).
#include "plugins/nbdkit/filter_layers.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "plugins/nbdkit/abi_lists.hpp"
#include "plugins/nbdkit/abi_state.hpp"
#include "plugins/nbdkit/connection_table.hpp"

namespace nbdd::plugin::nbdkit_abi {

int& layer_errno() {
  thread_local int err = 0;
  return err;
}

int fail_layer(int err) {
  layer_errno() = err > 0 ? err : EIO;
  return -1;
}

namespace {

// nbdkit's NBDKIT_FLAG_* bits to nbdd's call flags.
std::uint32_t nbdd_flags(std::uint32_t flags) {
  std::uint32_t out = 0;
  if (flags & NBDKIT_FLAG_FUA) out |= flag::fua;
  if (flags & NBDKIT_FLAG_MAY_TRIM) out |= flag::may_trim;
  if (flags & NBDKIT_FLAG_FAST_ZERO) out |= flag::fast_zero;
  if (flags & NBDKIT_FLAG_REQ_ONE) out |= flag::req_one;
  return out;
}

FilterChain& chain_of(const nbdkit_context* c) { return *c->backend->chain; }
bool is_plugin_layer(const nbdkit_context* c) { return chain_of(c).is_plugin(c->backend); }
const nbdkit_filter& filter_of(const nbdkit_context* c) { return chain_of(c).filter_of(c->backend); }
Plugin& plugin_of(const nbdkit_context* c) { return chain_of(c).plugin(); }
Handle& handle_of(const nbdkit_context* c) { return *c->plugin_handle; }

// A filter layer whose filter did not open the layer below (or closed it) and then passes a
// call down: nbdkit would crash on it; fail the call instead.
bool missing_next(const nbdkit_context* c) {
  if (c->c_next != nullptr) return false;
  nbdkit_error("%s: the filter has no open backend below it", filter_of(c).name);
  return true;
}

// A plugin's can_* answer (1, 0 or -errno) as nbdkit's (1, 0 or -1).
int plugin_boolean(int answer) {
  if (answer < 0) return fail_layer(-answer);
  return answer > 0 ? 1 : 0;
}

// The cached value of one can_* (or -1 with the error when asking failed; failures are not
// cached, as nbdkit's).
template <typename Ask>
int cached(std::atomic<int>& slot, Ask&& ask) {
  int v = slot.load(std::memory_order_relaxed);
  if (v != -1) return v;
  v = ask();
  if (v >= 0) slot.store(v, std::memory_order_relaxed);
  return v;
}

// A filter callback failed: keep the errno a layer below recorded, else `err`.
int failed(int err) { return layer_errno() ? -1 : fail_layer(err); }

// Zeroes written by the emulations of zero (nbdkit's static buffer: at most one request).
constexpr std::size_t zero_buffer_bytes = 64 * 1024;
const std::array<std::byte, zero_buffer_bytes> zero_buffer{};

}  // namespace

// --- configuration and the per-client calls before open -------------------------------

int layer_config(nbdkit_backend* b, const char* key, const char* value) {
  FilterChain& chain = *b->chain;
  if (chain.is_plugin(b)) {
    const int r = chain.plugin().config(key, value);
    return r == 0 ? 0 : fail_layer(r);
  }
  const nbdkit_filter& f = chain.filter_of(b);
  if (f.config == nullptr) return layer_config(chain.below(b), key, value);
  return f.config(&layer_config, chain.below(b), key, value) == -1 ? failed(EINVAL) : 0;
}

int layer_config_complete(nbdkit_backend* b) {
  FilterChain& chain = *b->chain;
  if (chain.is_plugin(b)) {
    const int r = chain.plugin().config_complete();
    return r == 0 ? 0 : fail_layer(r);
  }
  const nbdkit_filter& f = chain.filter_of(b);
  if (f.config_complete == nullptr) return layer_config_complete(chain.below(b));
  return f.config_complete(&layer_config_complete, chain.below(b)) == -1 ? failed(EINVAL) : 0;
}

int layer_preconnect(nbdkit_backend* b, int readonly) {
  FilterChain& chain = *b->chain;
  if (chain.is_plugin(b)) {
    const int r = chain.plugin().preconnect(readonly != 0);
    return r == 0 ? 0 : fail_layer(r);
  }
  const nbdkit_filter& f = chain.filter_of(b);
  if (f.preconnect == nullptr) return layer_preconnect(chain.below(b), readonly);
  return f.preconnect(&layer_preconnect, chain.below(b), readonly) == -1 ? failed(EIO) : 0;
}

namespace {

// What the plugin lists, into nbdkit's list.
class ExportsSink final : public ExportList {
 public:
  explicit ExportsSink(nbdkit_exports* exports) : exports_(exports) {}
  bool add(std::string_view name, std::string_view description) override {
    const std::string n(name), d(description);
    return nbdkit_add_export(exports_, n.c_str(), description.empty() ? nullptr : d.c_str()) == 0;
  }
  void use_default() override { nbdkit_use_default_export(exports_); }

 private:
  nbdkit_exports* exports_;
};

// The signature nbdkit's next_list_exports has (no resolve flag).
int next_list_exports(nbdkit_backend* b, int readonly, nbdkit_exports* exports) {
  return layer_list_exports(b, readonly, exports, true);
}

}  // namespace

int layer_list_exports(nbdkit_backend* b, int readonly, nbdkit_exports* exports, bool resolve_default) {
  FilterChain& chain = *b->chain;
  int r = 0;
  if (chain.is_plugin(b)) {
    ExportsSink sink(exports);
    const int err = chain.plugin().list_exports(readonly != 0, sink);
    if (err != 0) return fail_layer(err);
  } else {
    const nbdkit_filter& f = chain.filter_of(b);
    r = f.list_exports ? f.list_exports(&next_list_exports, chain.below(b), readonly, calling_is_tls(), exports)
                       : layer_list_exports(chain.below(b), readonly, exports, false);
    if (r == -1) return failed(EIO);
  }
  // nbdkit's exports_resolve_default: the layer's own default export joins the list.
  if (resolve_default && exports->use_default) {
    exports->use_default = false;
    if (const char* name = layer_default_export(b, readonly))
      if (nbdkit_add_export(exports, name, nullptr) == -1) return fail_layer(errno ? errno : EINVAL);
  }
  return 0;
}

const char* layer_default_export(nbdkit_backend* b, int readonly) {
  FilterChain& chain = *b->chain;
  const char* name = nullptr;
  if (chain.is_plugin(b)) {
    std::optional<std::string> answer = chain.plugin().default_export(readonly != 0);
    if (answer) name = nbdkit_strdup_intern(answer->c_str());
  } else {
    const nbdkit_filter& f = chain.filter_of(b);
    name = f.default_export ? f.default_export(&layer_default_export, chain.below(b), readonly, calling_is_tls())
                            : layer_default_export(chain.below(b), readonly);
  }
  if (name != nullptr && ::strnlen(name, export_string_max + 1) > export_string_max) return nullptr;
  return name;
}

// --- open, prepare, finalize, close ---------------------------------------------------

namespace {

const nbdkit_next_ops& next_ops();

// The next_open a filter's .open receives: opens the layer below and makes it this
// context's next.
int next_open(nbdkit_context* c, int readonly, const char* export_name) {
  nbdkit_context* below = layer_open(c->backend->chain->below(c->backend), readonly, export_name);
  if (below == nullptr) return -1;
  if (c->c_next != nullptr) layer_close(c->c_next);  // a filter calling next twice
  c->c_next = below;
  return 0;
}

nbdkit_context* new_context(nbdkit_backend* b, int readonly) {
  auto* c = new nbdkit_context;
  c->next = next_ops();
  c->backend = b;
  c->filter_handle = nullptr;
  c->plugin_handle = nullptr;
  c->c_next = nullptr;
  c->connected = false;
  c->failed = false;
  c->size.store(-1);
  c->block_min.store(-1), c->block_preferred.store(-1), c->block_max.store(-1);
  for (std::atomic<int>* slot : {&c->can_flush, &c->is_rotational, &c->can_trim, &c->can_zero, &c->can_fast_zero,
                                 &c->can_extents, &c->can_fua, &c->can_multi_conn, &c->can_cache})
    slot->store(-1);
  c->can_write.store(readonly ? 0 : -1);
  return c;
}

}  // namespace

nbdkit_context* layer_open(nbdkit_backend* b, int readonly, const char* export_name) {
  FilterChain& chain = *b->chain;
  if (export_name == nullptr) export_name = "";
  if (*export_name == '\0') {
    export_name = layer_default_export(b, readonly);
    if (export_name == nullptr) {
      nbdkit_error("default export (\"\") not permitted");
      fail_layer(ENOENT);
      return nullptr;
    }
  }
  nbdkit_context* c = new_context(b, readonly);
  if (chain.is_plugin(b)) {
    std::unique_ptr<Handle> handle;
    if (int r = chain.plugin().open(readonly != 0, export_name, handle); r != 0) {
      fail_layer(r);
      delete c;
      return nullptr;
    }
    c->plugin_handle = handle ? handle.release() : new Handle;
    return c;
  }
  const nbdkit_filter& f = chain.filter_of(b);
  if (f.open) c->filter_handle = f.open(&next_open, c, readonly, export_name, calling_is_tls());
  else c->filter_handle = next_open(c, readonly, export_name) == -1 ? nullptr : NBDKIT_HANDLE_NOT_NEEDED;
  if (c->filter_handle == nullptr) {
    if (c->c_next != nullptr) layer_close(c->c_next);
    delete c;
    if (layer_errno() == 0) fail_layer(EIO);
    return nullptr;
  }
  return c;
}

int layer_prepare(nbdkit_context* c) {
  if (c->connected) return 0;
  if (!is_plugin_layer(c)) {
    if (c->c_next != nullptr && layer_prepare(c->c_next) == -1) return -1;
    const nbdkit_filter& f = filter_of(c);
    if (f.prepare && f.prepare(as_next(c->c_next), c->filter_handle, c->can_write.load() == 0) == -1)
      return failed(EIO);
  }
  c->connected = true;
  return 0;
}

int layer_finalize(nbdkit_context* c) {
  if (c->failed) return -1;
  if (c->connected && !is_plugin_layer(c)) {
    const nbdkit_filter& f = filter_of(c);
    if (f.finalize && f.finalize(as_next(c->c_next), c->filter_handle) == -1) {
      c->failed = true;
      return failed(EIO);
    }
  }
  if (!is_plugin_layer(c) && c->c_next != nullptr) return layer_finalize(c->c_next);
  return 0;
}

void layer_close(nbdkit_context* c) {
  while (c != nullptr) {
    nbdkit_context* below = c->c_next;
    if (is_plugin_layer(c)) {
      plugin_of(c).close(*c->plugin_handle);
      delete c->plugin_handle;
    } else if (filter_of(c).close) {
      filter_of(c).close(c->filter_handle);
    }
    delete c;
    c = below;
  }
}

// --- the next_ops table: nbdkit's backend_* functions ---------------------------------

namespace {

#define NBDD_PASS_DOWN(member, filter_args, call_below)    \
  if (!is_plugin_layer(c)) {                               \
    const nbdkit_filter& f = filter_of(c);                 \
    if (f.member) return f.member filter_args;             \
    if (missing_next(c)) return fail_layer(EIO);           \
    return call_below;                                     \
  }

int n_prepare(nbdkit_next* n) { return layer_prepare(as_context(n)); }
int n_finalize(nbdkit_next* n) { return layer_finalize(as_context(n)); }

int64_t n_get_size(nbdkit_next* n) {
  nbdkit_context* c = as_context(n);
  std::int64_t v = c->size.load(std::memory_order_relaxed);
  if (v != -1) return v;
  if (!is_plugin_layer(c)) {
    const nbdkit_filter& f = filter_of(c);
    if (f.get_size) v = f.get_size(as_next(c->c_next), c->filter_handle);
    else v = missing_next(c) ? fail_layer(EIO) : n_get_size(as_next(c->c_next));
  } else {
    std::uint64_t size = 0;
    const int r = plugin_of(c).get_size(handle_of(c), size);
    v = r != 0 ? fail_layer(r) : static_cast<std::int64_t>(std::min<std::uint64_t>(size, INT64_MAX));
  }
  if (v >= 0) c->size.store(v, std::memory_order_relaxed);
  return v < 0 ? -1 : v;
}

const char* n_export_description(nbdkit_next* n) {
  nbdkit_context* c = as_context(n);
  const char* s = nullptr;
  if (!is_plugin_layer(c)) {
    const nbdkit_filter& f = filter_of(c);
    if (f.export_description) s = f.export_description(as_next(c->c_next), c->filter_handle);
    else if (c->c_next != nullptr) s = n_export_description(as_next(c->c_next));
  } else {
    const std::string text = plugin_of(c).export_description(handle_of(c));
    if (!text.empty()) s = nbdkit_strdup_intern(text.c_str());
  }
  if (s != nullptr && ::strnlen(s, export_string_max + 1) > export_string_max) return nullptr;
  return s;
}

int n_block_size(nbdkit_next* n, uint32_t* minimum, uint32_t* preferred, uint32_t* maximum) {
  nbdkit_context* c = as_context(n);
  if (c->block_min.load(std::memory_order_relaxed) != -1) {
    *minimum = static_cast<uint32_t>(c->block_min.load(std::memory_order_relaxed));
    *preferred = static_cast<uint32_t>(c->block_preferred.load(std::memory_order_relaxed));
    *maximum = static_cast<uint32_t>(c->block_max.load(std::memory_order_relaxed));
    return 0;
  }
  int r;
  if (!is_plugin_layer(c)) {
    const nbdkit_filter& f = filter_of(c);
    if (f.block_size) r = f.block_size(as_next(c->c_next), c->filter_handle, minimum, preferred, maximum);
    else r = missing_next(c) ? fail_layer(EIO) : n_block_size(as_next(c->c_next), minimum, preferred, maximum);
  } else {
    const int err = plugin_of(c).block_size(handle_of(c), *minimum, *preferred, *maximum);
    r = err != 0 ? fail_layer(err) : 0;
  }
  if (r == 0) {
    c->block_preferred.store(*preferred, std::memory_order_relaxed);
    c->block_max.store(*maximum, std::memory_order_relaxed);
    c->block_min.store(*minimum, std::memory_order_relaxed);
  }
  return r;
}

int n_can_write(nbdkit_next* n) {
  nbdkit_context* c = as_context(n);
  return cached(c->can_write, [&] {
    NBDD_PASS_DOWN(can_write, (as_next(c->c_next), c->filter_handle), n_can_write(as_next(c->c_next)));
    return plugin_boolean(plugin_of(c).can_write(handle_of(c)));
  });
}

int n_can_flush(nbdkit_next* n) {
  nbdkit_context* c = as_context(n);
  return cached(c->can_flush, [&] {
    NBDD_PASS_DOWN(can_flush, (as_next(c->c_next), c->filter_handle), n_can_flush(as_next(c->c_next)));
    return plugin_boolean(plugin_of(c).can_flush(handle_of(c)));
  });
}

int n_is_rotational(nbdkit_next* n) {
  nbdkit_context* c = as_context(n);
  return cached(c->is_rotational, [&] {
    NBDD_PASS_DOWN(is_rotational, (as_next(c->c_next), c->filter_handle), n_is_rotational(as_next(c->c_next)));
    return plugin_boolean(plugin_of(c).is_rotational(handle_of(c)));
  });
}

int n_can_trim(nbdkit_next* n) {
  nbdkit_context* c = as_context(n);
  return cached(c->can_trim, [&] {
    const int w = n_can_write(n);
    if (w != 1) return w == 0 ? 0 : -1;
    NBDD_PASS_DOWN(can_trim, (as_next(c->c_next), c->filter_handle), n_can_trim(as_next(c->c_next)));
    return plugin_boolean(plugin_of(c).can_trim(handle_of(c)));
  });
}

int n_can_zero(nbdkit_next* n) {
  nbdkit_context* c = as_context(n);
  return cached(c->can_zero, [&] {
    const int w = n_can_write(n);
    if (w != 1) return w == 0 ? NBDKIT_ZERO_NONE : -1;
    NBDD_PASS_DOWN(can_zero, (as_next(c->c_next), c->filter_handle), n_can_zero(as_next(c->c_next)));
    // A plugin's can_zero only says whether its zero() is called (nbdkit's special case).
    const int r = plugin_boolean(plugin_of(c).can_zero(handle_of(c)));
    return r < 0 ? r : (r ? NBDKIT_ZERO_NATIVE : NBDKIT_ZERO_EMULATE);
  });
}

int n_can_fast_zero(nbdkit_next* n) {
  nbdkit_context* c = as_context(n);
  return cached(c->can_fast_zero, [&] {
    const int z = n_can_zero(n);
    if (z < NBDKIT_ZERO_EMULATE) return z < 0 ? -1 : 0;
    NBDD_PASS_DOWN(can_fast_zero, (as_next(c->c_next), c->filter_handle), n_can_fast_zero(as_next(c->c_next)));
    return plugin_boolean(plugin_of(c).can_fast_zero(handle_of(c)));
  });
}

int n_can_extents(nbdkit_next* n) {
  nbdkit_context* c = as_context(n);
  return cached(c->can_extents, [&] {
    NBDD_PASS_DOWN(can_extents, (as_next(c->c_next), c->filter_handle), n_can_extents(as_next(c->c_next)));
    return plugin_boolean(plugin_of(c).can_extents(handle_of(c)));
  });
}

int n_can_fua(nbdkit_next* n) {
  nbdkit_context* c = as_context(n);
  return cached(c->can_fua, [&] {
    const int w = n_can_write(n);
    if (w != 1) return w == 0 ? NBDKIT_FUA_NONE : -1;
    NBDD_PASS_DOWN(can_fua, (as_next(c->c_next), c->filter_handle), n_can_fua(as_next(c->c_next)));
    const int r = plugin_of(c).can_fua(handle_of(c));  // fua_none/emulate/native: nbdkit's values
    return r < 0 ? fail_layer(-r) : std::min(r, NBDKIT_FUA_NATIVE);
  });
}

int n_can_multi_conn(nbdkit_next* n) {
  nbdkit_context* c = as_context(n);
  return cached(c->can_multi_conn, [&] {
    NBDD_PASS_DOWN(can_multi_conn, (as_next(c->c_next), c->filter_handle), n_can_multi_conn(as_next(c->c_next)));
    return plugin_boolean(plugin_of(c).can_multi_conn(handle_of(c)));
  });
}

int n_can_cache(nbdkit_next* n) {
  nbdkit_context* c = as_context(n);
  return cached(c->can_cache, [&] {
    NBDD_PASS_DOWN(can_cache, (as_next(c->c_next), c->filter_handle), n_can_cache(as_next(c->c_next)));
    const int r = plugin_of(c).can_cache(handle_of(c));  // cache_none/emulate/native: nbdkit's values
    return r < 0 ? fail_layer(-r) : std::min(r, NBDKIT_CACHE_NATIVE);
  });
}

#undef NBDD_PASS_DOWN

// Data calls: a filter layer calls the filter (or passes down); the plugin layer calls the
// Plugin, emulating FUA with flush when the plugin cannot honour it (nbdkit's plugin_pwrite).
#define NBDD_DATA_PASS_DOWN(member, filter_args, call_below) \
  if (!is_plugin_layer(c)) {                                \
    const nbdkit_filter& f = filter_of(c);                  \
    if (f.member) return f.member filter_args;              \
    if (missing_next(c)) return *err = EIO, -1;           \
    return call_below;                                    \
  }

int plugin_result(int r, int* err) {
  if (r == 0) return 0;
  *err = r;
  return -1;
}

int n_flush(nbdkit_next* n, uint32_t flags, int* err) {
  nbdkit_context* c = as_context(n);
  NBDD_DATA_PASS_DOWN(flush, (as_next(c->c_next), c->filter_handle, flags, err),
                      n_flush(as_next(c->c_next), flags, err));
  return plugin_result(plugin_of(c).flush(handle_of(c), 0), err);
}

// Strips FUA when the plugin layer cannot honour it; true: flush after the call.
bool strip_fua(nbdkit_context* c, uint32_t& flags) {
  if (!(flags & NBDKIT_FLAG_FUA) || n_can_fua(&c->next) == NBDKIT_FUA_NATIVE) return false;
  flags &= ~NBDKIT_FLAG_FUA;
  return true;
}

int n_pread(nbdkit_next* n, void* buf, uint32_t count, uint64_t offset, uint32_t flags, int* err) {
  nbdkit_context* c = as_context(n);
  NBDD_DATA_PASS_DOWN(pread, (as_next(c->c_next), c->filter_handle, buf, count, offset, flags, err),
                      n_pread(as_next(c->c_next), buf, count, offset, flags, err));
  return plugin_result(plugin_of(c).pread(handle_of(c), std::span(static_cast<std::byte*>(buf), count), offset, 0), err);
}

int n_pwrite(nbdkit_next* n, const void* buf, uint32_t count, uint64_t offset, uint32_t flags, int* err) {
  nbdkit_context* c = as_context(n);
  NBDD_DATA_PASS_DOWN(pwrite, (as_next(c->c_next), c->filter_handle, buf, count, offset, flags, err),
                      n_pwrite(as_next(c->c_next), buf, count, offset, flags, err));
  const bool flush_after = strip_fua(c, flags);
  const int r = plugin_of(c).pwrite(handle_of(c), std::span(static_cast<const std::byte*>(buf), count), offset,
                                    nbdd_flags(flags));
  if (r != 0) return plugin_result(r, err);
  return flush_after ? n_flush(n, 0, err) : 0;
}

int n_trim(nbdkit_next* n, uint32_t count, uint64_t offset, uint32_t flags, int* err) {
  nbdkit_context* c = as_context(n);
  NBDD_DATA_PASS_DOWN(trim, (as_next(c->c_next), c->filter_handle, count, offset, flags, err),
                      n_trim(as_next(c->c_next), count, offset, flags, err));
  const bool flush_after = strip_fua(c, flags);
  const int r = plugin_of(c).trim(handle_of(c), count, offset, nbdd_flags(flags));
  if (r != 0) return plugin_result(r, err);
  return flush_after ? n_flush(n, 0, err) : 0;
}

// Zeroes by writing zeroes through this layer's pwrite (nbdkit's ZERO_EMULATE).
int write_zeroes(nbdkit_next* n, uint32_t count, uint64_t offset, uint32_t flags, int* err) {
  const uint32_t write_flags = flags & NBDKIT_FLAG_FUA;
  while (count > 0) {
    const uint32_t chunk = std::min<uint32_t>(count, zero_buffer_bytes);
    if (n_pwrite(n, zero_buffer.data(), chunk, offset, chunk == count ? write_flags : 0, err) == -1) return -1;
    offset += chunk;
    count -= chunk;
  }
  return 0;
}

bool is_enotsup(int e) { return e == ENOTSUP || e == EOPNOTSUPP; }

int n_zero(nbdkit_next* n, uint32_t count, uint64_t offset, uint32_t flags, int* err) {
  nbdkit_context* c = as_context(n);
  const bool fast = flags & NBDKIT_FLAG_FAST_ZERO;
  const int mode = n_can_zero(n);
  if (mode == NBDKIT_ZERO_EMULATE) {  // backend_zero: emulated at this very layer
    if (fast) return *err = ENOTSUP, -1;
    return write_zeroes(n, count, offset, flags, err);
  }
  NBDD_DATA_PASS_DOWN(zero, (as_next(c->c_next), c->filter_handle, count, offset, flags, err),
                      n_zero(as_next(c->c_next), count, offset, flags, err));
  if (count == 0) return 0;
  const bool flush_after = strip_fua(c, flags);
  const int r = plugin_of(c).zero(handle_of(c), count, offset, nbdd_flags(flags));
  if (r != 0 && !is_enotsup(r)) return plugin_result(r, err);
  if (r != 0) {  // the plugin cannot zero this time: write zeroes, unless asked to be fast
    if (fast) return *err = EOPNOTSUPP, -1;
    if (write_zeroes(n, count, offset, flags & ~(NBDKIT_FLAG_MAY_TRIM | NBDKIT_FLAG_FUA), err) == -1) return -1;
  }
  return flush_after ? n_flush(n, 0, err) : 0;
}

// What the plugin reports, into nbdkit's list (nbdkit's ordering and clipping rules).
class ExtentsSink final : public ExtentSink {
 public:
  explicit ExtentsSink(nbdkit_extents* list) : list_(list) {}
  bool add(std::uint64_t offset, std::uint64_t length, std::uint32_t type) override {
    if (nbdkit_add_extent(list_, offset, length, type) == 0) return true;
    failed_ = true;
    return false;
  }
  bool failed() const { return failed_; }

 private:
  nbdkit_extents* list_;
  bool failed_ = false;
};

int n_extents(nbdkit_next* n, uint32_t count, uint64_t offset, uint32_t flags, nbdkit_extents* extents, int* err) {
  nbdkit_context* c = as_context(n);
  const int can = n_can_extents(n);
  if (can < 0) return *err = layer_errno() ? layer_errno() : EIO, -1;
  if (can == 0) {  // everything is allocated data
    if (nbdkit_add_extent(extents, offset, count, 0) == -1) return *err = errno ? errno : EINVAL, -1;
    return 0;
  }
  NBDD_DATA_PASS_DOWN(extents, (as_next(c->c_next), c->filter_handle, count, offset, flags, extents, err),
                      n_extents(as_next(c->c_next), count, offset, flags, extents, err));
  ExtentsSink sink(extents);
  const int r = plugin_of(c).extents(handle_of(c), count, offset, nbdd_flags(flags), sink);
  if (r != 0) return plugin_result(r, err);
  if (sink.failed()) return *err = ERANGE, -1;
  if (nbdkit_extents_count(extents) < 1) {
    nbdkit_error("extents: plugin must return at least one extent");
    return *err = EINVAL, -1;
  }
  return 0;
}

int n_cache(nbdkit_next* n, uint32_t count, uint64_t offset, uint32_t flags, int* err) {
  nbdkit_context* c = as_context(n);
  if (n_can_cache(n) == NBDKIT_CACHE_EMULATE) {  // backend_cache: read and discard
    thread_local std::vector<std::byte> scratch;
    if (scratch.size() < zero_buffer_bytes) scratch.resize(zero_buffer_bytes);
    while (count > 0) {
      const uint32_t chunk = std::min<uint32_t>(count, zero_buffer_bytes);
      if (n_pread(n, scratch.data(), chunk, offset, 0, err) == -1) return -1;
      offset += chunk;
      count -= chunk;
    }
    return 0;
  }
  NBDD_DATA_PASS_DOWN(cache, (as_next(c->c_next), c->filter_handle, count, offset, flags, err),
                      n_cache(as_next(c->c_next), count, offset, flags, err));
  return plugin_result(plugin_of(c).cache(handle_of(c), count, offset, 0), err);
}

#undef NBDD_DATA_PASS_DOWN

const nbdkit_next_ops& next_ops() {
  static const nbdkit_next_ops ops = [] {
    nbdkit_next_ops o{};
    o.prepare = n_prepare;
    o.finalize = n_finalize;
    o.get_size = n_get_size;
    o.export_description = n_export_description;
    o.block_size = n_block_size;
    o.can_write = n_can_write;
    o.can_flush = n_can_flush;
    o.is_rotational = n_is_rotational;
    o.can_trim = n_can_trim;
    o.can_zero = n_can_zero;
    o.can_fast_zero = n_can_fast_zero;
    o.can_extents = n_can_extents;
    o.can_fua = n_can_fua;
    o.can_multi_conn = n_can_multi_conn;
    o.can_cache = n_can_cache;
    o.pread = n_pread;
    o.pwrite = n_pwrite;
    o.flush = n_flush;
    o.trim = n_trim;
    o.zero = n_zero;
    o.extents = n_extents;
    o.cache = n_cache;
    return o;
  }();
  return ops;
}

}  // namespace

}  // namespace nbdd::plugin::nbdkit_abi
