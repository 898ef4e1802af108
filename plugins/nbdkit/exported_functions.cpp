#include "plugins/nbdkit/exported_functions.hpp"

#include <atomic>

#include "plugins/nbdkit/nbdkit_headers.hpp"

namespace nbdd::plugin::nbdkit_abi {
namespace {

#define NBDD_NBDKIT_FUNCTION(f) ExportedFunction{#f, reinterpret_cast<void (*)()>(&f)}

const ExportedFunction table[] = {
    NBDD_NBDKIT_FUNCTION(nbdkit_absolute_path),
    NBDD_NBDKIT_FUNCTION(nbdkit_add_export),
    NBDD_NBDKIT_FUNCTION(nbdkit_add_extent),
    NBDD_NBDKIT_FUNCTION(nbdkit_context_get_backend),
    NBDD_NBDKIT_FUNCTION(nbdkit_context_set_next),
    NBDD_NBDKIT_FUNCTION(nbdkit_debug),
    NBDD_NBDKIT_FUNCTION(nbdkit_disconnect),
    NBDD_NBDKIT_FUNCTION(nbdkit_error),
    NBDD_NBDKIT_FUNCTION(nbdkit_export_name),
    NBDD_NBDKIT_FUNCTION(nbdkit_exports_count),
    NBDD_NBDKIT_FUNCTION(nbdkit_exports_free),
    NBDD_NBDKIT_FUNCTION(nbdkit_exports_new),
    NBDD_NBDKIT_FUNCTION(nbdkit_extents_aligned),
    NBDD_NBDKIT_FUNCTION(nbdkit_extents_count),
    NBDD_NBDKIT_FUNCTION(nbdkit_extents_free),
    NBDD_NBDKIT_FUNCTION(nbdkit_extents_full),
    NBDD_NBDKIT_FUNCTION(nbdkit_extents_new),
    NBDD_NBDKIT_FUNCTION(nbdkit_get_export),
    NBDD_NBDKIT_FUNCTION(nbdkit_get_extent),
    NBDD_NBDKIT_FUNCTION(nbdkit_is_tls),
    NBDD_NBDKIT_FUNCTION(nbdkit_nanosleep),
    NBDD_NBDKIT_FUNCTION(nbdkit_next_context_close),
    NBDD_NBDKIT_FUNCTION(nbdkit_next_context_open),
    NBDD_NBDKIT_FUNCTION(nbdkit_parse_bool),
    NBDD_NBDKIT_FUNCTION(nbdkit_parse_int),
    NBDD_NBDKIT_FUNCTION(nbdkit_parse_int8_t),
    NBDD_NBDKIT_FUNCTION(nbdkit_parse_int16_t),
    NBDD_NBDKIT_FUNCTION(nbdkit_parse_int32_t),
    NBDD_NBDKIT_FUNCTION(nbdkit_parse_int64_t),
    NBDD_NBDKIT_FUNCTION(nbdkit_parse_size),
    NBDD_NBDKIT_FUNCTION(nbdkit_parse_uint8_t),
    NBDD_NBDKIT_FUNCTION(nbdkit_parse_uint16_t),
    NBDD_NBDKIT_FUNCTION(nbdkit_parse_uint32_t),
    NBDD_NBDKIT_FUNCTION(nbdkit_parse_uint64_t),
    NBDD_NBDKIT_FUNCTION(nbdkit_parse_unsigned),
    NBDD_NBDKIT_FUNCTION(nbdkit_peer_gid),
    NBDD_NBDKIT_FUNCTION(nbdkit_peer_name),
    NBDD_NBDKIT_FUNCTION(nbdkit_peer_pid),
    NBDD_NBDKIT_FUNCTION(nbdkit_peer_uid),
    NBDD_NBDKIT_FUNCTION(nbdkit_printf_intern),
    NBDD_NBDKIT_FUNCTION(nbdkit_read_password),
    NBDD_NBDKIT_FUNCTION(nbdkit_realpath),
    NBDD_NBDKIT_FUNCTION(nbdkit_set_error),
    NBDD_NBDKIT_FUNCTION(nbdkit_shutdown),
    NBDD_NBDKIT_FUNCTION(nbdkit_stdio_safe),
    NBDD_NBDKIT_FUNCTION(nbdkit_strdup_intern),
    NBDD_NBDKIT_FUNCTION(nbdkit_strndup_intern),
    NBDD_NBDKIT_FUNCTION(nbdkit_use_default_export),
    NBDD_NBDKIT_FUNCTION(nbdkit_vdebug),
    NBDD_NBDKIT_FUNCTION(nbdkit_verror),
    NBDD_NBDKIT_FUNCTION(nbdkit_vprintf_intern),
};

#undef NBDD_NBDKIT_FUNCTION

}  // namespace

std::span<const ExportedFunction> exported_functions() { return table; }

void force_exported_functions_linked() {
  // A volatile read the optimiser cannot drop keeps `table`, and so every symbol it names.
  static std::atomic<const ExportedFunction*> keep{nullptr};
  keep.store(table, std::memory_order_relaxed);
}

}  // namespace nbdd::plugin::nbdkit_abi
