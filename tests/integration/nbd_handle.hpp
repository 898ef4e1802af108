// RAII over a libnbd handle, with failures reported as strings for gtest messages.
#pragma once
#include <libnbd.h>

#include <string>

namespace nbdd::itest {

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
