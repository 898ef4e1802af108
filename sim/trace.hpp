// sim::Trace: every record of a run feeds a 64-bit hash (the determinism check compares it
// across two runs of one seed); the last `tail_records` are kept for the failure report;
// --trace=full prints every record as it happens.
//
// Records are compact and binary: an Input, Action or ServerAction is hashed field by field
// (time, connection, kind, alternative, every scalar field; never a pointer) and only copied
// into the tail ring; text is formatted with core's describe() printers — so it reads like the
// daemon's -v log — only for the tail report and --trace=full. Rare records (client connects,
// server lifecycle, scenario steps) are plain text, hashed byte by byte.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "core/action.hpp"
#include "core/input.hpp"
#include "core/server_state.hpp"
#include "core/time.hpp"

namespace nbdd::sim {

std::string format_time(core::Instant at);  // "41.002317ms"

// What a plugin callback returned and asked for (a "plg" record).
struct PluginReturn {
  std::int32_t err = 0;
  bool disconnect = false, force = false, shutdown = false;
};

// A record's kind is a string literal of exactly three characters ("in ", "act", "srv",
// "plg", "cli", "stp").
class Trace {
 public:
  // tail: how many records to keep for print_tail(); 0 keeps none (the hash only).
  explicit Trace(bool full = false, std::FILE* out = stdout, std::size_t tail = 40);
  void record(core::Instant at, std::uint64_t conn, const char* kind, std::string_view text);
  void record(core::Instant at, std::uint64_t conn, const char* kind, const core::Input& in);
  void record(core::Instant at, std::uint64_t conn, const char* kind, const core::Action& act);
  void record(core::Instant at, std::uint64_t conn, const char* kind, const core::ServerAction& act);
  void record(core::Instant at, std::uint64_t conn, const char* kind, const PluginReturn& ret);
  std::uint64_t hash() const { return hash_; }
  std::uint64_t records() const { return records_; }
  void print_tail(std::FILE* out, std::size_t n) const;
  void set_tail(std::size_t n);

 private:
  enum class Type : std::uint8_t { text, input, action, server, plugin };
  struct Rec {
    core::Instant at{};
    std::uint64_t conn = 0;
    const char* kind = "";
    Type type = Type::text;
    core::Input in;
    core::Action act;
    core::ServerAction srv;
    PluginReturn ret;
    std::string text;  // text records; the export name of an open CallPlugin
  };
  void mix(std::uint64_t w) {
    hash_ = (hash_ ^ w) * 0x100000001b3ull;
    hash_ ^= hash_ >> 29;
  }
  void mix_bytes(const void* data, std::size_t n);
  void head(core::Instant at, std::uint64_t conn, const char* kind, Type type, std::uint64_t alt);
  Rec& push(core::Instant at, std::uint64_t conn, const char* kind, Type type);
  void emit(const Rec& r) const;
  static std::string text_of(const Rec& r);
  void print_rec(std::FILE* out, const Rec& r) const;

  bool full_;
  std::FILE* out_;
  std::uint64_t hash_ = 0xcbf29ce484222325ull;
  std::uint64_t records_ = 0;
  std::vector<Rec> ring_;  // the last ring_.size() records, oldest at ring_pos_ once full (may be empty)
  std::size_t ring_pos_ = 0;
};

}  // namespace nbdd::sim
