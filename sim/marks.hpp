// Coverage marks (TigerBeetle marks.zig / FoundationDB CODE_PROBE): named situations the
// invariant checker and the world count as they see them. A sweep asserts that every name in
// required_marks() was hit at least once, so a refactor that makes the simulator stop reaching
// a race is noticed.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <unordered_map>

namespace nbdd::sim {

class Marks {
 public:
  // Names are string literals: counted by address on the hot path (no string built, no
  // allocation once a name was seen), merged by text when read.
  void hit(const char* name) { ++by_address_[name]; }
  std::uint64_t count(const std::string& name) const {
    const auto& m = all();
    auto it = m.find(name);
    return it == m.end() ? 0 : it->second;
  }
  void merge(const Marks& other) {
    for (const auto& [name, n] : other.by_address_) by_address_[name] += n;
  }
  // By name, ordered: printing is deterministic.
  const std::map<std::string, std::uint64_t>& all() const {
    by_name_.clear();
    for (const auto& [name, n] : by_address_) by_name_[name] += n;
    return by_name_;
  }

 private:
  std::unordered_map<const char*, std::uint64_t> by_address_;
  mutable std::map<std::string, std::uint64_t> by_name_;
};

// Every mark a healthy sweep must hit.
std::span<const char* const> required_marks();

}  // namespace nbdd::sim
