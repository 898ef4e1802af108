// RAII over a libnbd handle, with failures reported as strings for gtest messages.
#pragma once
#include <libnbd.h>

#include <cstdint>
#include <string>

namespace nbdd::itest {

// Polls until the command `cookie` (from nbd_aio_*) completes: 0, the errno of the failed
// command, or -2 when the connection died without a reply to it.
inline int wait_command(nbd_handle* h, std::int64_t cookie) {
  for (;;) {
    const int done = nbd_aio_command_completed(h, static_cast<std::uint64_t>(cookie));
    if (done == 1) return 0;
    if (done == -1) return nbd_get_errno() ? nbd_get_errno() : -1;
    if (nbd_poll(h, 20000) <= 0 && nbd_aio_is_dead(h)) return -2;
  }
}

class Nbd {
 public:
  Nbd() : h_(nbd_create()) {}
  ~Nbd() {
    if (h_) nbd_close(h_);
  }
  Nbd(const Nbd&) = delete;
  Nbd& operator=(const Nbd&) = delete;
  nbd_handle* get() const { return h_; }
  operator nbd_handle*() const { return h_; }
  static std::string error() {
    const char* e = nbd_get_error();
    return e ? e : "(no libnbd error)";
  }

 private:
  nbd_handle* h_;
};

}  // namespace nbdd::itest
