// fma_peak: measures one core's fused multiply-add peak in float and double, the 100 % that
// bench/conv2d_peers.py states kernel speeds against. Runs 24 independent FMA chains (enough to
// hide the FMA latency on every x86 core with two FMA pipes) with the widest vectors the CPU
// has (AVX-512, else AVX2+FMA), on the calling thread only, and prints one JSON object:
//   {"isa": "avx512", "float_gflops": ..., "double_gflops": ...}
// Each figure is the best of five runs of about 0.2 s (a peak: the best run is the one least
// disturbed by other work on a shared machine).
#include <algorithm>
#include <chrono>
#include <cstdio>

namespace {

template <class T, int L>
struct Vec {
  typedef T type __attribute__((vector_size(L * sizeof(T))));
};

template <class T, int L>
[[gnu::always_inline]] inline T chains(long iters) {
  using V = typename Vec<T, L>::type;
  constexpr int chains = 24;
  V acc[chains];
  V a = V{} + T(1.0000001), b = V{} + T(-1e-7);
  for (int i = 0; i < chains; ++i) acc[i] = V{} + T(i);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < chains; ++i) acc[i] = acc[i] * a + b;
    asm volatile("" : "+x"(a));  // keeps the loop from being folded
  }
  V s = V{};
  for (int i = 0; i < chains; ++i) s += acc[i];
  return s[0];
}

[[gnu::target("avx512f,fma"), gnu::noinline]] float f32_avx512(long n) {
  return chains<float, 16>(n);
}
[[gnu::target("avx512f,fma"), gnu::noinline]] double f64_avx512(long n) {
  return chains<double, 8>(n);
}
[[gnu::target("avx2,fma"), gnu::noinline]] float f32_avx2(long n) { return chains<float, 8>(n); }
[[gnu::target("avx2,fma"), gnu::noinline]] double f64_avx2(long n) {
  return chains<double, 4>(n);
}

// Best GFLOP/s of five runs; flops_per_iter = 2 * 24 * lanes.
template <class F>
double best_gflops(F f, double flops_per_iter) {
  long iters = 1 << 20;
  double best = 0, sink = 0;
  for (int run = 0; run < 6; ++run) {
    const auto t0 = std::chrono::steady_clock::now();
    sink += double(f(iters));
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (run == 0) {  // calibration: aim at 0.2 s per run
      iters = std::max(1L, long(double(iters) * 0.2 / s));
      continue;
    }
    best = std::max(best, flops_per_iter * double(iters) / s / 1e9);
  }
  if (sink == 12345.678) std::puts("");  // uses the results
  return best;
}

}  // namespace

int main() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) {
    std::printf("{\"isa\": \"avx512\", \"float_gflops\": %.1f, \"double_gflops\": %.1f}\n",
                best_gflops(f32_avx512, 2.0 * 24 * 16), best_gflops(f64_avx512, 2.0 * 24 * 8));
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    std::printf("{\"isa\": \"avx2\", \"float_gflops\": %.1f, \"double_gflops\": %.1f}\n",
                best_gflops(f32_avx2, 2.0 * 24 * 8), best_gflops(f64_avx2, 2.0 * 24 * 4));
  } else {
    std::fprintf(stderr, "fma_peak: error: this CPU has no FMA (neither AVX-512 nor AVX2+FMA)\n");
    return 2;
  }
  return 0;
}
