// sim::Trace: every record of a run feeds a 64-bit FNV-1a hash (the determinism check
// compares it across two runs of one seed); the last `tail_records` are kept for the failure
// report; --trace=full prints every record as it happens. Records use core's describe()
// printers, so they read like the daemon's -v log.
#pragma once
#include <cstdint>
#include <cstdio>
#include <deque>
#include <string>

#include "core/time.hpp"

namespace nbdd::sim {

std::string format_time(core::Instant at);  // "41.002317ms"

class Trace {
 public:
  explicit Trace(bool full = false, std::FILE* out = stdout) : full_(full), out_(out) {}
  void record(core::Instant at, std::uint64_t conn, const char* kind, const std::string& text);
  std::uint64_t hash() const { return hash_; }
  std::uint64_t records() const { return records_; }
  void print_tail(std::FILE* out, std::size_t n) const;
  void set_tail(std::size_t n) { tail_max_ = n; }

 private:
  void mix(const void* data, std::size_t n);
  bool full_;
  std::FILE* out_;
  std::uint64_t hash_ = 0xcbf29ce484222325ull;
  std::uint64_t records_ = 0;
  std::size_t tail_max_ = 40;
  struct Rec {
    core::Instant at;
    std::uint64_t conn;
    const char* kind;
    std::string text;
  };
  std::deque<Rec> tail_;
};

}  // namespace nbdd::sim
