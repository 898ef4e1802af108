// Coverage marks (TigerBeetle marks.zig / FoundationDB CODE_PROBE): named situations the
// invariant checker and the world count as they see them. A sweep asserts that every name in
// required_marks() was hit at least once, so a refactor that makes the simulator stop reaching
// a race is noticed.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>

namespace nbdd::sim {

class Marks {
 public:
  void hit(const char* name) { ++counts_[name]; }
  std::uint64_t count(const std::string& name) const {
    auto it = counts_.find(name);
    return it == counts_.end() ? 0 : it->second;
  }
  void merge(const Marks& other) {
    for (const auto& [name, n] : other.counts_) counts_[name] += n;
  }
  const std::map<std::string, std::uint64_t>& all() const { return counts_; }

 private:
  std::map<std::string, std::uint64_t> counts_;  // ordered: printing is deterministic
};

// Every mark a healthy sweep must hit.
std::span<const char* const> required_marks();

}  // namespace nbdd::sim
