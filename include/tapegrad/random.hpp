// The one random generator: seeded, and the same numbers on every platform and standard
// library. std::mt19937_64's sequence is fixed by the C++ standard; the distributions of
// <random> are not (std::uniform_real_distribution differs between libstdc++ and libc++), so
// every conversion from raw bits to a number is written here.
//
//   Rng rng(seed);
//   double u = rng.uniform(-1, 1);        // 53 random bits, [lo, hi)
//   std::uint64_t i = rng.below(10);      // unbiased integer in [0, 10)
//   rng.shuffle(order);                   // Fisher-Yates with below()
//   std::string s = rng.state();          // text; Rng::from_state(s) continues the sequence
//   Rng child(Rng::derive(seed, 3));      // an independent stream for another purpose
#pragma once

#include <cstdint>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

class Rng {
 public:
  explicit Rng(std::uint64_t seed = 1) : engine_(seed) {}

  std::uint64_t next() { return engine_(); }

  // Uniform double in [lo, hi) from the top 53 bits of one draw.
  double uniform(double lo, double hi) {
    const double u = static_cast<double>(next() >> 11) * 0x1.0p-53;
    return lo + (hi - lo) * u;
  }

  // Unbiased integer in [0, n), n > 0: Lemire's multiply-and-reject (no modulo bias).
  std::uint64_t below(std::uint64_t n) {
    if (n == 0) throw std::invalid_argument("Rng::below: n must be positive");
    const std::uint64_t threshold = (0 - n) % n;  // 2^64 mod n
    for (;;) {
      const unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
      if (static_cast<std::uint64_t>(m) >= threshold) return static_cast<std::uint64_t>(m >> 64);
    }
  }

  // Fisher-Yates: every permutation equally likely, the same one for the same state.
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (std::size_t i = v.size(); i > 1; --i) {
      const auto j = static_cast<std::size_t>(below(i));
      std::swap(v[i - 1], v[j]);
    }
  }

  // The engine's state as text (the standard's format: 312 words), and back.
  std::string state() const {
    std::ostringstream os;
    os << engine_;
    return os.str();
  }
  static Rng from_state(const std::string& s) {
    Rng r;
    std::istringstream is(s);
    is >> r.engine_;
    if (is.fail()) throw std::invalid_argument("Rng: malformed generator state");
    return r;
  }

  // A seed for an independent stream `stream` of `seed` (splitmix64 finalizer of both).
  static std::uint64_t derive(std::uint64_t seed, std::uint64_t stream) {
    std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + stream + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  bool operator==(const Rng& o) const { return engine_ == o.engine_; }

 private:
  std::mt19937_64 engine_;
};

// A tensor of independent uniform [lo, hi) values, row-major draw order, rounded once to T.
template <class T>
Tensor<T> uniform_tensor(const Shape& shape, Rng& rng, double lo, double hi) {
  Tensor<T> t(shape);
  for (T& e : t) e = static_cast<T>(rng.uniform(lo, hi));
  return t;
}

}  // namespace tapegrad
