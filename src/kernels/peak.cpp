// Measured FMA peak; see include/tapegrad/kernels/peak.hpp. The loop body is written once with
// GCC vector extensions and compiled per instruction set like the micro-kernels
// (fast_gemm.cpp); each chain is acc = acc * m + c, which GCC contracts to one FMA where the
// target has FMA (the default -ffp-contract=fast of GNU C++; no -ffast-math involved).
#include "tapegrad/kernels/peak.hpp"

#include <omp.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "tapegrad/kernels/conv2d_fast.hpp"

namespace tapegrad::fast {

namespace {

// `iters` rounds of C (12 or 24) chains of L-lane FMAs; returns a value depending on every
// chain so nothing is optimized away. The chains are named variables, not an array, so they
// stay in registers; the empty asm keeps each one computed every round.
#define TG_CHAIN(x)   \
  x = x * mv + cv;    \
  asm volatile("" : "+v"(x))
template <class T, int L, int C>
[[gnu::always_inline]] inline T fma_body(std::int64_t iters, T m, T c0) {
  static_assert(C == 12 || C == 24);
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  const V mv = V{} + m, cv = V{} + c0;  // broadcasts
  V a0 = cv, a1 = cv * T(2), a2 = cv * T(3), a3 = cv * T(4), a4 = cv * T(5), a5 = cv * T(6);
  V a6 = a0 + a5, a7 = a1 + a5, a8 = a2 + a5, a9 = a3 + a5, a10 = a4 + a5, a11 = a5 + a5;
  V b0 = a0 + a11, b1 = a1 + a11, b2 = a2 + a11, b3 = a3 + a11, b4 = a4 + a11, b5 = a5 + a11;
  V b6 = a6 + a11, b7 = a7 + a11, b8 = a8 + a11, b9 = a9 + a11, b10 = a10 + a11, b11 = a11 + a11;
  for (std::int64_t k = 0; k < iters; ++k) {
    TG_CHAIN(a0); TG_CHAIN(a1); TG_CHAIN(a2); TG_CHAIN(a3); TG_CHAIN(a4); TG_CHAIN(a5);
    TG_CHAIN(a6); TG_CHAIN(a7); TG_CHAIN(a8); TG_CHAIN(a9); TG_CHAIN(a10); TG_CHAIN(a11);
    if constexpr (C == 24) {
      TG_CHAIN(b0); TG_CHAIN(b1); TG_CHAIN(b2); TG_CHAIN(b3); TG_CHAIN(b4); TG_CHAIN(b5);
      TG_CHAIN(b6); TG_CHAIN(b7); TG_CHAIN(b8); TG_CHAIN(b9); TG_CHAIN(b10); TG_CHAIN(b11);
    }
  }
  V s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  if constexpr (C == 24) s += b0 + b1 + b2 + b3 + b4 + b5 + b6 + b7 + b8 + b9 + b10 + b11;
  T out = 0;
  for (int l = 0; l < L; ++l) out += s[l];
  return out;
}
#undef TG_CHAIN

// C chains: enough independent FMAs in flight for two FMA units of latency 4-5 (the register
// file holds them: 32 zmm / 16 ymm / 16 xmm).
[[gnu::target("avx512f,avx512vl,avx512dq,fma,avx2")]] float fma_avx512_f32(std::int64_t n, float m, float c) {
  return fma_body<float, 16, 24>(n, m, c);
}
[[gnu::target("avx512f,avx512vl,avx512dq,fma,avx2")]] double fma_avx512_f64(std::int64_t n, double m, double c) {
  return fma_body<double, 8, 24>(n, m, c);
}
[[gnu::target("avx2,fma")]] float fma_avx2_f32(std::int64_t n, float m, float c) {
  return fma_body<float, 8, 12>(n, m, c);
}
[[gnu::target("avx2,fma")]] double fma_avx2_f64(std::int64_t n, double m, double c) {
  return fma_body<double, 4, 12>(n, m, c);
}
float fma_sse_f32(std::int64_t n, float m, float c) { return fma_body<float, 4, 12>(n, m, c); }
double fma_sse_f64(std::int64_t n, double m, double c) { return fma_body<double, 2, 12>(n, m, c); }

struct Loop {
  double flops_per_iter;
  double (*run)(std::int64_t iters);
};

template <class T>
Loop loop_for(const std::string& isa) {
  // m slightly below 1 keeps every chain bounded (a fixed point at c / (1 - m)).
  if constexpr (sizeof(T) == 4) {
    if (isa == "avx512") return {2.0 * 16 * 24, [](std::int64_t n) { return double(fma_avx512_f32(n, 0.999f, 1e-3f)); }};
    if (isa == "avx2") return {2.0 * 8 * 12, [](std::int64_t n) { return double(fma_avx2_f32(n, 0.999f, 1e-3f)); }};
    return {2.0 * 4 * 12, [](std::int64_t n) { return double(fma_sse_f32(n, 0.999f, 1e-3f)); }};
  } else {
    if (isa == "avx512") return {2.0 * 8 * 24, [](std::int64_t n) { return fma_avx512_f64(n, 0.999, 1e-3); }};
    if (isa == "avx2") return {2.0 * 4 * 12, [](std::int64_t n) { return fma_avx2_f64(n, 0.999, 1e-3); }};
    return {2.0 * 2 * 12, [](std::int64_t n) { return fma_sse_f64(n, 0.999, 1e-3); }};
  }
}

volatile double sink;

// GFLOP/s of `threads` threads running the loop together for about `seconds`.
template <class T>
double measure(int threads, double seconds) {
  const Loop loop = loop_for<T>(isa());
  using clock = std::chrono::steady_clock;
  // Calibrate the iteration count on one thread.
  std::int64_t iters = 1 << 16;
  for (;;) {
    const auto t0 = clock::now();
    sink = loop.run(iters);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    if (dt > seconds / 4 || iters > (std::int64_t{1} << 40)) {
      iters = static_cast<std::int64_t>(static_cast<double>(iters) * seconds / dt);
      break;
    }
    iters *= 4;
  }
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {  // best of three: a shared machine only slows runs down
    const auto t0 = clock::now();
#pragma omp parallel num_threads(threads)
    { sink = loop.run(iters); }
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::max(best, loop.flops_per_iter * static_cast<double>(iters) * threads / dt * 1e-9);
  }
  return best;
}

}  // namespace

Peak measure_peak(int threads, double seconds) {
  if (threads <= 0) threads = omp_get_max_threads();
  Peak p;
  p.isa = isa();
  p.threads = threads;
  p.f32_core = measure<float>(1, seconds);
  p.f64_core = measure<double>(1, seconds);
  p.f32_all = threads == 1 ? p.f32_core : measure<float>(threads, seconds);
  p.f64_all = threads == 1 ? p.f64_core : measure<double>(threads, seconds);
  return p;
}

double core_peak_gflops(bool is_double) {
  static std::mutex mu;
  static std::map<std::string, std::pair<double, double>> cache;
  std::lock_guard<std::mutex> lock(mu);
  const std::string key = isa();
  auto it = cache.find(key);
  if (it == cache.end())
    it = cache.emplace(key, std::pair{measure<float>(1, 0.2), measure<double>(1, 0.2)}).first;
  return is_double ? it->second.second : it->second.first;
}

}  // namespace tapegrad::fast
