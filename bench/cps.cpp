// Connections per second against one NBD server on a Unix socket (bench/cps.py runs it).
//
//   cps SOCKET SECONDS CLIENTS
//
// CLIENTS threads each loop until SECONDS have passed: connect; read the greeting; send the
// client flags and NBD_OPT_GO for the default export ("") in one write; read the option
// replies up to NBD_REP_ACK; NBD_CMD_READ 4 KiB at offset 0 and its simple reply; NBD_CMD_DISC;
// wait for the server to close the socket (so the server's teardown of a connection is in the
// figure and the backlog stays bounded); close. One line on stdout:
//   connections=N errors=E seconds=S
// Blocking sockets, no libnbd: the client's own cost per connection is a few syscalls, so the
// figure is the server's. Any error counts and the thread goes on with a new connection.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::uint64_t ihaveopt = 0x49484156454F5054ull;
constexpr std::uint64_t opt_reply_magic = 0x3e889045565a9ull;
constexpr std::uint32_t request_magic = 0x25609513, simple_reply_magic = 0x67446698;
constexpr std::uint32_t opt_go = 7, rep_ack = 1;
constexpr std::uint16_t cmd_read = 0, cmd_disc = 2;
constexpr std::uint32_t read_bytes = 4096;

void put(std::uint8_t*& p, std::uint64_t x, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) *p++ = static_cast<std::uint8_t>(x >> (8 * i));
}
std::uint64_t get(const std::uint8_t* p, int bytes) {
  std::uint64_t x = 0;
  for (int i = 0; i < bytes; ++i) x = (x << 8) | p[i];
  return x;
}

bool read_exact(int fd, void* buf, std::size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}
bool write_all(int fd, const void* buf, std::size_t n) {
  return ::send(fd, buf, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n);  // small: one send
}

// One connection, start to end. False on any protocol or socket error.
bool one_connection(const sockaddr_un& addr, std::vector<std::uint8_t>& data) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return false;
  std::uint8_t greeting[18];
  if (!read_exact(fd, greeting, sizeof greeting) || get(greeting + 8, 8) != ihaveopt) return false;
  const bool no_zeroes = (get(greeting + 16, 2) & 2) != 0;
  std::uint8_t out[64];
  std::uint8_t* p = out;
  put(p, no_zeroes ? 3 : 1, 4);  // fixed newstyle [+ no zeroes]
  put(p, ihaveopt, 8);
  put(p, opt_go, 4);
  put(p, 6, 4);  // option length: name length (0) + number of info requests (0)
  put(p, 0, 4);
  put(p, 0, 2);
  if (!write_all(fd, out, static_cast<std::size_t>(p - out))) return false;
  for (;;) {
    std::uint8_t h[20];
    if (!read_exact(fd, h, sizeof h) || get(h, 8) != opt_reply_magic) return false;
    const auto type = static_cast<std::uint32_t>(get(h + 12, 4));
    const auto length = static_cast<std::uint32_t>(get(h + 16, 4));
    if (length > data.size() || !read_exact(fd, data.data(), length)) return false;
    if (type & 0x80000000u) return false;
    if (type == rep_ack) break;
  }
  for (std::uint16_t command : {cmd_read, cmd_disc}) {
    p = out;
    put(p, request_magic, 4);
    put(p, 0, 2);
    put(p, command, 2);
    put(p, command == cmd_read ? 1 : 2, 8);  // cookie
    put(p, 0, 8);                            // offset
    put(p, command == cmd_read ? read_bytes : 0, 4);
    if (!write_all(fd, out, static_cast<std::size_t>(p - out))) return false;
    if (command == cmd_disc) break;
    std::uint8_t h[16];
    if (!read_exact(fd, h, sizeof h) || get(h, 4) != simple_reply_magic || get(h + 4, 4) != 0) return false;
    if (!read_exact(fd, data.data(), read_bytes)) return false;
  }
  char byte;
  return ::read(fd, &byte, 1) == 0;  // the server closed after DISC
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: cps SOCKET SECONDS CLIENTS\n");
    return 2;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (std::strlen(argv[1]) >= sizeof addr.sun_path) {
    std::fprintf(stderr, "cps: socket path too long\n");
    return 2;
  }
  std::strcpy(addr.sun_path, argv[1]);
  const double seconds = std::atof(argv[2]);
  const int clients = std::atoi(argv[3]);
  if (seconds <= 0 || clients <= 0) {
    std::fprintf(stderr, "cps: bad SECONDS or CLIENTS\n");
    return 2;
  }
  std::atomic<std::uint64_t> done{0}, errors{0};
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i)
    threads.emplace_back([&] {
      std::vector<std::uint8_t> data(64 * 1024);  // option replies are far smaller
      std::uint64_t ok = 0, bad = 0;
      while (std::chrono::steady_clock::now() < end) (one_connection(addr, data) ? ok : bad)++;
      done += ok;
      errors += bad;
    });
  for (auto& t : threads) t.join();
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("connections=%llu errors=%llu seconds=%.3f\n", static_cast<unsigned long long>(done.load()),
              static_cast<unsigned long long>(errors.load()), took);
  return 0;
}
