// Coverage marks (TigerBeetle marks.zig / FoundationDB CODE_PROBE): named situations the
// invariant checker and the world count as they see them. A sweep asserts that every name in
// required_marks() was hit at least once, so a refactor that makes the simulator stop reaching
// a race is noticed.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace nbdd::sim {

class Marks {
 public:
  // Names are string literals: counted by address on the hot path in a small open-addressed
  // table (no string built, no allocation once the table has grown), merged by text when read.
  void hit(const char* name) {
    if (!off_) ++slot(name).count;
  }
  // A world that only replays for its trace hash (WorldOptions::replay_only) counts nothing.
  void turn_off() { off_ = true; }
  std::uint64_t count(const std::string& name) const {
    const auto& m = all();
    auto it = m.find(name);
    return it == m.end() ? 0 : it->second;
  }
  // Only the entries in use are visited (a world hits a few dozen names of a 256-entry table,
  // and every world's marks are merged twice).
  void merge(const Marks& other) {
    for (const std::uint32_t i : other.used_at_) {
      const Entry& e = other.table_[i];
      slot(e.name).count += e.count;
    }
  }
  // By name, ordered: printing is deterministic.
  const std::map<std::string, std::uint64_t>& all() const {
    by_name_.clear();
    for (const std::uint32_t i : used_at_) by_name_[table_[i].name] += table_[i].count;
    return by_name_;
  }

 private:
  struct Entry {
    const char* name = nullptr;
    std::uint64_t count = 0;
  };
  // The hot path (a name already counted) inline; taking a new entry out of line.
  Entry& slot(const char* name) {
    if (table_.empty()) return take(name, 0);
    const std::size_t mask = table_.size() - 1;
    for (std::size_t i = index(name, mask);; i = (i + 1) & mask) {
      Entry& e = table_[i];
      if (e.name == name) return e;
      if (!e.name) return take(name, i);
    }
  }
  // `name` is new and table_[free_at] is where its probe ended, unless the table must grow
  // first (then the probe is made again in the new table).
  [[gnu::noinline]] Entry& take(const char* name, std::size_t free_at) {
    if ((used_at_.size() + 1) * 2 > table_.size()) {
      grow();
      return slot(name);
    }
    used_at_.push_back(static_cast<std::uint32_t>(free_at));
    table_[free_at].name = name;
    return table_[free_at];
  }
  static std::size_t index(const char* name, std::size_t mask) {
    return static_cast<std::size_t>((reinterpret_cast<std::uintptr_t>(name) * 0x9e3779b97f4a7c15ull) >> 40) & mask;
  }
  void grow() {
    std::vector<Entry> old = std::move(table_);
    table_.assign(old.empty() ? 256 : old.size() * 2, Entry{});
    used_at_.clear();
    for (const Entry& e : old)
      if (e.name) slot(e.name).count = e.count;
  }
  std::vector<Entry> table_;  // size a power of two, at most half full
  std::vector<std::uint32_t> used_at_;  // indexes of the entries in use, in the order they were taken
  bool off_ = false;
  mutable std::map<std::string, std::uint64_t> by_name_;
};

// Every mark a healthy sweep must hit.
std::span<const char* const> required_marks();

}  // namespace nbdd::sim
