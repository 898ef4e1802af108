// sim::Prng: the simulator's only source of randomness.
//
// Rules (docs/simulator.md, architecture §2): integer API only, no <random> distributions
// (their output is implementation-defined), no floats in decisions. Seeding uses SplitMix64,
// the generator is xoshiro256** (Blackman & Vigna). Each component forks its own Prng at
// setup so that an extra draw in one component does not reshuffle the others.
//
// Tape mode (Prng(ChoiceTape&), architecture §3.3 way 2): every draw takes the next word of a
// sim::ChoiceTape instead (0 once the tape is exhausted), and fork() hands out a Prng on the
// same tape, so the whole world consumes one tape in its (deterministic) draw order. The mode
// is one predictable branch per draw rather than a virtual call. Tape semantics, chosen so
// that a smaller word is a simpler choice: below(n) = w % n, chance(num/den) = w % den >=
// den - num (0: false), coin() = w & 1, fill() expands one draw with SplitMix64.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>

#include "sim/entropy.hpp"

namespace nbdd::sim {

// A probability as an exact fraction; chance(Ratio{1, 50}) is true 1 time in 50.
struct Ratio {
  std::uint32_t numerator = 0;
  std::uint32_t denominator = 1;
  static constexpr Ratio never() { return {0, 1}; }
  static constexpr Ratio always() { return {1, 1}; }
};

inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// fill()'s table: 32 KiB of SplitMix64 words, the same in every run and process.
inline constexpr std::size_t fill_words = 4096;
inline const std::uint64_t* fill_table() {
  struct Table {
    std::uint64_t words[fill_words];
    Table() {
      std::uint64_t state = 0x2545f4914f6cdd1dull;
      for (auto& w : words) w = splitmix64(state);
    }
  };
  static const Table table;
  return table.words;
}

class Prng {
 public:
  explicit Prng(std::uint64_t seed) {
    std::uint64_t sm = seed;
    for (auto& word : s_) word = splitmix64(sm);
  }
  explicit Prng(ChoiceTape& tape) : tape_(&tape) {}

  // Seeded, recording every draw on `recorder` (ChoiceTape::start_recording).
  Prng(std::uint64_t seed, ChoiceTape* recorder) : Prng(seed) { tape_ = recorder; }
  bool tape_mode() const { return tape_ != nullptr; }
  // The tape paths are out of line (tape_next() ...), so the seeded paths inline at every
  // draw site (the simulator draws a few hundred times per request). always_inline: with
  // link-time optimization GCC otherwise keeps below(), chance(), coin() and
  // range_inclusive() as calls (2.4% more instructions in a sweep).
  [[gnu::always_inline]] std::uint64_t next() {
    if (tape_) [[unlikely]]
      return tape_next();
    return step();
  }
  // Uniform in [0, n); n > 0. Lemire's multiply-shift with rejection (exact, no bias).
  [[gnu::always_inline]] std::uint64_t below(std::uint64_t n) {
    if (n <= 1) return 0;
    if (tape_) [[unlikely]]
      return tape_below(n);
    return uniform(n);
  }
  // Uniform in [lo, hi].
  [[gnu::always_inline]] std::uint64_t range_inclusive(std::uint64_t lo, std::uint64_t hi) {
    if (hi <= lo) return lo;
    if (lo == 0 && hi == ~0ull) return next();
    return lo + below(hi - lo + 1);
  }
  [[gnu::always_inline]] bool chance(Ratio r) {
    if (r.numerator == 0 || r.denominator == 0) return false;
    if (r.numerator >= r.denominator) return true;
    if (tape_) [[unlikely]]
      return tape_chance(r);
    return uniform(r.denominator) < r.numerator;
  }
  [[gnu::always_inline]] bool coin() {
    if (tape_) [[unlikely]]
      return tape_coin();
    return (step() >> 63) != 0;
  }
  // Random bytes (write payloads): one draw picks a starting word in a fixed table of random
  // words and a key; the bytes are the table's words from there on (wrapping) XORed with the
  // key — a load and an XOR per 8 bytes. Payloads only need to differ from one another (and
  // along themselves) for the read oracle, not to be strong: two writes share bytes only if
  // both their key and their start agree.
  void fill(std::span<std::byte> out) {
    const std::uint64_t draw = next() ^ 0x6a09e667f3bcc909ull;  // a tape's 0 still gives nonzero bytes
    std::uint64_t mix = draw;
    const std::uint64_t key = splitmix64(mix);
    const std::uint64_t* table = fill_table();
    std::size_t pos = static_cast<std::size_t>(draw >> 40) & (fill_words - 1);
    std::size_t i = 0;
    while (out.size() - i >= 8) {
      const std::size_t n = std::min<std::size_t>((out.size() - i) / 8, fill_words - pos);
      std::byte* to = out.data() + i;
      const std::uint64_t* from = table + pos;
      std::size_t k = 0;
      // Four words a step as one vector (GCC/Clang vector extension: two SSE2 XORs on
      // x86-64's baseline instead of four loads, XORs and stores); the same bytes.
      using Words4 = std::uint64_t __attribute__((vector_size(32)));
      const Words4 keys = {key, key, key, key};
      for (; k + 4 <= n; k += 4) {
        Words4 w;
        std::memcpy(&w, from + k, sizeof w);
        w ^= keys;
        std::memcpy(to + 8 * k, &w, sizeof w);
      }
      for (; k < n; ++k) {
        const std::uint64_t w = from[k] ^ key;
        std::memcpy(to + 8 * k, &w, 8);
      }
      i += 8 * n;
      pos = (pos + n) & (fill_words - 1);
    }
    if (i < out.size()) {
      const std::uint64_t w = table[pos] ^ key;
      std::memcpy(out.data() + i, &w, out.size() - i);
    }
  }
  template <typename T>
  const T& pick(std::span<const T> items) {
    return items[below(items.size())];
  }
  template <typename T>
  void shuffle(std::span<T> items) {
    for (std::size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
  }
  // A child generator; the parent advances by exactly one draw.
  // Tape mode: another Prng on the same tape (no draw).
  Prng fork() {
    if (tape_) [[unlikely]]
      return tape_->recording() ? Prng(step(), tape_) : Prng(*tape_);
    return Prng(step());
  }

 private:
  [[gnu::noinline]] std::uint64_t tape_next() {
    if (!tape_->recording()) return tape_->draw();
    const auto w = static_cast<std::uint32_t>(step());
    tape_->record(w);
    return w;
  }
  [[gnu::noinline]] std::uint64_t tape_below(std::uint64_t n) {
    if (!tape_->recording()) return tape_->draw() % n;
    const auto w = static_cast<std::uint32_t>(uniform(n));
    tape_->record(w);
    return w % n;
  }
  [[gnu::noinline]] bool tape_chance(Ratio r) {
    if (!tape_->recording()) return tape_->draw() % r.denominator >= r.denominator - r.numerator;
    const bool yes = uniform(r.denominator) < r.numerator;
    tape_->record(yes ? r.denominator - 1 : 0);
    return yes;
  }
  [[gnu::noinline]] bool tape_coin() {
    if (!tape_->recording()) return (tape_->draw() & 1) != 0;
    const bool yes = (step() >> 63) != 0;
    tape_->record(yes ? 1 : 0);
    return yes;
  }
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  // xoshiro256**: the seeded generator's next word.
  [[gnu::always_inline]] std::uint64_t step() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n), n > 1, from the seeded generator: Lemire's multiply-shift with
  // rejection (exact, no bias).
  [[gnu::always_inline]] std::uint64_t uniform(std::uint64_t n) {
    for (;;) {
      const unsigned __int128 m = static_cast<unsigned __int128>(step()) * n;
      const auto low = static_cast<std::uint64_t>(m);
      if (low >= n || low >= (0 - n) % n) return static_cast<std::uint64_t>(m >> 64);
    }
  }
  std::uint64_t s_[4] = {};
  ChoiceTape* tape_ = nullptr;
};

}  // namespace nbdd::sim
