// A tiny blocking NBD client over a raw socket, for driver tests and bad-input tests.
// Every read has a timeout so a broken server fails the test instead of hanging it.
// Numbers follow nbd-protocol.md (fixed newstyle, simple replies).
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace nbdd::testing {

namespace nbdc {
inline constexpr std::uint64_t nbdmagic = 0x4e42444d41474943ull;   // NBDMAGIC
inline constexpr std::uint64_t ihaveopt = 0x49484156454F5054ull;   // IHAVEOPT
inline constexpr std::uint64_t opt_reply_magic = 0x3e889045565a9ull;
inline constexpr std::uint32_t request_magic = 0x25609513;          // NBD_REQUEST_MAGIC
inline constexpr std::uint32_t simple_reply_magic = 0x67446698;     // NBD_SIMPLE_REPLY_MAGIC
inline constexpr std::uint32_t opt_export_name = 1, opt_abort = 2, opt_list = 3, opt_info = 6, opt_go = 7;
inline constexpr std::uint32_t rep_ack = 1, rep_server = 2, rep_info = 3;
inline constexpr std::uint32_t rep_err_unknown = 0x80000006u, rep_err_shutdown = 0x80000007u;
inline constexpr std::uint16_t flag_read_only = 1 << 1;
inline constexpr std::uint16_t cmd_read = 0, cmd_write = 1, cmd_disc = 2, cmd_flush = 3, cmd_trim = 4,
                               cmd_cache = 5, cmd_write_zeroes = 6;
inline constexpr std::uint32_t eshutdown = 108, einval = 22, eio = 5, eperm = 1, enospc = 28;
}  // namespace nbdc

// A TCP port on 127.0.0.1 that was free a moment ago (callers retry or accept the race).
inline std::uint16_t free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(fd);
  return ntohs(sa.sin_port);
}

class RawClient {
 public:
  RawClient() = default;
  ~RawClient() { close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  RawClient(RawClient&& o) noexcept : fd_(o.fd_), pipe_out_(o.pipe_out_) { o.fd_ = o.pipe_out_ = -1; }
  // Talk over two pipes (nbdd -s with stdin/stdout pipes): read from `in`, write to `out`.
  void adopt_pipes(int in, int out) {
    fd_ = in;
    pipe_out_ = out;
  }

  bool connect_unix(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    return ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  }
  bool connect_tcp(std::uint16_t port, const char* addr = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    ::inet_pton(AF_INET, addr, &sa.sin_addr);
    return ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    if (pipe_out_ >= 0) ::close(pipe_out_);
    fd_ = pipe_out_ = -1;
  }
  // Reset instead of FIN (SO_LINGER 0), for "vanishing client" tests.
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }
  int fd() const { return fd_; }

  bool write_all(const void* data, std::size_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = pipe_out_ >= 0 ? ::write(pipe_out_, p, n) : ::send(fd_, p, n, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    return true;
  }
  bool write_all(const std::vector<std::uint8_t>& v) { return write_all(v.data(), v.size()); }

  // false on EOF, error or timeout.
  bool read_exact(void* data, std::size_t n, int timeout_ms = 20000) {
    auto* p = static_cast<char*>(data);
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (n > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
      const ssize_t r = ::read(fd_, p, n);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      p += r;
      n -= static_cast<std::size_t>(r);
    }
    return true;
  }
  // True when the server closed the connection (EOF or reset) within the timeout,
  // discarding anything it still sends.
  bool wait_closed(int timeout_ms = 20000) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    char buf[4096];
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
      const ssize_t r = ::read(fd_, buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return true;
    }
  }

  static void put16(std::vector<std::uint8_t>& v, std::uint16_t x) {
    v.push_back(static_cast<std::uint8_t>(x >> 8));
    v.push_back(static_cast<std::uint8_t>(x));
  }
  static void put32(std::vector<std::uint8_t>& v, std::uint32_t x) {
    put16(v, static_cast<std::uint16_t>(x >> 16));
    put16(v, static_cast<std::uint16_t>(x));
  }
  static void put64(std::vector<std::uint8_t>& v, std::uint64_t x) {
    put32(v, static_cast<std::uint32_t>(x >> 32));
    put32(v, static_cast<std::uint32_t>(x));
  }
  static std::uint64_t get(const std::uint8_t* p, int bytes) {
    std::uint64_t x = 0;
    for (int i = 0; i < bytes; ++i) x = (x << 8) | p[i];
    return x;
  }

  // Greeting + client flags (fixed newstyle, no zeroes). False if the greeting is wrong.
  bool start_handshake() {
    std::uint8_t g[18];
    if (!read_exact(g, sizeof g)) return false;
    if (get(g, 8) != nbdc::nbdmagic || get(g + 8, 8) != nbdc::ihaveopt) return false;
    std::vector<std::uint8_t> flags;
    put32(flags, 3);
    return write_all(flags);
  }
  bool send_option(std::uint32_t option, const std::vector<std::uint8_t>& data) {
    std::vector<std::uint8_t> v;
    put64(v, nbdc::ihaveopt);
    put32(v, option);
    put32(v, static_cast<std::uint32_t>(data.size()));
    v.insert(v.end(), data.begin(), data.end());
    return write_all(v);
  }
  struct OptionReply {
    std::uint32_t option = 0, type = 0;
    std::vector<std::uint8_t> data;
  };
  std::optional<OptionReply> read_option_reply() {
    std::uint8_t h[20];
    if (!read_exact(h, sizeof h) || get(h, 8) != nbdc::opt_reply_magic) return std::nullopt;
    OptionReply r;
    r.option = static_cast<std::uint32_t>(get(h + 8, 4));
    r.type = static_cast<std::uint32_t>(get(h + 12, 4));
    r.data.resize(static_cast<std::size_t>(get(h + 16, 4)));
    if (!r.data.empty() && !read_exact(r.data.data(), r.data.size())) return std::nullopt;
    return r;
  }
  // Full handshake with NBD_OPT_GO. Returns the export size, or nullopt (with the error
  // reply type in last_option_error).
  std::optional<std::uint64_t> handshake(const std::string& export_name = "") {
    if (!start_handshake()) return std::nullopt;
    return go(export_name);
  }
  // After start_handshake: NBD_OPT_GO (or NBD_OPT_INFO) with no information requests.
  // Returns the export size from NBD_INFO_EXPORT, or nullopt (an error reply's type in
  // last_option_error, 0 if the connection failed).
  std::optional<std::uint64_t> go(const std::string& export_name, std::uint32_t option = nbdc::opt_go) {
    last_option_error = 0;
    std::vector<std::uint8_t> d;
    put32(d, static_cast<std::uint32_t>(export_name.size()));
    d.insert(d.end(), export_name.begin(), export_name.end());
    put16(d, 0);
    if (!send_option(option, d)) return std::nullopt;
    std::optional<std::uint64_t> size;
    for (;;) {
      auto r = read_option_reply();
      if (!r) return std::nullopt;
      if (r->type == nbdc::rep_ack) return size;
      if (r->type & 0x80000000u) {
        last_option_error = r->type;
        return std::nullopt;
      }
      if (r->type == nbdc::rep_info && r->data.size() >= 12 && get(r->data.data(), 2) == 0) {
        size = get(r->data.data() + 2, 8);
        eflags = static_cast<std::uint16_t>(get(r->data.data() + 10, 2));
      }
    }
  }
  std::optional<std::uint64_t> info(const std::string& export_name) { return go(export_name, nbdc::opt_info); }
  // After start_handshake: NBD_OPT_LIST. The names, or nullopt (an error reply's type in
  // last_option_error).
  std::optional<std::vector<std::string>> list() {
    last_option_error = 0;
    if (!send_option(nbdc::opt_list, {})) return std::nullopt;
    std::vector<std::string> names;
    for (;;) {
      auto r = read_option_reply();
      if (!r) return std::nullopt;
      if (r->type == nbdc::rep_ack) return names;
      if (r->type & 0x80000000u) {
        last_option_error = r->type;
        return std::nullopt;
      }
      if (r->type != nbdc::rep_server || r->data.size() < 4) return std::nullopt;
      const auto n = static_cast<std::size_t>(get(r->data.data(), 4));
      if (n > r->data.size() - 4) return std::nullopt;
      names.emplace_back(reinterpret_cast<const char*>(r->data.data()) + 4, n);
    }
  }

  bool send_request(std::uint16_t type, std::uint64_t cookie, std::uint64_t offset, std::uint32_t length,
                    const std::vector<std::uint8_t>& payload = {}, std::uint16_t flags = 0) {
    std::vector<std::uint8_t> v;
    put32(v, nbdc::request_magic);
    put16(v, flags);
    put16(v, type);
    put64(v, cookie);
    put64(v, offset);
    put32(v, length);
    v.insert(v.end(), payload.begin(), payload.end());
    return write_all(v);
  }
  struct Reply {
    std::uint32_t error = 0;
    std::uint64_t cookie = 0;
  };
  std::optional<Reply> read_reply(int timeout_ms = 20000) {
    std::uint8_t h[16];
    if (!read_exact(h, sizeof h, timeout_ms) || get(h, 4) != nbdc::simple_reply_magic) return std::nullopt;
    return Reply{static_cast<std::uint32_t>(get(h + 4, 4)), get(h + 8, 8)};
  }

  std::uint32_t last_option_error = 0;
  std::uint16_t eflags = 0;

 private:
  int fd_ = -1;
  int pipe_out_ = -1;
};

}  // namespace nbdd::testing
