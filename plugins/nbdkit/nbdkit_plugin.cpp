#include "plugins/nbdkit/nbdkit_plugin.hpp"

#include <dlfcn.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "plugins/nbdkit/abi_lists.hpp"
#include "plugins/nbdkit/abi_state.hpp"
#include "plugins/nbdkit/connection_table.hpp"
#include "plugins/nbdkit/nbdkit_plugin_adaptor.hpp"

namespace nbdd::plugin::nbdkit_abi {

std::atomic<NbdkitPlugin*>& active_plugin() {
  static std::atomic<NbdkitPlugin*> plugin{nullptr};
  return plugin;
}

namespace {

ThreadModel thread_model_of(int nbdkit_model) {
  switch (nbdkit_model) {
    case NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS: return ThreadModel::serialize_connections;
    case NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS: return ThreadModel::serialize_all_requests;
    case NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS: return ThreadModel::serialize_requests;
    default: return ThreadModel::parallel;
  }
}

// nbdd's call flags (core::call_flag) to nbdkit's NBDKIT_FLAG_* bits.
std::uint32_t nbdkit_flags(std::uint32_t flags) {
  std::uint32_t out = 0;
  if (flags & flag::fua) out |= NBDKIT_FLAG_FUA;
  if (flags & flag::may_trim) out |= NBDKIT_FLAG_MAY_TRIM;
  if (flags & flag::fast_zero) out |= NBDKIT_FLAG_FAST_ZERO;
  if (flags & flag::req_one) out |= NBDKIT_FLAG_REQ_ONE;
  return out;
}

NbdkitHandle& handle_of(Handle& h) { return static_cast<NbdkitHandle&>(h); }

// Every callback starts with nbdkit_set_error cleared (nbdkit clears it per request).
void clear_set_error() { thread_set_error() = 0; }

}  // namespace

namespace {
// nbdkit 1.32's plugins whose data callbacks only touch memory (no I/O, no sleeps, no
// subprocesses after configuration), when the .so is the one in nbdkit's plugin directory.
bool is_nbdkit_in_memory_plugin(const std::string& path, const char* name) {
  static constexpr std::string_view in_memory[] = {"memory", "data", "null", "zero", "pattern",
                                                    "full", "random", "sparse-random"};
  if (name == nullptr) return false;
  char* real = ::realpath(path.c_str(), nullptr);
  if (real == nullptr) return false;
  const std::string expected = std::string(nbdkit_plugin_dir()) + "/nbdkit-" + name + "-plugin.so";
  char* real_expected = ::realpath(expected.c_str(), nullptr);
  const bool same = real_expected != nullptr && std::strcmp(real, real_expected) == 0;
  std::free(real);
  std::free(real_expected);
  if (!same) return false;
  for (std::string_view n : in_memory)
    if (n == name) return true;
  return false;
}
}  // namespace

NbdkitPlugin::NbdkitPlugin(void* dl, std::string path, const nbdkit_plugin& fields)
    : dl_(dl),
      path_(std::move(path)),
      p_(fields),
      thread_model_(thread_model_of(fields._thread_model)),
      in_memory_(is_nbdkit_in_memory_plugin(path_, fields.name)) {}

NbdkitPlugin::~NbdkitPlugin() {
  if (loaded_for_dump_ && !unloaded_ && p_.unload) p_.unload();
  NbdkitPlugin* self = this;
  active_plugin().compare_exchange_strong(self, nullptr);
  dlclose(dl_);
}

int NbdkitPlugin::error_of_failure(int saved_errno) const {
  int err = thread_set_error();
  if (err == 0 && p_.errno_is_preserved) err = saved_errno;
  return err > 0 ? err : EIO;
}

int NbdkitPlugin::boolean_answer(int (*callback)(void*), Handle& h, bool fallback) const {
  if (callback == nullptr) return fallback ? 1 : 0;
  NbdkitHandle& nh = handle_of(h);
  ScopedExportName name(nh.export_name.c_str());
  clear_set_error();
  const int r = callback(nh.handle);
  if (r == -1) return -error_of_failure(errno);
  return r != 0 ? 1 : 0;
}

// --- server lifecycle ---------------------------------------------------------------

int NbdkitPlugin::load(Host& host) {
  Plugin::load(host);
  set_active_host(&host);
  active_plugin().store(this);
  set_configured(false);
  if (p_.load) p_.load();
  loaded_ = true;
  return 0;
}

int NbdkitPlugin::config(std::string_view key, std::string_view value) {
  if (p_.config == nullptr) {
    host().error("this plugin does not need command line configuration (try --help " + path_ + ")");
    return EINVAL;
  }
  // nbdkit passes argv's own strings, which live as long as the process, and plugins rely
  // on it (data and eval keep the pointers): keep ours until the plugin is gone.
  const std::string& k = config_strings_.emplace_back(key);
  const std::string& v = config_strings_.emplace_back(value);
  clear_set_error();
  if (p_.config(k.c_str(), v.c_str()) == -1) return error_of_failure(errno);
  return 0;
}

int NbdkitPlugin::config_complete() {
  clear_set_error();
  if (p_.config_complete && p_.config_complete() == -1) return error_of_failure(errno);
  set_configured(true);  // stdin/stdout no longer belong to the plugin (nbdkit_stdio_safe)
  // nbdkit asks .thread_model after configuration; it may only restrict the declared one.
  if (p_.thread_model) {
    const int model = p_.thread_model();
    if (model == -1) return error_of_failure(errno);
    if (model < p_._thread_model) thread_model_ = thread_model_of(model < 0 ? 0 : model);
  }
  return 0;
}

int NbdkitPlugin::get_ready() {
  clear_set_error();
  if (p_.get_ready && p_.get_ready() == -1) return error_of_failure(errno);
  ready_ = true;
  return 0;
}

int NbdkitPlugin::run_after_fork(std::string& error) {
  std::lock_guard lock(after_fork_mutex_);
  if (!after_fork_done_) {
    after_fork_done_ = true;
    clear_set_error();
    if (p_.after_fork && p_.after_fork() == -1) {
      after_fork_result_ = error_of_failure(errno);
      after_fork_error_ = "after_fork failed";
    }
  }
  if (after_fork_result_ != 0) error = after_fork_error_;
  return after_fork_result_;
}

void NbdkitPlugin::unload() {
  if (!loaded_ || unloaded_) return;
  if (ready_ && p_.cleanup) p_.cleanup();
  if (p_.unload) p_.unload();
  unloaded_ = true;
  free_all_interns();
  NbdkitPlugin* self = this;
  active_plugin().compare_exchange_strong(self, nullptr);
  set_active_host(nullptr);
}

// --- per client, before open --------------------------------------------------------

int NbdkitPlugin::preconnect(bool readonly) {
  std::string ignored;
  if (int r = run_after_fork(ignored); r != 0) {
    host().error("after_fork failed: refusing clients");
    return r;
  }
  if (p_.preconnect == nullptr) return 0;
  clear_set_error();
  if (p_.preconnect(readonly) == -1) return error_of_failure(errno);
  return 0;
}

int NbdkitPlugin::list_exports(bool readonly, ExportList& out) {
  if (p_.list_exports == nullptr) {
    out.use_default();
    return 0;
  }
  nbdkit_exports exports;
  clear_set_error();
  if (p_.list_exports(readonly, calling_is_tls(), &exports) == -1) return error_of_failure(errno);
  for (const nbdkit_exports::Entry& e : exports.list)
    if (!out.add(e.name.get(), e.description ? e.description.get() : "")) break;
  if (exports.use_default) out.use_default();
  return 0;
}

std::optional<std::string> NbdkitPlugin::default_export(bool readonly) {
  if (p_.default_export == nullptr) return std::string();
  clear_set_error();
  const char* name = p_.default_export(readonly, calling_is_tls());
  if (name == nullptr) return std::nullopt;
  return std::string(name);
}

// --- connection ---------------------------------------------------------------------

int NbdkitPlugin::open(bool readonly, std::string_view export_name, std::unique_ptr<Handle>& out) {
  auto handle = std::make_unique<NbdkitHandle>();
  handle->export_name = std::string(export_name);
  ScopedExportName name(handle->export_name.c_str());
  clear_set_error();
  handle->handle = p_.open(readonly);
  if (handle->handle == nullptr) return error_of_failure(errno);
  out = std::move(handle);
  return 0;
}

void NbdkitPlugin::close(Handle& h) {
  NbdkitHandle& nh = handle_of(h);
  ScopedExportName name(nh.export_name.c_str());
  if (p_.close) p_.close(nh.handle);
}

std::string NbdkitPlugin::export_description(Handle& h) {
  if (p_.export_description == nullptr) return {};
  NbdkitHandle& nh = handle_of(h);
  ScopedExportName name(nh.export_name.c_str());
  const char* text = p_.export_description(nh.handle);
  return text ? std::string(text) : std::string();
}

int NbdkitPlugin::get_size(Handle& h, std::uint64_t& size) {
  NbdkitHandle& nh = handle_of(h);
  ScopedExportName name(nh.export_name.c_str());
  clear_set_error();
  const std::int64_t r = p_.get_size(nh.handle);
  if (r < 0) return r == -1 ? error_of_failure(errno) : EIO;
  size = static_cast<std::uint64_t>(r);
  return 0;
}

int NbdkitPlugin::block_size(Handle& h, std::uint32_t& minimum, std::uint32_t& preferred, std::uint32_t& maximum) {
  minimum = preferred = maximum = 0;
  if (p_.block_size == nullptr) return 0;
  NbdkitHandle& nh = handle_of(h);
  ScopedExportName name(nh.export_name.c_str());
  clear_set_error();
  if (p_.block_size(nh.handle, &minimum, &preferred, &maximum) == -1) return error_of_failure(errno);
  return 0;
}

int NbdkitPlugin::can_write(Handle& h) { return boolean_answer(p_.can_write, h, has_pwrite()); }
int NbdkitPlugin::can_flush(Handle& h) { return boolean_answer(p_.can_flush, h, has_flush()); }
int NbdkitPlugin::can_trim(Handle& h) { return boolean_answer(p_.can_trim, h, has_trim()); }
int NbdkitPlugin::is_rotational(Handle& h) { return boolean_answer(p_.is_rotational, h, false); }
int NbdkitPlugin::can_multi_conn(Handle& h) { return boolean_answer(p_.can_multi_conn, h, false); }
int NbdkitPlugin::can_extents(Handle& h) { return boolean_answer(p_.can_extents, h, has_extents()); }
// Whether zero() is called at all (else nbdd writes zeroes): nbdkit's ZERO_NATIVE.
int NbdkitPlugin::can_zero(Handle& h) { return boolean_answer(p_.can_zero, h, has_zero()); }

// nbdkit's default: fast zeroes are "supported" whenever zero() would not be called (a
// fast zero then fails at once, which is fast); with a zero(), not unless the plugin says.
int NbdkitPlugin::can_fast_zero(Handle& h) {
  if (p_.can_fast_zero) return boolean_answer(p_.can_fast_zero, h, false);
  if (p_.zero == nullptr) return 1;
  const int native = can_zero(h);
  if (native < 0) return native;
  return native ? 0 : 1;
}

int NbdkitPlugin::can_fua(Handle& h) {
  if (p_.can_fua == nullptr) return has_flush() ? fua_emulate : fua_none;
  NbdkitHandle& nh = handle_of(h);
  ScopedExportName name(nh.export_name.c_str());
  clear_set_error();
  int r = p_.can_fua(nh.handle);
  if (r == -1) return -error_of_failure(errno);
  if (r < 0) return -EIO;
  if (r > NBDKIT_FUA_EMULATE && p_._api_version == 1) r = NBDKIT_FUA_EMULATE;  // v1 has no FUA flag
  return r;
}

int NbdkitPlugin::can_cache(Handle& h) {
  if (p_.can_cache == nullptr) return has_cache() ? cache_native : cache_none;
  NbdkitHandle& nh = handle_of(h);
  ScopedExportName name(nh.export_name.c_str());
  clear_set_error();
  const int r = p_.can_cache(nh.handle);
  if (r == -1) return -error_of_failure(errno);
  return r < 0 ? -EIO : r;
}

// --- data ---------------------------------------------------------------------------
// NBD lengths are 32-bit on the wire; nbdkit's callbacks take uint32_t counts.

int NbdkitPlugin::pread(Handle& h, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t flags) {
  (void)flags;  // nbdkit passes no read flags
  if (buf.size() > UINT32_MAX) return EINVAL;
  NbdkitHandle& nh = handle_of(h);
  ScopedExportName name(nh.export_name.c_str());
  clear_set_error();
  const auto count = static_cast<std::uint32_t>(buf.size());
  const int r = p_.pread ? p_.pread(nh.handle, buf.data(), count, offset, 0)
                         : p_._pread_v1(nh.handle, buf.data(), count, offset);
  return r == -1 ? error_of_failure(errno) : 0;
}

int NbdkitPlugin::pwrite(Handle& h, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t flags) {
  if (!has_pwrite()) return EROFS;
  if (buf.size() > UINT32_MAX) return EINVAL;
  NbdkitHandle& nh = handle_of(h);
  ScopedExportName name(nh.export_name.c_str());
  clear_set_error();
  const auto count = static_cast<std::uint32_t>(buf.size());
  const int r = p_.pwrite ? p_.pwrite(nh.handle, buf.data(), count, offset, nbdkit_flags(flags))
                          : p_._pwrite_v1(nh.handle, buf.data(), count, offset);
  return r == -1 ? error_of_failure(errno) : 0;
}

int NbdkitPlugin::flush(Handle& h, std::uint32_t flags) {
  (void)flags;
  if (!has_flush()) return EINVAL;
  NbdkitHandle& nh = handle_of(h);
  ScopedExportName name(nh.export_name.c_str());
  clear_set_error();
  const int r = p_.flush ? p_.flush(nh.handle, 0) : p_._flush_v1(nh.handle);
  return r == -1 ? error_of_failure(errno) : 0;
}

int NbdkitPlugin::trim(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) {
  if (!has_trim()) return EINVAL;
  if (count > UINT32_MAX) return EINVAL;
  NbdkitHandle& nh = handle_of(h);
  ScopedExportName name(nh.export_name.c_str());
  clear_set_error();
  const auto n = static_cast<std::uint32_t>(count);
  const int r = p_.trim ? p_.trim(nh.handle, n, offset, nbdkit_flags(flags)) : p_._trim_v1(nh.handle, n, offset);
  return r == -1 ? error_of_failure(errno) : 0;
}

// ENOTSUP/EOPNOTSUPP make the host write zeroes instead (unless the client asked for a
// fast zero), as nbdkit does.
int NbdkitPlugin::zero(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) {
  if (!has_zero()) return ENOTSUP;
  if (count > UINT32_MAX) return EINVAL;
  if (p_.zero == nullptr && (flags & flag::fast_zero)) return ENOTSUP;  // v1 zero cannot promise speed
  NbdkitHandle& nh = handle_of(h);
  ScopedExportName name(nh.export_name.c_str());
  clear_set_error();
  errno = 0;
  const auto n = static_cast<std::uint32_t>(count);
  const int r = p_.zero ? p_.zero(nh.handle, n, offset, nbdkit_flags(flags))
                        : p_._zero_v1(nh.handle, n, offset, (flags & flag::may_trim) ? 1 : 0);
  return r == -1 ? error_of_failure(errno) : 0;
}

int NbdkitPlugin::extents(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags,
                          ExtentSink& sink) {
  if (!has_extents()) return EINVAL;
  if (count > UINT32_MAX) count = UINT32_MAX;  // fewer extents than asked is allowed
  // One list per thread, reused: extents run often and the list keeps its capacity.
  thread_local nbdkit_extents list;
  list.reset(offset, offset + count);
  NbdkitHandle& nh = handle_of(h);
  ScopedExportName name(nh.export_name.c_str());
  clear_set_error();
  const int r = p_.extents(nh.handle, static_cast<std::uint32_t>(count), offset, nbdkit_flags(flags), &list);
  if (r == -1) return error_of_failure(errno);
  for (const nbdkit_extent& e : list.list)
    if (!sink.add(e.offset, e.length, e.type)) break;
  return 0;
}

int NbdkitPlugin::cache(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) {
  (void)flags;
  if (p_.cache == nullptr) return 0;
  if (count > UINT32_MAX) return EINVAL;
  NbdkitHandle& nh = handle_of(h);
  ScopedExportName name(nh.export_name.c_str());
  clear_set_error();
  const int r = p_.cache(nh.handle, static_cast<std::uint32_t>(count), offset, 0);
  return r == -1 ? error_of_failure(errno) : 0;
}

}  // namespace nbdd::plugin::nbdkit_abi
