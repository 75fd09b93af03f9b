// splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
// generators", OOPSLA 2014; Vigna's constants): the one integer mixer every
// seeded draw of muse-train derives from, so seeds and shuffles are the same
// with every standard library (std::shuffle and the std distributions are
// not).
#pragma once

#include <cstdint>
#include <initializer_list>

namespace muse::config {

// The splitmix64 output for state `x`: every bit of the input reaches every
// bit of the result, so consecutive keys give unrelated values.
inline uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The state step of the splitmix64 generator (its Weyl sequence).
inline constexpr uint64_t kSplitmix64Step = 0x9e3779b97f4a7c15ULL;

// A seed made of several values (seed, step, rank, ...): splitmix64 chained
// over them.
inline uint64_t mix_seed(std::initializer_list<uint64_t> values) {
  uint64_t h = 0;
  for (uint64_t v : values)
    h = splitmix64(h ^ v);
  return h;
}

}  // namespace muse::config
