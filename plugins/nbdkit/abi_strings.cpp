// nbdkit_strdup_intern & co: strings that live until the calling connection ends (inside a
// connection) or until the plugin is unloaded (outside one), so plugins can return them
// from default_export/export_description without managing their lifetime.
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "plugins/nbdkit/abi_state.hpp"
#include "plugins/nbdkit/connection_table.hpp"
#include "plugins/nbdkit/nbdkit_headers.hpp"

namespace {

const char* intern(char* owned) {
  const char* kept = nbdd::plugin::nbdkit_abi::keep_interned(nbdd::plugin::nbdkit_abi::current_connection(), owned);
  if (kept == nullptr) {
    errno = ENOMEM;
    nbdkit_error("malloc: %m");
  }
  return kept;
}

}  // namespace

extern "C" {

NBDKIT_DLL_PUBLIC const char* nbdkit_strndup_intern(const char* str, size_t n) {
  if (str == nullptr) {
    nbdkit_error("nbdkit_strndup_intern: no string given");
    errno = EINVAL;
    return nullptr;
  }
  char* copy = ::strndup(str, n);
  if (copy == nullptr) {
    nbdkit_error("strndup: %m");
    return nullptr;
  }
  return intern(copy);
}

NBDKIT_DLL_PUBLIC const char* nbdkit_strdup_intern(const char* str) {
  if (str == nullptr) {
    nbdkit_error("nbdkit_strdup_intern: no string given");
    errno = EINVAL;
    return nullptr;
  }
  char* copy = ::strdup(str);
  if (copy == nullptr) {
    nbdkit_error("strdup: %m");
    return nullptr;
  }
  return intern(copy);
}

NBDKIT_DLL_PUBLIC const char* nbdkit_vprintf_intern(const char* fmt, va_list args) {
  char* str = nullptr;
  if (::vasprintf(&str, fmt, args) == -1) {
    nbdkit_error("asprintf: %m");
    return nullptr;
  }
  return intern(str);
}

NBDKIT_DLL_PUBLIC const char* nbdkit_printf_intern(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  const char* r = nbdkit_vprintf_intern(fmt, args);
  va_end(args);
  return r;
}

}  // extern "C"
