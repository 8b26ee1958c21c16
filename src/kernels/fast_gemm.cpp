// The register-blocked micro-kernels of the fast kernels, one body each written with GCC vector
// extensions and compiled three times with __attribute__((target)) (AVX-512, AVX2+FMA, and the
// x86-64 baseline); the CPU picks one at run time, so the default build runs on any x86-64.
// Everything ISA-specific has internal linkage, so no AVX-512 code can leak into a COMDAT
// shared with baseline code.
#include "fast_gemm.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include "tapegrad/kernels/conv2d_fast.hpp"

namespace tapegrad::fast::detail {
namespace {

// Outer-product tile: MR rows (broadcast from the packed A panel) x NV vectors of L lanes.
template <class T, int L, int MR, int NV>
[[gnu::always_inline]] inline void outer_body(index_t kd, const T* a, const T* b, index_t ldb,
                                              T* c, index_t ldc, bool acc) {
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  V cr[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if (acc)
        std::memcpy(&cr[i][v], c + i * ldc + v * L, sizeof(V));
      else
        cr[i][v] = V{};
    }
  for (index_t kk = 0; kk < kd; ++kk) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) std::memcpy(&bv[v], b + kk * ldb + v * L, sizeof(V));
    const T* ak = a + kk * MR;
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const T ai = ak[i];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) cr[i][v] += ai * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) std::memcpy(c + i * ldc + v * L, &cr[i][v], sizeof(V));
}

// Dot-product tile: MR x NR dot products, each in L interleaved lanes, then a fixed tree.
template <class T, int L, int MR, int NR>
[[gnu::always_inline]] inline void dot_body(index_t kd, const T* const* ar, const T* const* br,
                                            T* c, index_t ldc) {
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  V acc[MR][NR];
  const T* a[MR];
  const T* b[NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) a[i] = ar[i];
#pragma GCC unroll 8
  for (int j = 0; j < NR; ++j) b[j] = br[j];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = V{};
  for (index_t kk = 0; kk < kd; kk += L) {
    V av[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) std::memcpy(&av[i], a[i] + kk, sizeof(V));
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      V bv;
      std::memcpy(&bv, b[j] + kk, sizeof(V));
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) acc[i][j] += av[i] * bv;
    }
  }
  // Fixed tree over the lanes: at width w, lane l += lane l + w (w = L/2, ..., 1).
  typedef std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t> I;
  typedef I M __attribute__((vector_size(L * sizeof(T))));
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      V v = acc[i][j];
#pragma GCC unroll 8
      for (int w = L / 2; w >= 1; w /= 2) {
        M mask;
        for (int l = 0; l < L; ++l) mask[l] = (l + w) % L;
        v += __builtin_shuffle(v, mask);
      }
      c[i * ldc + j] += v[0];
    }
}

#define TG_OUTER_ARGS(T) index_t kd, const T *a, const T *b, index_t ldb, T *c, index_t ldc, bool acc
#define TG_DOT_ARGS(T) index_t kd, const T *const *ar, const T *const *br, T *c, index_t ldc

// AVX-512: 32 zmm registers. outer 8 x 3 vectors = 24 accumulators; dot 4 x 6 = 24.
[[gnu::target("avx512f,avx512vl,avx512dq,fma,avx2")]] void outer_avx512_f32(TG_OUTER_ARGS(float)) {
  outer_body<float, 16, 8, 3>(kd, a, b, ldb, c, ldc, acc);
}
[[gnu::target("avx512f,avx512vl,avx512dq,fma,avx2")]] void outer_avx512_f64(TG_OUTER_ARGS(double)) {
  outer_body<double, 8, 8, 3>(kd, a, b, ldb, c, ldc, acc);
}
[[gnu::target("avx512f,avx512vl,avx512dq,fma,avx2")]] void dot_avx512_f32(TG_DOT_ARGS(float)) {
  dot_body<float, 16, 4, 6>(kd, ar, br, c, ldc);
}
[[gnu::target("avx512f,avx512vl,avx512dq,fma,avx2")]] void dot_avx512_f64(TG_DOT_ARGS(double)) {
  dot_body<double, 8, 4, 6>(kd, ar, br, c, ldc);
}
// AVX2: 16 ymm registers. outer 6 x 2 = 12 accumulators; dot 3 x 4 = 12.
[[gnu::target("avx2,fma")]] void outer_avx2_f32(TG_OUTER_ARGS(float)) {
  outer_body<float, 8, 6, 2>(kd, a, b, ldb, c, ldc, acc);
}
[[gnu::target("avx2,fma")]] void outer_avx2_f64(TG_OUTER_ARGS(double)) {
  outer_body<double, 4, 6, 2>(kd, a, b, ldb, c, ldc, acc);
}
[[gnu::target("avx2,fma")]] void dot_avx2_f32(TG_DOT_ARGS(float)) {
  dot_body<float, 8, 3, 4>(kd, ar, br, c, ldc);
}
[[gnu::target("avx2,fma")]] void dot_avx2_f64(TG_DOT_ARGS(double)) {
  dot_body<double, 4, 3, 4>(kd, ar, br, c, ldc);
}
// Baseline x86-64 (SSE2): 16 xmm registers. outer 4 x 2 = 8; dot 2 x 4 = 8.
void outer_sse_f32(TG_OUTER_ARGS(float)) { outer_body<float, 4, 4, 2>(kd, a, b, ldb, c, ldc, acc); }
void outer_sse_f64(TG_OUTER_ARGS(double)) {
  outer_body<double, 2, 4, 2>(kd, a, b, ldb, c, ldc, acc);
}
void dot_sse_f32(TG_DOT_ARGS(float)) { dot_body<float, 4, 2, 4>(kd, ar, br, c, ldc); }
void dot_sse_f64(TG_DOT_ARGS(double)) { dot_body<double, 2, 2, 4>(kd, ar, br, c, ldc); }

#undef TG_OUTER_ARGS
#undef TG_DOT_ARGS

const MicroKernels<float> k_avx512_f32{"avx512", 8, 48, 4, 6, 16, outer_avx512_f32,
                                       dot_avx512_f32};
const MicroKernels<double> k_avx512_f64{"avx512", 8, 24, 4, 6, 8, outer_avx512_f64,
                                        dot_avx512_f64};
const MicroKernels<float> k_avx2_f32{"avx2", 6, 16, 3, 4, 8, outer_avx2_f32, dot_avx2_f32};
const MicroKernels<double> k_avx2_f64{"avx2", 6, 8, 3, 4, 4, outer_avx2_f64, dot_avx2_f64};
const MicroKernels<float> k_sse_f32{"generic", 4, 8, 2, 4, 4, outer_sse_f32, dot_sse_f32};
const MicroKernels<double> k_sse_f64{"generic", 4, 4, 2, 4, 2, outer_sse_f64, dot_sse_f64};

enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

Isa best_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
  return Isa::generic;
}

std::atomic<int>& current_isa() {
  static std::atomic<int> isa{static_cast<int>(best_isa())};
  return isa;
}

}  // namespace

const MicroKernels<float>& micro_kernels_f32() {
  switch (static_cast<Isa>(current_isa().load(std::memory_order_relaxed))) {
    case Isa::avx512: return k_avx512_f32;
    case Isa::avx2: return k_avx2_f32;
    default: return k_sse_f32;
  }
}
const MicroKernels<double>& micro_kernels_f64() {
  switch (static_cast<Isa>(current_isa().load(std::memory_order_relaxed))) {
    case Isa::avx512: return k_avx512_f64;
    case Isa::avx2: return k_avx2_f64;
    default: return k_sse_f64;
  }
}

template <class T>
void outer_block(const MicroKernels<T>& mk, index_t m_count, index_t n_count, index_t kd,
                 const T* a, index_t a_panel_stride, const T* b, index_t ldb, T* c, index_t ldc,
                 bool acc) {
  const int mr = mk.mr, nr = mk.nr;
  T tile[16 * 48];  // largest mr x nr
  T* bpad = nullptr;
  for (index_t j0 = 0; j0 < n_count; j0 += nr) {
    const index_t nj = std::min<index_t>(nr, n_count - j0);
    const T* bs = b + j0;
    index_t lb = ldb;
    if (nj < nr) {  // tail strip: copy into a zero-padded kd x nr strip
      if (!bpad) bpad = scratch<T>(3, kd * nr);
      for (index_t kk = 0; kk < kd; ++kk)
        for (int j = 0; j < nr; ++j) bpad[kk * nr + j] = j < nj ? b[kk * ldb + j0 + j] : T(0);
      bs = bpad;
      lb = nr;
    }
    for (index_t i0 = 0; i0 < m_count; i0 += mr) {
      const index_t mi = std::min<index_t>(mr, m_count - i0);
      const T* ap = a + (i0 / mr) * a_panel_stride;
      T* cs = c + i0 * ldc + j0;
      if (mi == mr && nj == nr) {
        mk.outer(kd, ap, bs, lb, cs, ldc, acc);
      } else {
        if (acc)
          for (index_t i = 0; i < mi; ++i)
            for (index_t j = 0; j < nj; ++j) tile[i * nr + j] = cs[i * ldc + j];
        mk.outer(kd, ap, bs, lb, tile, nr, acc);
        for (index_t i = 0; i < mi; ++i)
          for (index_t j = 0; j < nj; ++j) cs[i * ldc + j] = tile[i * nr + j];
      }
    }
  }
}

template <class T>
void dot_block(const MicroKernels<T>& mk, index_t m_count, index_t n_count, index_t kd,
               const T* a, index_t lda, const T* b, index_t ldb, T* c, index_t ldc) {
  const int mr = mk.dmr, nr = mk.dnr;
  const T* ar[8];
  const T* br[8];
  T tile[8 * 8];
  for (index_t i0 = 0; i0 < m_count; i0 += mr) {
    const index_t mi = std::min<index_t>(mr, m_count - i0);
    // Rows past the end repeat the last one; their results are dropped.
    for (int i = 0; i < mr; ++i) ar[i] = a + (i0 + std::min<index_t>(i, mi - 1)) * lda;
    for (index_t j0 = 0; j0 < n_count; j0 += nr) {
      const index_t nj = std::min<index_t>(nr, n_count - j0);
      for (int j = 0; j < nr; ++j) br[j] = b + (j0 + std::min<index_t>(j, nj - 1)) * ldb;
      T* cs = c + i0 * ldc + j0;
      if (mi == mr && nj == nr) {
        mk.dot(kd, ar, br, cs, ldc);
      } else {
        for (index_t i = 0; i < mr; ++i)
          for (index_t j = 0; j < nr; ++j)
            tile[i * nr + j] = i < mi && j < nj ? cs[i * ldc + j] : T(0);
        mk.dot(kd, ar, br, tile, nr);
        for (index_t i = 0; i < mi; ++i)
          for (index_t j = 0; j < nj; ++j) cs[i * ldc + j] = tile[i * nr + j];
      }
    }
  }
}

template void outer_block<float>(const MicroKernels<float>&, index_t, index_t, index_t,
                                 const float*, index_t, const float*, index_t, float*, index_t,
                                 bool);
template void outer_block<double>(const MicroKernels<double>&, index_t, index_t, index_t,
                                  const double*, index_t, const double*, index_t, double*,
                                  index_t, bool);
template void dot_block<float>(const MicroKernels<float>&, index_t, index_t, index_t,
                               const float*, index_t, const float*, index_t, float*, index_t);
template void dot_block<double>(const MicroKernels<double>&, index_t, index_t, index_t,
                                const double*, index_t, const double*, index_t, double*,
                                index_t);

}  // namespace tapegrad::fast::detail

namespace tapegrad::fast {

const char* isa() { return detail::micro_kernels_f32().isa; }

void set_isa(std::string_view name) {
  using detail::Isa;
  const Isa best = detail::best_isa();
  Isa want;
  if (name == "avx512")
    want = Isa::avx512;
  else if (name == "avx2")
    want = Isa::avx2;
  else if (name == "generic")
    want = Isa::generic;
  else if (name == "best")
    want = best;
  else
    throw std::invalid_argument("fast::set_isa: unknown instruction set '" + std::string(name) +
                                "', expected avx512, avx2, generic or best");
  if (static_cast<int>(want) > static_cast<int>(best))
    throw std::invalid_argument("fast::set_isa: this CPU does not support " + std::string(name));
  detail::current_isa().store(static_cast<int>(want));
}

}  // namespace tapegrad::fast
