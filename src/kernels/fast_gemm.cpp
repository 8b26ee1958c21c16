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

// Lowered-convolution outer product: MR rows x NP output vectors, B vectors gathered at
// b + boff[kk] + pofs[i] (see LoweredKernels).
template <class T, int L, int MR, int NP>
[[gnu::always_inline]] inline void gouter_body(index_t kd, const T* a, const T* b,
                                               const index_t* boff, const index_t* pofs, T* c,
                                               index_t ldc, int mode, const T* bias) {
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  V cr[MR][NP];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 24
    for (int i = 0; i < NP; ++i) {
      if (mode == 2)
        std::memcpy(&cr[m][i], c + m * ldc + i * L, sizeof(V));
      else
        cr[m][i] = mode == 1 ? V{} + bias[m] : V{};
    }
  index_t po[NP];
#pragma GCC unroll 24
  for (int i = 0; i < NP; ++i) po[i] = pofs[i];
  for (index_t kk = 0; kk < kd; ++kk) {
    const T* bk = b + boff[kk];
    V bv[NP];
#pragma GCC unroll 24
    for (int i = 0; i < NP; ++i) std::memcpy(&bv[i], bk + po[i], sizeof(V));
    const T* ak = a + kk * MR;
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const T am = ak[m];
#pragma GCC unroll 24
      for (int i = 0; i < NP; ++i) cr[m][i] += am * bv[i];
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 24
    for (int i = 0; i < NP; ++i) std::memcpy(c + m * ldc + i * L, &cr[m][i], sizeof(V));
}

// Channels-tier outer product: NW output pixels (their inputs broadcast from x + boff[kk] +
// pofs[i]) x KB vectors of output channels (the packed weights), see LoweredKernels::couter.
// The weights (a panel's are 147 KB for ResNet's 3x3 layer, streamed from the L2 cache once per
// tile) are prefetched couter_prefetch taps ahead: in paired runs on an Intel Xeon, 1 thread,
// ResNet's and VGG's forward and backward-data gained 1.02-1.13x in float (1.04-1.05x in the
// last run, of this code), 1.09-1.12x in double and 1.01-1.02x with the AVX2 kernels (4 taps
// ahead: 0.98-1.15x).
constexpr index_t couter_prefetch = 12;
template <class T, int L, int KB, int NW>
[[gnu::always_inline]] inline void couter_body(index_t kd, const T* w, const T* x,
                                               const index_t* boff, const index_t* pofs,
                                               T* c, int mode, const T* bias) {
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  V cr[NW][KB];
  V bv[KB];
  index_t po[NW];
#pragma GCC unroll 24
  for (int i = 0; i < NW; ++i) po[i] = pofs[i];
#pragma GCC unroll 4
  for (int v = 0; v < KB; ++v) {
    if (mode == 1)
      std::memcpy(&bv[v], bias + v * L, sizeof(V));
    else
      bv[v] = V{};
  }
#pragma GCC unroll 24
  for (int i = 0; i < NW; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < KB; ++v) {
      if (mode == 2)
        std::memcpy(&cr[i][v], c + (i * KB + v) * L, sizeof(V));
      else
        cr[i][v] = bv[v];
    }
  for (index_t kk = 0; kk < kd; ++kk) {
    const index_t kp = std::min(kk + couter_prefetch, kd - 1);  // (in the array)
#pragma GCC unroll 4
    for (int v = 0; v < KB; ++v) __builtin_prefetch(w + (kp * KB + v) * L);
    V wv[KB];
#pragma GCC unroll 4
    for (int v = 0; v < KB; ++v) std::memcpy(&wv[v], w + (kk * KB + v) * L, sizeof(V));
    const T* xk = x + boff[kk];
#pragma GCC unroll 24
    for (int i = 0; i < NW; ++i) {
      const T xi = xk[po[i]];
#pragma GCC unroll 4
      for (int v = 0; v < KB; ++v) cr[i][v] += xi * wv[v];
    }
  }
#pragma GCC unroll 24
  for (int i = 0; i < NW; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < KB; ++v) std::memcpy(c + (i * KB + v) * L, &cr[i][v], sizeof(V));
}

// Channels-tier backward-weights: NT taps (their inputs broadcast from x + boff[t] + ...) x KB
// vectors of output channels (dy transposed, KB*L channels a pixel), summed over `rows` rows of
// n pixels in order, see LoweredKernels::cdot. dy's chunk is read from the L1 cache by every
// tap tile of a task; x is read as NT scalar streams.
template <class T, int L, int KB, int NT>
[[gnu::always_inline]] inline void cdot_body(index_t rows, index_t n, const T* d, const T* x,
                                             index_t xrs, const index_t* boff, T* acc) {
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  V cr[NT][KB];
#pragma GCC unroll 24
  for (int t = 0; t < NT; ++t)
#pragma GCC unroll 4
    for (int v = 0; v < KB; ++v) std::memcpy(&cr[t][v], acc + (t * KB + v) * L, sizeof(V));
  const T* xt[NT];
#pragma GCC unroll 24
  for (int t = 0; t < NT; ++t) xt[t] = x + boff[t];
  for (index_t row = 0; row < rows; ++row) {
    const T* dr = d + row * n * KB * L;
    for (index_t j = 0; j < n; ++j) {
      V dv[KB];
#pragma GCC unroll 4
      for (int v = 0; v < KB; ++v) std::memcpy(&dv[v], dr + (j * KB + v) * L, sizeof(V));
#pragma GCC unroll 24
      for (int t = 0; t < NT; ++t) {
        const T xj = xt[t][j];
#pragma GCC unroll 4
        for (int v = 0; v < KB; ++v) cr[t][v] += xj * dv[v];
      }
    }
#pragma GCC unroll 24
    for (int t = 0; t < NT; ++t) xt[t] += xrs;
  }
#pragma GCC unroll 24
  for (int t = 0; t < NT; ++t)
#pragma GCC unroll 4
    for (int v = 0; v < KB; ++v) std::memcpy(acc + (t * KB + v) * L, &cr[t][v], sizeof(V));
}

// Lowered-convolution lane-wise dot products: MR rows of a (stride lda) x NT tap rows of b
// (at b + boff[t]), accumulated as vectors in acc (see LoweredKernels).
template <class T, int L, int MR, int NT>
[[gnu::always_inline]] inline void ldot_body(index_t rows, index_t steps, const T* a,
                                             index_t lda, index_t ras, const T* b,
                                             const index_t* boff, index_t rbs, T* acc) {
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  V sr[MR][NT];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 24
    for (int t = 0; t < NT; ++t) std::memcpy(&sr[m][t], acc + (m * NT + t) * L, sizeof(V));
  const T* bt[NT];
#pragma GCC unroll 24
  for (int t = 0; t < NT; ++t) bt[t] = b + boff[t];
  for (index_t row = 0; row < rows; ++row) {
    const T* ar = a + row * ras;
    const index_t bo = row * rbs;
    for (index_t s = 0; s < steps * L; s += L) {
      if constexpr (NT < MR) {  // hold the NT vectors of b, stream a (fewer live registers)
        V bv[NT];
#pragma GCC unroll 24
        for (int t = 0; t < NT; ++t) std::memcpy(&bv[t], bt[t] + bo + s, sizeof(V));
#pragma GCC unroll 8
        for (int m = 0; m < MR; ++m) {
          V av;
          std::memcpy(&av, ar + m * lda + s, sizeof(V));
          asm("" : "+v"(av));  // one load: not folded into each multiply-add again
#pragma GCC unroll 24
          for (int t = 0; t < NT; ++t) sr[m][t] += av * bv[t];
        }
      } else {
        V av[MR];
#pragma GCC unroll 8
        for (int m = 0; m < MR; ++m) std::memcpy(&av[m], ar + m * lda + s, sizeof(V));
#pragma GCC unroll 24
        for (int t = 0; t < NT; ++t) {
          V bv;
          std::memcpy(&bv, bt[t] + bo + s, sizeof(V));
          asm("" : "+v"(bv));  // one load: not folded into each multiply-add again
#pragma GCC unroll 8
          for (int m = 0; m < MR; ++m) sr[m][t] += av[m] * bv;
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 24
    for (int t = 0; t < NT; ++t) std::memcpy(acc + (m * NT + t) * L, &sr[m][t], sizeof(V));
}

// One butterfly stage of the L x L transpose: rows i and i + W (i & W == 0) exchange their lanes
// l with l & W set; then the next stage.
template <class T, int L, int W, class V>
[[gnu::always_inline]] inline void transpose_stage(V* v) {
  if constexpr (W < L) {
#pragma GCC unroll 16
    for (int i = 0; i < L; ++i)
      if ((i & W) == 0) {
        const V a = v[i], b = v[i + W];
        shuffle2<L>(a, b, v[i], [](int l) { return (l & W) ? L + l - W : l; });
        shuffle2<L>(a, b, v[i + W], [](int l) { return (l & W) ? L + l : l + W; });
      }
    transpose_stage<T, L, 2 * W, V>(v);
  }
}

// L x L transpose by log2(L) butterfly stages of two-source shuffles.
template <class T, int L>
[[gnu::always_inline]] inline void transpose_body(const T* src, index_t ld_src, T* dst,
                                                  index_t ld_dst) {
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  V v[L];
#pragma GCC unroll 16
  for (int i = 0; i < L; ++i) std::memcpy(&v[i], src + i * ld_src, sizeof(V));
  transpose_stage<T, L, 1, V>(v);
#pragma GCC unroll 16
  for (int j = 0; j < L; ++j) std::memcpy(dst + j * ld_dst, &v[j], sizeof(V));
}

template <class T, int L>
[[gnu::always_inline]] inline void sum_body(const T* x, index_t n, T* acc) {
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  V a[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) std::memcpy(&a[i], acc + i * L, sizeof(V));
  const index_t nv = n / L;
  index_t i = 0;
  for (; i + 4 <= nv; i += 4)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      V v;
      std::memcpy(&v, x + (i + j) * L, sizeof(V));
      a[j] += v;
    }
  for (; i < nv; ++i) {
    V v;
    std::memcpy(&v, x + i * L, sizeof(V));
    a[i % 4] += v;
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) std::memcpy(acc + j * L, &a[j], sizeof(V));
  T* rest = acc + (nv % 4) * L;
  for (index_t r = 0; r < n - nv * L; ++r) rest[r] += x[nv * L + r];
}

#define TG_GOUTER_ARGS(T)                                                                  \
  index_t kd, const T *a, const T *b, const index_t *boff, const index_t *pofs, T *c, \
      index_t ldc, int mode, const T *bias
#define TG_LDOT_ARGS(T)                                                                      \
  index_t rows, index_t steps, const T *a, index_t lda, index_t ras, const T *b, \
      const index_t *boff, index_t rbs, T *acc
#define TG_GOUTER_ARGV kd, a, b, boff, pofs, c, ldc, mode, bias
#define TG_LDOT_ARGV rows, steps, a, lda, ras, b, boff, rbs, acc

// One function per (ISA, type, rows): NP and NT chosen so that the accumulators fill the
// register file (AVX-512: 24 of 32 zmm; AVX2 and SSE: 12 of 16).
#define TG_LOWERED(ISA, ATTR, T, L, MR, NP, NT)                                           \
  ATTR void gouter_##ISA##_##T##_##MR(TG_GOUTER_ARGS(T)) {                                 \
    gouter_body<T, L, MR, NP>(TG_GOUTER_ARGV);                                             \
  }                                                                                        \
  ATTR void ldot_##ISA##_##T##_##MR(TG_LDOT_ARGS(T)) { ldot_body<T, L, MR, NT>(TG_LDOT_ARGV); }

#define TG_AVX512 [[gnu::target("avx512f,avx512vl,avx512dq,fma,avx2")]]
#define TG_AVX2 [[gnu::target("avx2,fma")]]
#define TG_SSE
#define TG_LOWERED_512(T, L)               \
  TG_LOWERED(avx512, TG_AVX512, T, L, 1, 8, 8) \
  TG_LOWERED(avx512, TG_AVX512, T, L, 2, 8, 8) \
  TG_LOWERED(avx512, TG_AVX512, T, L, 3, 8, 8) \
  TG_LOWERED(avx512, TG_AVX512, T, L, 4, 6, 6) \
  TG_LOWERED(avx512, TG_AVX512, T, L, 5, 4, 4) \
  TG_LOWERED(avx512, TG_AVX512, T, L, 6, 4, 4) \
  TG_LOWERED(avx512, TG_AVX512, T, L, 7, 3, 3) \
  TG_LOWERED(avx512, TG_AVX512, T, L, 8, 3, 3)
#define TG_LOWERED_256(ISA, ATTR, T, L) \
  TG_LOWERED(ISA, ATTR, T, L, 1, 8, 8)  \
  TG_LOWERED(ISA, ATTR, T, L, 2, 6, 6)  \
  TG_LOWERED(ISA, ATTR, T, L, 3, 4, 4)  \
  TG_LOWERED(ISA, ATTR, T, L, 4, 3, 3)  \
  TG_LOWERED(ISA, ATTR, T, L, 5, 2, 2)  \
  TG_LOWERED(ISA, ATTR, T, L, 6, 2, 2)
#define TG_COUTER(ISA, ATTR, T, L, KB, NW)                                               \
  ATTR void couter_##ISA##_##T##_##KB(index_t kd, const T* w, const T* x, const index_t* boff, \
                                      const index_t* pofs, T* c, int mode, const T* bias) {  \
    couter_body<T, L, KB, NW>(kd, w, x, boff, pofs, c, mode, bias);                          \
  }                                                                                          \
  ATTR void cdot_##ISA##_##T##_##KB(index_t rows, index_t n, const T* d, const T* x,         \
                                    index_t xrs, const index_t* boff, T* acc) {              \
    cdot_body<T, L, KB, NW>(rows, n, d, x, xrs, boff, acc);                                  \
  }
// AVX-512: KB*NW = 24 accumulators of 32 zmm; AVX2 and SSE: 12 of 16 (KB weight vectors and a
// broadcast beside them)
#define TG_COUTER_512(T, L)                     \
  TG_COUTER(avx512, TG_AVX512, T, L, 1, 24)     \
  TG_COUTER(avx512, TG_AVX512, T, L, 2, 12)     \
  TG_COUTER(avx512, TG_AVX512, T, L, 3, 8)      \
  TG_COUTER(avx512, TG_AVX512, T, L, 4, 6)
#define TG_COUTER_256(ISA, ATTR, T, L) \
  TG_COUTER(ISA, ATTR, T, L, 1, 12)    \
  TG_COUTER(ISA, ATTR, T, L, 2, 6)     \
  TG_COUTER(ISA, ATTR, T, L, 3, 4)
TG_COUTER_512(float, 16)
TG_COUTER_512(double, 8)
TG_COUTER_256(avx2, TG_AVX2, float, 8)
TG_COUTER_256(avx2, TG_AVX2, double, 4)
TG_COUTER_256(sse, TG_SSE, float, 4)
TG_COUTER_256(sse, TG_SSE, double, 2)
#undef TG_COUTER
#undef TG_COUTER_512
#undef TG_COUTER_256
#define TG_TRANSPOSE(ISA, ATTR, T, L)                                                    \
  ATTR void transpose_##ISA##_##T(const T* src, index_t ld_src, T* dst, index_t ld_dst) { \
    transpose_body<T, L>(src, ld_src, dst, ld_dst);                                      \
  }                                                                                       \
  ATTR void sum_##ISA##_##T(const T* x, index_t n, T* acc) { sum_body<T, L>(x, n, acc); }
TG_TRANSPOSE(avx512, TG_AVX512, float, 16)
TG_TRANSPOSE(avx512, TG_AVX512, double, 8)
TG_TRANSPOSE(avx2, TG_AVX2, float, 8)
TG_TRANSPOSE(avx2, TG_AVX2, double, 4)
TG_TRANSPOSE(sse, TG_SSE, float, 4)
TG_TRANSPOSE(sse, TG_SSE, double, 2)
#undef TG_TRANSPOSE
TG_LOWERED_512(float, 16)
TG_LOWERED_512(double, 8)
TG_LOWERED_256(avx2, TG_AVX2, float, 8)
TG_LOWERED_256(avx2, TG_AVX2, double, 4)
TG_LOWERED_256(sse, TG_SSE, float, 4)
TG_LOWERED_256(sse, TG_SSE, double, 2)

#define TG_LK8(ISA, T, L)                                                                    \
  LoweredKernels<T> {                                                                        \
    L, 8, {0, 8, 8, 8, 6, 4, 4, 3, 3}, {0, 8, 8, 8, 6, 4, 4, 3, 3},                          \
        {nullptr, gouter_##ISA##_##T##_1, gouter_##ISA##_##T##_2, gouter_##ISA##_##T##_3,    \
         gouter_##ISA##_##T##_4, gouter_##ISA##_##T##_5, gouter_##ISA##_##T##_6,             \
         gouter_##ISA##_##T##_7, gouter_##ISA##_##T##_8},                                    \
        {nullptr, ldot_##ISA##_##T##_1, ldot_##ISA##_##T##_2, ldot_##ISA##_##T##_3,          \
         ldot_##ISA##_##T##_4, ldot_##ISA##_##T##_5, ldot_##ISA##_##T##_6,                   \
         ldot_##ISA##_##T##_7, ldot_##ISA##_##T##_8},                                        \
        4, {0, 24, 12, 8, 6},                                                                \
        {nullptr, couter_##ISA##_##T##_1, couter_##ISA##_##T##_2, couter_##ISA##_##T##_3,    \
         couter_##ISA##_##T##_4},                                                            \
        {nullptr, cdot_##ISA##_##T##_1, cdot_##ISA##_##T##_2, cdot_##ISA##_##T##_3,          \
         cdot_##ISA##_##T##_4},                                                              \
        transpose_##ISA##_##T, sum_##ISA##_##T                                               \
  }
#define TG_LK6(ISA, T, L)                                                                    \
  LoweredKernels<T> {                                                                        \
    L, 6, {0, 8, 6, 4, 3, 2, 2, 0, 0}, {0, 8, 6, 4, 3, 2, 2, 0, 0},                          \
        {nullptr, gouter_##ISA##_##T##_1, gouter_##ISA##_##T##_2, gouter_##ISA##_##T##_3,    \
         gouter_##ISA##_##T##_4, gouter_##ISA##_##T##_5, gouter_##ISA##_##T##_6, nullptr,    \
         nullptr},                                                                           \
        {nullptr, ldot_##ISA##_##T##_1, ldot_##ISA##_##T##_2, ldot_##ISA##_##T##_3,          \
         ldot_##ISA##_##T##_4, ldot_##ISA##_##T##_5, ldot_##ISA##_##T##_6, nullptr, nullptr}, \
        3, {0, 12, 6, 4, 0},                                                                 \
        {nullptr, couter_##ISA##_##T##_1, couter_##ISA##_##T##_2, couter_##ISA##_##T##_3,    \
         nullptr},                                                                           \
        {nullptr, cdot_##ISA##_##T##_1, cdot_##ISA##_##T##_2, cdot_##ISA##_##T##_3, nullptr}, \
        transpose_##ISA##_##T, sum_##ISA##_##T                                               \
  }
const LoweredKernels<float> lk_avx512_f32 = TG_LK8(avx512, float, 16);
const LoweredKernels<double> lk_avx512_f64 = TG_LK8(avx512, double, 8);
const LoweredKernels<float> lk_avx2_f32 = TG_LK6(avx2, float, 8);
const LoweredKernels<double> lk_avx2_f64 = TG_LK6(avx2, double, 4);
const LoweredKernels<float> lk_sse_f32 = TG_LK6(sse, float, 4);
const LoweredKernels<double> lk_sse_f64 = TG_LK6(sse, double, 2);
#undef TG_LK8
#undef TG_LK6
#undef TG_LOWERED
#undef TG_LOWERED_512
#undef TG_LOWERED_256
#undef TG_AVX512
#undef TG_AVX2
#undef TG_SSE
#undef TG_GOUTER_ARGS
#undef TG_LDOT_ARGS
#undef TG_GOUTER_ARGV
#undef TG_LDOT_ARGV

#define TG_OUTER_ARGS(T) index_t kd, const T *a, const T *b, index_t ldb, T *c, index_t ldc, bool acc

// MicroKernels::add_even: each vector of s is spread over two vectors of x, zeros between
// (lane l of the pair takes s[l/2] where l is even); the vectors run while i + L < n, so they
// touch x up to 2(i + L) - 1 < 2n - 1, the rest go one by one.
template <class T, int L>
[[gnu::always_inline]] inline void add_even_body(const T* s, index_t n, T* x) {
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  const V z{};
  index_t i = 0;
  for (; i + L < n; i += L) {
    V v, lo, hi, x0, x1;
    std::memcpy(&v, s + i, sizeof(V));
    shuffle2<L>(v, z, lo, [](int l) { return l % 2 ? L : l / 2; });
    shuffle2<L>(v, z, hi, [](int l) { return l % 2 ? L : L / 2 + l / 2; });
    std::memcpy(&x0, x + 2 * i, sizeof(V));
    std::memcpy(&x1, x + 2 * i + L, sizeof(V));
    x0 += lo;
    x1 += hi;
    std::memcpy(x + 2 * i, &x0, sizeof(V));
    std::memcpy(x + 2 * i + L, &x1, sizeof(V));
  }
  for (; i < n; ++i) x[2 * i] += s[i];
}
#define TG_ADD_EVEN(ISA, ATTR, T, L) \
  ATTR void add_even_##ISA##_##T(const T* s, index_t n, T* x) { add_even_body<T, L>(s, n, x); }
TG_ADD_EVEN(avx512, [[gnu::target("avx512f,avx512vl,avx512dq,fma,avx2")]], float, 16)
TG_ADD_EVEN(avx512, [[gnu::target("avx512f,avx512vl,avx512dq,fma,avx2")]], double, 8)
TG_ADD_EVEN(avx2, [[gnu::target("avx2,fma")]], float, 8)
TG_ADD_EVEN(avx2, [[gnu::target("avx2,fma")]], double, 4)
TG_ADD_EVEN(sse, , float, 4)
TG_ADD_EVEN(sse, , double, 2)
#undef TG_ADD_EVEN

// AVX-512: 32 zmm registers. outer 8 x 3 vectors = 24 accumulators.
[[gnu::target("avx512f,avx512vl,avx512dq,fma,avx2")]] void outer_avx512_f32(TG_OUTER_ARGS(float)) {
  outer_body<float, 16, 8, 3>(kd, a, b, ldb, c, ldc, acc);
}
[[gnu::target("avx512f,avx512vl,avx512dq,fma,avx2")]] void outer_avx512_f64(TG_OUTER_ARGS(double)) {
  outer_body<double, 8, 8, 3>(kd, a, b, ldb, c, ldc, acc);
}
// AVX2: 16 ymm registers. outer 6 x 2 = 12 accumulators.
[[gnu::target("avx2,fma")]] void outer_avx2_f32(TG_OUTER_ARGS(float)) {
  outer_body<float, 8, 6, 2>(kd, a, b, ldb, c, ldc, acc);
}
[[gnu::target("avx2,fma")]] void outer_avx2_f64(TG_OUTER_ARGS(double)) {
  outer_body<double, 4, 6, 2>(kd, a, b, ldb, c, ldc, acc);
}
// Baseline x86-64 (SSE2): 16 xmm registers. outer 4 x 2 = 8.
void outer_sse_f32(TG_OUTER_ARGS(float)) { outer_body<float, 4, 4, 2>(kd, a, b, ldb, c, ldc, acc); }
void outer_sse_f64(TG_OUTER_ARGS(double)) {
  outer_body<double, 2, 4, 2>(kd, a, b, ldb, c, ldc, acc);
}

#undef TG_OUTER_ARGS

const MicroKernels<float> k_avx512_f32{"avx512", 8, 48, 16, outer_avx512_f32, add_even_avx512_float};
const MicroKernels<double> k_avx512_f64{"avx512", 8, 24, 8, outer_avx512_f64, add_even_avx512_double};
const MicroKernels<float> k_avx2_f32{"avx2", 6, 16, 8, outer_avx2_f32, add_even_avx2_float};
const MicroKernels<double> k_avx2_f64{"avx2", 6, 8, 4, outer_avx2_f64, add_even_avx2_double};
const MicroKernels<float> k_sse_f32{"generic", 4, 8, 4, outer_sse_f32, add_even_sse_float};
const MicroKernels<double> k_sse_f64{"generic", 4, 4, 2, outer_sse_f64, add_even_sse_double};

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

int isa_level() { return current_isa().load(std::memory_order_relaxed); }

const MicroKernels<float>& micro_kernels_f32() {
  switch (static_cast<Isa>(current_isa().load(std::memory_order_relaxed))) {
    case Isa::avx512: return k_avx512_f32;
    case Isa::avx2: return k_avx2_f32;
    default: return k_sse_f32;
  }
}
const LoweredKernels<float>& lowered_kernels_f32() {
  switch (static_cast<Isa>(current_isa().load(std::memory_order_relaxed))) {
    case Isa::avx512: return lk_avx512_f32;
    case Isa::avx2: return lk_avx2_f32;
    default: return lk_sse_f32;
  }
}
const LoweredKernels<double>& lowered_kernels_f64() {
  switch (static_cast<Isa>(current_isa().load(std::memory_order_relaxed))) {
    case Isa::avx512: return lk_avx512_f64;
    case Isa::avx2: return lk_avx2_f64;
    default: return lk_sse_f64;
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
                 bool acc, bool b_padded) {
  const int mr = mk.mr, nr = mk.nr;
  T tile[16 * 48];  // largest mr x nr
  T* bpad = nullptr;
  for (index_t j0 = 0; j0 < n_count; j0 += nr) {
    const index_t nj = std::min<index_t>(nr, n_count - j0);
    const T* bs = b + j0;
    index_t lb = ldb;
    if (nj < nr && !b_padded) {  // tail strip: copy into a zero-padded kd x nr strip
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

template void outer_block<float>(const MicroKernels<float>&, index_t, index_t, index_t,
                                 const float*, index_t, const float*, index_t, float*, index_t,
                                 bool, bool);
template void outer_block<double>(const MicroKernels<double>&, index_t, index_t, index_t,
                                  const double*, index_t, const double*, index_t, double*,
                                  index_t, bool, bool);

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
