// nbdkit's parsing and path helpers: nbdkit_parse_* (numbers, sizes, booleans),
// nbdkit_absolute_path, nbdkit_realpath, nbdkit_read_password, nbdkit_stdio_safe. Same
// accepted syntax, results and error texts as nbdkit 1.32's server/public.c.
#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "plugins/nbdkit/abi_state.hpp"
#include "plugins/nbdkit/nbdkit_headers.hpp"

namespace {

bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

bool ascii_iequal(const char* a, const char* b) {
  for (; *a && *b; ++a, ++b) {
    char x = *a, y = *b;
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return *a == *b;
}

// strtol/strtoul (base 0: decimal, 0x hex, 0 octal) into T, range-checked, the whole string
// consumed. Unsigned types refuse a leading '-' (strtoul would wrap it).
template <typename T>
int parse_integer(const char* what, const char* str, T* out) {
  using Wide = std::conditional_t<std::is_signed_v<T>, long long, unsigned long long>;
  if constexpr (!std::is_signed_v<T>) {
    const char* p = str;
    while (ascii_space(*p)) ++p;
    if (*p == '-') {
      nbdkit_error("%s: negative numbers are not allowed", what);
      return -1;
    }
  }
  char* end = nullptr;
  errno = 0;
  Wide r;
  if constexpr (std::is_signed_v<T>) r = std::strtoll(str, &end, 0);
  else r = std::strtoull(str, &end, 0);
  if constexpr (std::is_signed_v<T>) {
    if (errno == 0 && (r < std::numeric_limits<T>::min() || r > std::numeric_limits<T>::max())) errno = ERANGE;
  } else {
    if (errno == 0 && r > std::numeric_limits<T>::max()) errno = ERANGE;
  }
  if (errno != 0) {
    nbdkit_error("%s: could not parse number: \"%s\": %m", what, str);
    return -1;
  }
  if (end == str) {
    nbdkit_error("%s: empty string where we expected a number", what);
    return -1;
  }
  if (*end != '\0') {
    nbdkit_error("%s: could not parse number: \"%s\": trailing garbage", what, str);
    return -1;
  }
  if (out != nullptr) *out = static_cast<T>(r);
  return 0;
}

// One line from fd (closed here), without its newline; EOF is an empty password.
int read_password_line(const char* what, int fd, char** password) {
  FILE* fp = ::fdopen(fd, "r");
  if (fp == nullptr) {
    nbdkit_error("fdopen %s: %m", what);
    ::close(fd);
    return -1;
  }
  std::size_t n = 0;
  errno = 0;
  const ssize_t r = ::getline(password, &n, fp);
  const int err = errno;
  std::fclose(fp);
  if (r == -1) {
    std::free(*password);
    *password = nullptr;
    if (err != 0) {
      errno = err;
      nbdkit_error("could not read password from %s: %m", what);
      return -1;
    }
    *password = ::strdup("");
    if (*password == nullptr) {
      nbdkit_error("strdup: %m");
      return -1;
    }
    return 0;
  }
  if (r > 0 && (*password)[r - 1] == '\n') (*password)[r - 1] = '\0';
  return 0;
}

int read_password_interactive(char** password) {
  if (!nbdd::plugin::nbdkit_abi::stdio_safe()) {
    nbdkit_error("stdin is not available for reading password");
    return -1;
  }
  if (!::isatty(STDIN_FILENO)) {
    nbdkit_error("stdin is not a tty, cannot read password interactively");
    return -1;
  }
  std::printf("password: ");
  std::fflush(stdout);
  termios saved{};
  ::tcgetattr(STDIN_FILENO, &saved);
  termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  std::size_t n = 0;
  errno = 0;
  const ssize_t r = ::getline(password, &n, stdin);
  const int err = errno;
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
  std::printf("\n");
  if (r == -1) {
    std::free(*password);
    *password = nullptr;
    if (err != 0) {
      errno = err;
      nbdkit_error("could not read password from stdin: %m");
      return -1;
    }
    *password = ::strdup("");
    if (*password == nullptr) {
      nbdkit_error("strdup: %m");
      return -1;
    }
    return 0;
  }
  if (r > 0 && (*password)[r - 1] == '\n') (*password)[r - 1] = '\0';
  return 0;
}

}  // namespace

extern "C" {

NBDKIT_DLL_PUBLIC int nbdkit_parse_int(const char* what, const char* str, int* r) { return parse_integer(what, str, r); }
NBDKIT_DLL_PUBLIC int nbdkit_parse_unsigned(const char* what, const char* str, unsigned* r) {
  return parse_integer(what, str, r);
}
NBDKIT_DLL_PUBLIC int nbdkit_parse_int8_t(const char* what, const char* str, int8_t* r) {
  return parse_integer(what, str, r);
}
NBDKIT_DLL_PUBLIC int nbdkit_parse_uint8_t(const char* what, const char* str, uint8_t* r) {
  return parse_integer(what, str, r);
}
NBDKIT_DLL_PUBLIC int nbdkit_parse_int16_t(const char* what, const char* str, int16_t* r) {
  return parse_integer(what, str, r);
}
NBDKIT_DLL_PUBLIC int nbdkit_parse_uint16_t(const char* what, const char* str, uint16_t* r) {
  return parse_integer(what, str, r);
}
NBDKIT_DLL_PUBLIC int nbdkit_parse_int32_t(const char* what, const char* str, int32_t* r) {
  return parse_integer(what, str, r);
}
NBDKIT_DLL_PUBLIC int nbdkit_parse_uint32_t(const char* what, const char* str, uint32_t* r) {
  return parse_integer(what, str, r);
}
NBDKIT_DLL_PUBLIC int nbdkit_parse_int64_t(const char* what, const char* str, int64_t* r) {
  return parse_integer(what, str, r);
}
NBDKIT_DLL_PUBLIC int nbdkit_parse_uint64_t(const char* what, const char* str, uint64_t* r) {
  return parse_integer(what, str, r);
}

// Decimal digits, then at most one suffix: b/B (bytes), s/S (512-byte sectors), or
// k, m, g, t, p, e (powers of 1024, either case). Result within 0..INT64_MAX.
NBDKIT_DLL_PUBLIC int64_t nbdkit_parse_size(const char* str) {
  char* end = nullptr;
  errno = 0;
  const intmax_t size = std::strtoimax(str, &end, 10);
  if (end == str) {
    nbdkit_error("could not parse size string (%s)", str);
    return -1;
  }
  if (size < 0) {
    nbdkit_error("size cannot be negative (%s)", str);
    return -1;
  }
  if (errno != 0) {
    nbdkit_error("size (%s) exceeds maximum value", str);
    return -1;
  }
  uint64_t scale = 1;
  if (*end != '\0') {
    switch (*end) {
      case 'e': case 'E': scale = 1ull << 60; break;
      case 'p': case 'P': scale = 1ull << 50; break;
      case 't': case 'T': scale = 1ull << 40; break;
      case 'g': case 'G': scale = 1ull << 30; break;
      case 'm': case 'M': scale = 1ull << 20; break;
      case 'k': case 'K': scale = 1ull << 10; break;
      case 'b': case 'B': scale = 1; break;
      case 's': case 'S': scale = 512; break;
      default:
        nbdkit_error("could not parse size: unknown suffix '%s'", end);
        return -1;
    }
    if (end[1] != '\0') {
      nbdkit_error("could not parse size: unknown suffix '%s'", end);
      return -1;
    }
  }
  if (static_cast<uint64_t>(INT64_MAX) / scale < static_cast<uint64_t>(size)) {
    nbdkit_error("overflow computing size (%s)", str);
    return -1;
  }
  return static_cast<int64_t>(static_cast<uint64_t>(size) * scale);
}

NBDKIT_DLL_PUBLIC int nbdkit_parse_bool(const char* str) {
  for (const char* yes : {"1", "true", "t", "yes", "y", "on"})
    if (ascii_iequal(str, yes)) return 1;
  for (const char* no : {"0", "false", "f", "no", "n", "off"})
    if (ascii_iequal(str, no)) return 0;
  nbdkit_error("could not decipher boolean (%s)", str);
  return -1;
}

NBDKIT_DLL_PUBLIC char* nbdkit_absolute_path(const char* path) {
  if (path == nullptr || *path == '\0') {
    nbdkit_error("cannot convert null or empty path to an absolute path");
    return nullptr;
  }
  if (*path == '/') {
    char* copy = ::strdup(path);
    if (copy == nullptr) nbdkit_error("strdup: %m");
    return copy;
  }
  char* cwd = ::getcwd(nullptr, 0);
  if (cwd == nullptr) {
    nbdkit_error("get_current_dir_name: %m");
    return nullptr;
  }
  char* out = nullptr;
  const int r = ::asprintf(&out, "%s/%s", cwd, path);
  std::free(cwd);
  if (r == -1) {
    nbdkit_error("asprintf: %m");
    return nullptr;
  }
  return out;
}

NBDKIT_DLL_PUBLIC char* nbdkit_realpath(const char* path) {
  if (path == nullptr || *path == '\0') {
    nbdkit_error("cannot resolve a null or empty path");
    return nullptr;
  }
  char* out = ::realpath(path, nullptr);
  if (out == nullptr) nbdkit_error("realpath: %s: %m", path);
  return out;
}

// "-": interactively from stdin; "-FD": one line from that file descriptor (then closed);
// "+FILE": one line from the file; anything else is the password itself.
NBDKIT_DLL_PUBLIC int nbdkit_read_password(const char* value, char** password) {
  *password = nullptr;
  if (std::strcmp(value, "-") == 0) return read_password_interactive(password);
  if (value[0] == '-') {
    int fd = -1;
    if (nbdkit_parse_int("password file descriptor", &value[1], &fd) == -1) return -1;
    if (fd == STDIN_FILENO || fd == STDOUT_FILENO || fd == STDERR_FILENO) {
      nbdkit_error("cannot use password -FD for stdin/stdout/stderr");
      return -1;
    }
    return read_password_line(&value[1], fd, password);
  }
  if (value[0] == '+') {
    const int fd = ::open(&value[1], O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
      nbdkit_error("open %s: %m", &value[1]);
      return -1;
    }
    return read_password_line(&value[1], fd, password);
  }
  *password = ::strdup(value);
  if (*password == nullptr) {
    nbdkit_error("strdup: %m");
    return -1;
  }
  return 0;
}

NBDKIT_DLL_PUBLIC int nbdkit_stdio_safe(void) { return nbdd::plugin::nbdkit_abi::stdio_safe() ? 1 : 0; }

}  // extern "C"
