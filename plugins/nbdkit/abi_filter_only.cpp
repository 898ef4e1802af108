// The nbdkit functions only filters call (nbdkit_next_*, nbdkit_context_*,
// nbdkit_extents_full/aligned). nbdd does not host nbdkit filters yet, so nothing can reach
// them through a next_ops pointer; they exist so that every installed filter's symbols
// resolve, and they fail loudly (ENOTSUP) if ever called.
#include <cerrno>

#include "plugins/nbdkit/nbdkit_headers.hpp"

namespace {
void not_hosted(const char* what) {
  nbdkit_error("%s: nbdkit filters are not hosted by nbdd", what);
  errno = ENOTSUP;
}
}  // namespace

extern "C" {

NBDKIT_DLL_PUBLIC struct nbdkit_extents* nbdkit_extents_full(nbdkit_next*, uint32_t, uint64_t, uint32_t, int* err) {
  not_hosted("nbdkit_extents_full");
  *err = ENOTSUP;
  return nullptr;
}

NBDKIT_DLL_PUBLIC int nbdkit_extents_aligned(nbdkit_next*, uint32_t, uint64_t, uint32_t, uint32_t,
                                             struct nbdkit_extents*, int* err) {
  not_hosted("nbdkit_extents_aligned");
  *err = ENOTSUP;
  return -1;
}

NBDKIT_DLL_PUBLIC nbdkit_backend* nbdkit_context_get_backend(nbdkit_context*) {
  not_hosted("nbdkit_context_get_backend");
  return nullptr;
}

NBDKIT_DLL_PUBLIC nbdkit_next* nbdkit_next_context_open(nbdkit_backend*, int, const char*, int) {
  not_hosted("nbdkit_next_context_open");
  return nullptr;
}

NBDKIT_DLL_PUBLIC void nbdkit_next_context_close(nbdkit_next*) { not_hosted("nbdkit_next_context_close"); }

NBDKIT_DLL_PUBLIC nbdkit_next* nbdkit_context_set_next(nbdkit_context*, nbdkit_next*) {
  not_hosted("nbdkit_context_set_next");
  return nullptr;
}

}  // extern "C"
