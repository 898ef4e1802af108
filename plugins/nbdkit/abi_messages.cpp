// nbdkit_error, nbdkit_debug (and their va_list forms), nbdkit_set_error.
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <string>

#include "plugins/nbdkit/abi_state.hpp"
#include "plugins/nbdkit/nbdkit_headers.hpp"

namespace {

// vsnprintf into a string. errno is left as the caller had it: %m must print the plugin's
// errno, and a plugin that preserves errno calls nbdkit_error just before returning -1.
std::string format(const char* fmt, va_list args) {
  const int saved = errno;
  char small[256];
  va_list copy;
  va_copy(copy, args);
  const int n = std::vsnprintf(small, sizeof small, fmt, copy);
  va_end(copy);
  if (n < 0) return fmt;
  if (static_cast<std::size_t>(n) < sizeof small) return std::string(small, static_cast<std::size_t>(n));
  std::string out(static_cast<std::size_t>(n) + 1, '\0');
  errno = saved;  // for %m, in case the first pass changed it
  std::vsnprintf(out.data(), out.size(), fmt, args);
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace

extern "C" {

NBDKIT_DLL_PUBLIC void nbdkit_verror(const char* fmt, va_list args) {
  const int saved = errno;
  nbdd::plugin::nbdkit_abi::report_error(format(fmt, args));
  errno = saved;
}

NBDKIT_DLL_PUBLIC void nbdkit_error(const char* fmt, ...) {
  const int saved = errno;
  va_list args;
  va_start(args, fmt);
  std::string message = format(fmt, args);
  va_end(args);
  nbdd::plugin::nbdkit_abi::report_error(message);
  errno = saved;
}

NBDKIT_DLL_PUBLIC void nbdkit_vdebug(const char* fmt, va_list args) {
  const int saved = errno;
  nbdd::plugin::nbdkit_abi::report_debug(format(fmt, args));
  errno = saved;
}

NBDKIT_DLL_PUBLIC void nbdkit_debug(const char* fmt, ...) {
  const int saved = errno;
  va_list args;
  va_start(args, fmt);
  std::string message = format(fmt, args);
  va_end(args);
  nbdd::plugin::nbdkit_abi::report_debug(message);
  errno = saved;
}

NBDKIT_DLL_PUBLIC void nbdkit_set_error(int err) { nbdd::plugin::nbdkit_abi::thread_set_error() = err; }

}  // extern "C"
