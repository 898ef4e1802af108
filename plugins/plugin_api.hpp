// nbdd plugin API. A plugin author reads this file top to bottom.
//
// Modelled on nbdkit's plugin callbacks (nbdkit-plugin(3)) so that an nbdkit plugin
// author feels at home: the same lifecycle, the same callbacks, the same thread models,
// the same errno-based errors, and shutdown()/disconnect(force) with the semantics of
// nbdkit_shutdown(3) and nbdkit_disconnect(3).
//
// Lifecycle (server side, in order):
//   load(host) -> config(key, value)* -> config_complete() -> get_ready()
//   then per client, each call asked for by that client (nothing runs without one):
//     preconnect()                       once, right after accept, before the greeting
//     list_exports() [+ default_export()] for each NBD_OPT_LIST
//     [default_export()] -> open(name) -> get_size() -> can_*() -> [export_description()]
//       -> block_size()                  for each NBD_OPT_INFO / GO / EXPORT_NAME
//     data callbacks                     after GO / EXPORT_NAME
//     close()                            once for every open() that succeeded
//   and once, after every close has returned: unload().
// Every one of these asks the plugin afresh for this connection: two clients may see two
// sizes, two export lists, two sets of capabilities.
//
// Errors: every callback that can fail returns 0 or a positive errno value (EIO,
// ENOSPC, ...). Call host().error("...") first to attach a message. The mapping from
// errno to NBD error lives in one place (core/errno_map.cpp).
//
// Threads: declare thread_model(); nbdd never calls the plugin more concurrently than
// the model allows. Callbacks run on worker threads, never on the I/O threads.
#pragma once
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/plugin_call.hpp"
#include "core/thread_model.hpp"

namespace nbdd::plugin {

// Bump when this header changes incompatibly; loadable plugins are refused otherwise.
// 2: pread_lend/return_loan. 3: ExportList, default_export may refuse (nullopt),
// export_description, can_zero/can_fast_zero with nbdkit's meaning.
inline constexpr int api_version = 3;  // cmake/install.cmake reads this line

using ThreadModel = core::ThreadModel;
namespace flag = core::call_flag;  // fua, may_trim, fast_zero, req_one

// Extent types for extents(): a combination of these bits, as nbdkit's.
inline constexpr std::uint32_t extent_hole = 1;  // NBDKIT_EXTENT_HOLE
inline constexpr std::uint32_t extent_zero = 2;  // NBDKIT_EXTENT_ZERO

// can_fua() and can_cache() answer one of these, as nbdkit's NBDKIT_FUA_* / NBDKIT_CACHE_*.
// emulate: nbdd does the work (FUA: flush after the write; cache: pread and discard).
inline constexpr int fua_none = 0, fua_emulate = 1, fua_native = 2;
inline constexpr int cache_none = 0, cache_emulate = 1, cache_native = 2;
// can_zero() answers 1 (call zero()), 0 (nbdd writes zeroes with pwrite) or zero_none: do
// not offer WRITE_ZEROES at all (nbdkit's NBDKIT_ZERO_NONE: what an nbdkit filter over a
// read-only layer, or the nozero filter, asks for).
inline constexpr int zero_none = 2;

// What nbdd offers the plugin. Safe to call from any thread, several at once.
class Host {
 public:
  virtual ~Host() = default;
  // nbdkit_shutdown(3): ask the server to shut down gracefully. Returns at once;
  // further callbacks may still happen before unload().
  virtual void shutdown() = 0;
  // nbdkit_disconnect(3): end the connection of the calling callback. force=false: no new
  // command starts, later commands fail ESHUTDOWN, in-flight ones complete. force=true:
  // close at once, no reply to anything in flight. Only meaningful from a connected
  // callback (after open returned, before close); elsewhere it is ignored with a debug
  // message (from preconnect/open/list_exports, reject the client by returning an error).
  virtual void disconnect(bool force) = 0;
  // Attach a message to the error the current callback is about to return.
  virtual void error(std::string_view message) = 0;
  // Debug message, shown with -v.
  virtual void debug(std::string_view message) = 0;
  // nbdkit_is_tls(3): whether the connection of the calling callback has TLS up (false
  // outside a connection's callbacks). Defined here so hosts without TLS need not.
  virtual bool is_tls() const { return false; }
};

// One per client connection, created by open(). Derive to keep per-connection state.
class Handle {
 public:
  virtual ~Handle() = default;
};

// Export names and descriptions are at most this many bytes (the NBD protocol's limit).
inline constexpr std::size_t export_string_max = 4096;

// Where list_exports() puts its answer (nbdkit's struct nbdkit_exports).
class ExportList {
 public:
  virtual ~ExportList() = default;
  // nbdkit_add_export: one export. Returns false, and lists nothing, for a name or a
  // description longer than export_string_max or containing a NUL, or once the list is
  // full (nbdd's limit on one NBD_OPT_LIST reply): stop adding then, it is not an error.
  virtual bool add(std::string_view name, std::string_view description = {}) = 0;
  // nbdkit_use_default_export: also list the default export, as default_export() names it
  // (nothing if default_export() refuses). What a plugin without list_exports() lists.
  virtual void use_default() = 0;
};

// Receives extents from Plugin::extents(). Extents must be contiguous from the requested
// offset; add() returns ENOMEM-like false once nbdd has enough (stop then, it is not an error).
class ExtentSink {
 public:
  virtual ~ExtentSink() = default;
  virtual bool add(std::uint64_t offset, std::uint64_t length, std::uint32_t type) = 0;
};

// The bytes of one read, lent by the plugin from where they already are (its own pages)
// instead of being copied into nbdd's buffer: nbdd hands the pieces straight to the
// socket (a gather write), so the payload is copied once, by the kernel. See pread_lend().
class ReadLoan {
 public:
  struct Piece {
    const std::byte* data;
    std::size_t size;
    void* token;  // the plugin's own, for return_loan() (e.g. the page to unreference)
  };
  // Enough for a 4 MiB read in 64 KiB pieces that does not start on a piece boundary.
  static constexpr std::size_t pieces_max = 72;

  // Appends a piece; false (and nothing appended) when pieces_max are already there.
  bool add(const std::byte* data, std::size_t size, void* token) {
    if (count_ == pieces_max) return false;
    pieces_[count_++] = Piece{data, size, token};
    return true;
  }
  std::span<const Piece> pieces() const { return {pieces_.data(), count_}; }
  std::uint64_t bytes() const {
    std::uint64_t total = 0;
    for (const Piece& p : pieces()) total += p.size;
    return total;
  }
  bool empty() const { return count_ == 0; }
  void clear() { count_ = 0; }

 private:
  std::array<Piece, pieces_max> pieces_;
  std::size_t count_ = 0;
};

class Plugin {
 public:
  virtual ~Plugin() = default;

  // --- identity -------------------------------------------------------------------
  virtual std::string_view name() const = 0;
  virtual std::string_view description() const { return {}; }
  // The key a bare first argument means (nbdkit's magic_config_key): `nbdd memory 1G`.
  virtual std::string_view magic_config_key() const { return {}; }
  // Lines for --dump-plugin and --help (e.g. "size=SIZE  Size of the disk").
  virtual std::string config_help() const { return {}; }
  virtual std::vector<std::pair<std::string, std::string>> dump_fields() const { return {}; }
  virtual ThreadModel thread_model() const { return ThreadModel::parallel; }
  // true when every data callback finishes quickly and never blocks (no disk, no network,
  // no child process), like memory, null and pattern. nbdd then runs data calls on the
  // connection's I/O thread instead of handing them to a worker thread and back, which
  // costs more than the call itself. open and close still run on workers.
  virtual bool nonblocking() const { return false; }

  // --- server lifecycle -------------------------------------------------------------
  virtual int load(Host& host) { host_ = &host; return 0; }
  virtual int config(std::string_view key, std::string_view value) {
    (void)key, (void)value;
    return EINVAL;
  }
  virtual int config_complete() { return 0; }
  virtual int get_ready() { return 0; }
  virtual void unload() {}

  // --- per client, before open (not connected callbacks: refuse by returning an errno)
  // Right after accept, before the greeting: an errno closes the connection at once.
  // `readonly` is the server's -r.
  virtual int preconnect(bool readonly) { (void)readonly; return 0; }
  // For each NBD_OPT_LIST. Default: the default export only (out.use_default()).
  virtual int list_exports(bool readonly, ExportList& out) {
    (void)readonly;
    out.use_default();
    return 0;
  }
  // The canonical name of the export "" (a client that names none), asked before each
  // such open and by use_default(). nullopt refuses "" (nbdkit's NULL: "default export
  // not permitted"); so does a name over export_string_max or containing a NUL.
  virtual std::optional<std::string> default_export(bool readonly) { (void)readonly; return std::string(); }

  // --- connection -------------------------------------------------------------------
  // For each INFO/GO/EXPORT_NAME: the name the client asked for, any string (or what
  // default_export() answered for ""); the plugin decides whether it exists. Returns 0 and
  // sets `out` (left empty: a plain Handle), or an errno (the option is refused).
  // Then get_size, the can_*, export_description when the client asks for it, block_size;
  // if any of them fails, nbdd calls close() and refuses the option.
  virtual int open(bool readonly, std::string_view export_name, std::unique_ptr<Handle>& out) = 0;
  // Exactly once for every open() that succeeded (after INFO, GO, a refused GO, a forced
  // disconnect, a shutdown...).
  virtual void close(Handle& h) { (void)h; }
  // NBD_INFO_DESCRIPTION, only asked when the client wants it. "" = none; a text over
  // export_string_max or containing a NUL is ignored.
  virtual std::string export_description(Handle& h) { (void)h; return {}; }

  virtual int get_size(Handle& h, std::uint64_t& size) = 0;
  // Block size constraints; leave all zero for the defaults.
  virtual int block_size(Handle& h, std::uint32_t& minimum, std::uint32_t& preferred,
                         std::uint32_t& maximum) {
    (void)h;
    minimum = preferred = maximum = 0;
    return 0;
  }
  // can_*: return 1 (yes), 0 (no), or -errno on failure. Defaults as nbdkit's: derived
  // from which data callbacks the plugin overrides (declare them with has_*()).
  // can_trim, can_zero and can_fua are only asked when the export is writable (never
  // with -r), can_fast_zero only then too.
  virtual int can_write(Handle& h) { (void)h; return has_pwrite(); }
  virtual int can_flush(Handle& h) { (void)h; return has_flush(); }
  virtual int can_trim(Handle& h) { (void)h; return has_trim(); }
  // Whether to call zero(). WRITE_ZEROES is advertised on every writable export either
  // way: with 0 (or zero() answering ENOTSUP) nbdd writes zeroes with pwrite; unless the
  // answer is zero_none, which offers no WRITE_ZEROES (nor FAST_ZERO).
  virtual int can_zero(Handle& h) { (void)h; return has_zero(); }
  // Whether to advertise FAST_ZERO. The default says yes when nbdd emulates zero (a fast
  // zero then fails ENOTSUP at once, which is fast) and no when zero() exists but cannot
  // promise to be fast; a plugin whose zero() is always fast says 1.
  virtual int can_fast_zero(Handle& h) { (void)h; return has_zero() ? 0 : 1; }
  // can_fua: fua_none, fua_emulate (nbdd flushes after the write) or fua_native (the
  // plugin honours flag::fua itself).
  virtual int can_fua(Handle& h) { (void)h; return has_flush() ? fua_emulate : fua_none; }
  virtual int can_multi_conn(Handle& h) { (void)h; return 0; }
  // can_cache: cache_none, cache_emulate (nbdd preads and discards) or cache_native.
  virtual int can_cache(Handle& h) { (void)h; return has_cache() ? cache_native : cache_none; }
  virtual int can_extents(Handle& h) { (void)h; return has_extents(); }
  virtual int is_rotational(Handle& h) { (void)h; return 0; }

  // --- data -------------------------------------------------------------------------
  virtual int pread(Handle& h, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t flags) = 0;
  virtual int pwrite(Handle& h, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t flags) {
    (void)h, (void)buf, (void)offset, (void)flags;
    return EROFS;
  }
  virtual int flush(Handle& h, std::uint32_t flags) { (void)h, (void)flags; return EINVAL; }
  virtual int trim(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) {
    (void)h, (void)count, (void)offset, (void)flags;
    return EINVAL;
  }
  // Without an override, the host falls back to pwrite of zeroes (unless fast_zero).
  virtual int zero(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) {
    (void)h, (void)count, (void)offset, (void)flags;
    return ENOTSUP;
  }
  virtual int extents(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags,
                      ExtentSink& sink) {
    (void)h, (void)count, (void)offset, (void)flags, (void)sink;
    return EINVAL;
  }
  virtual int cache(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) {
    (void)h, (void)count, (void)offset, (void)flags;
    return 0;
  }

  // Zero-copy reads (optional; declare with has_pread_lend()). Instead of copying into a
  // buffer, append pieces to `loan` that cover exactly [offset, offset+count) in order, and
  // keep each piece's bytes alive and in place until return_loan() gives it back. Return 0,
  // or an errno with `loan` left empty: ENOTSUP (e.g. more than ReadLoan::pieces_max pieces
  // needed) makes nbdd fall back to pread() for this request, anything else fails it.
  // nbdd asks only nonblocking() plugins, for reads of at least 32 KiB.
  // A write to lent bytes before they are sent may show in the reply, as it may when a read
  // and an overlapping write are in flight together (NBD promises no order between them).
  virtual int pread_lend(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags,
                         ReadLoan& loan) {
    (void)h, (void)count, (void)offset, (void)flags, (void)loan;
    return ENOTSUP;
  }
  // Gives back every piece of one successful pread_lend(). Called exactly once for each, on
  // any thread, concurrently with any other callback, possibly after close() of the
  // connection that took it but always before unload(). Must not block or fail.
  virtual void return_loan(const ReadLoan& loan) { (void)loan; }

  // Which optional data callbacks this plugin implements (nbdkit infers it from which
  // function pointers are set; C++ cannot see overrides, so say it here).
  virtual bool has_pwrite() const { return false; }
  virtual bool has_flush() const { return false; }
  virtual bool has_trim() const { return false; }
  virtual bool has_zero() const { return false; }
  virtual bool has_extents() const { return false; }
  virtual bool has_cache() const { return false; }
  virtual bool has_pread_lend() const { return false; }

 protected:
  Host& host() const { return *host_; }

 private:
  Host* host_ = nullptr;
};

}  // namespace nbdd::plugin

// Loadable plugins (`nbdd ./libmy.so key=value`) export exactly these two symbols:
//   extern "C" int nbdd_plugin_api_version = nbdd::plugin::api_version;
//   extern "C" nbdd::plugin::Plugin* nbdd_plugin_create();   // new'd; nbdd deletes it
#define NBDD_REGISTER_PLUGIN(PluginClass)                                      \
  extern "C" {                                                                 \
  __attribute__((visibility("default"))) int nbdd_plugin_api_version =        \
      ::nbdd::plugin::api_version;                                             \
  __attribute__((visibility("default"))) ::nbdd::plugin::Plugin* nbdd_plugin_create() { \
    return new PluginClass();                                                  \
  }                                                                            \
  }
