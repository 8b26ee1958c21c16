// Private to the fast kernels: the register-blocked micro-kernels they are built on, chosen at
// run time for the CPU (AVX-512, AVX2 or generic SSE2), and the few drivers around them.
//
// Determinism: every output element's sum is accumulated in an order fixed by the problem shape
// (the blocking of the reduction dimension is a function of the shape only). Threads only
// decide WHICH tiles a thread computes, never how a tile's sum is ordered, so results are the
// same bits for any thread count. The ISA does change the order (vector width), so results
// may differ between machines, never between runs or thread counts on one machine.
#pragma once

#include <array>
#include <utility>
#include <cstdint>
#include <vector>

namespace tapegrad::fast::detail {

using index_t = std::int64_t;

template <class T>
struct MicroKernels {
  const char* isa;
  int mr, nr;  // outer-product tile: mr rows x nr columns of C
  int lanes;   // vector lanes
  // Full mr x nr tile: c[i*ldc+j] = (acc ? c[i*ldc+j] : 0) + sum_{kk<kd} a[kk*mr+i]*b[kk*ldb+j],
  // sum in increasing kk (one fused multiply-add chain per element where the ISA has FMA).
  void (*outer)(index_t kd, const T* a, const T* b, index_t ldb, T* c, index_t ldc, bool acc);
  // Stride-2 scatter-add (col2im's rows at stride 2): x[2i] += s[i] for i < n, in vectors that
  // also add +0 to the odd elements between (x[0, 2n - 1) only). x + (+0) is x for every x
  // but -0, so the result is the same bits as the scalar loop where no element of x is -0: a
  // sum that starts from +0 never is (in round-to-nearest, a + b is -0 only if both are).
  void (*add_even)(const T* s, index_t n, T* x);
};

// The micro-kernels of the lowered convolution (conv2d_fast.cpp), for mr = 1 .. mr_max rows of
// the output tile (rows: output channels). A "vector" is `lanes` consecutive elements.
//   outer[mr]  the mr x np[mr] tile of output vectors
//                c[m*ldc + i*lanes + l] = init + sum_{kk < kd} a[kk*mr + m] * b[boff[kk] + pofs[i] + l]
//              summed in increasing kk, one fused multiply-add chain per element; init is 0
//              (mode 0), bias[m] (mode 1) or the tile's old value (mode 2). a: a packed panel
//              (kd x mr), b + boff[kk]: where reduction term kk's input starts, pofs[i]: where
//              output vector i's inputs sit relative to that.
//   dot[mr]    the mr x nt[mr] tile of lane-wise dot products, kept as vectors:
//                acc[(m*nt + t)*lanes + l] += sum_{row < rows} sum_{s < steps}
//                    a[m*lda + row*ras + s*lanes + l] * b[boff[t] + row*rbs + s*lanes + l]
//              summed in increasing (row, s), one chain per lane; the caller combines the lanes.
//   couter[kb] the channels tier's tile: cnw[kb] output pixels x kb vectors of channels
//                c[i*kb*lanes + v*lanes + l] = init + sum_{kk < kd} w[kk*kb*lanes + v*lanes + l]
//                    * x[boff[kk] + pofs[i]]
//              summed in increasing kk, one fused multiply-add chain per element; init is 0
//              (mode 0), bias[v*lanes + l] (mode 1) or the tile's old value (mode 2). w: a
//              packed panel (kd x kb vectors), x + boff[kk] + pofs[i]: the input of pixel i at
//              tap kk (one scalar, broadcast).
//   cdot[kb]   the channels tier's backward-weights tile: cnw[kb] taps x kb vectors of channels
//                acc[(t*kb + v)*lanes + l] += sum_{row < rows} sum_{j < n}
//                    d[((row*n + j)*kb + v)*lanes + l] * x[boff[t] + row*xrs + j]
//              summed in increasing (row, j), one fused multiply-add chain per element. d: dy
//              of kb vectors of channels, pixel-major (kb*lanes a pixel, rows of n pixels),
//              x + boff[t] + row*xrs + j: the input of pixel j of the row at tap t (one scalar,
//              broadcast).
//   transpose  an L x L block (L = lanes): dst[j*ld_dst + i] = src[i*ld_src + j] (exact copies).
//   sum        acc[4][L] += x[0..n): vector i (i < n/L) into acc[i % 4], the n % L left over
//              into lanes 0.. of acc[(n/L) % 4]; each lane one chain of adds in order.
template <class T>
struct LoweredKernels {
  static constexpr int max_rows = 8;
  static constexpr int max_vecs = 4;
  int lanes;
  int mr_max;
  int np[max_rows + 1];
  int nt[max_rows + 1];
  void (*outer[max_rows + 1])(index_t kd, const T* a, const T* b, const index_t* boff,
                              const index_t* pofs, T* c, index_t ldc, int mode, const T* bias);
  void (*dot[max_rows + 1])(index_t rows, index_t steps, const T* a, index_t lda, index_t ras,
                            const T* b, const index_t* boff, index_t rbs, T* acc);
  int kb_max;             // channels tier: most vectors of channels in a tile
  int cnw[max_vecs + 1];  // channels tier: pixels of a tile of kb vectors
  void (*couter[max_vecs + 1])(index_t kd, const T* w, const T* x, const index_t* boff,
                               const index_t* pofs, T* c, int mode, const T* bias);
  void (*cdot[max_vecs + 1])(index_t rows, index_t n, const T* d, const T* x, index_t xrs,
                             const index_t* boff, T* acc);
  void (*transpose)(const T* src, index_t ld_src, T* dst, index_t ld_dst);
  void (*sum)(const T* x, index_t n, T* acc);
};

// The instruction set in use: 0 baseline x86-64, 1 AVX2+FMA, 2 AVX-512 (for the fast kernels
// outside this file that compile their own variants).
int isa_level();

// The kernels for this CPU (or the ones forced by set_isa).
const MicroKernels<float>& micro_kernels_f32();
const MicroKernels<double>& micro_kernels_f64();
template <class T>
const MicroKernels<T>& micro_kernels() {
  if constexpr (sizeof(T) == 4)
    return micro_kernels_f32();
  else
    return micro_kernels_f64();
}
const LoweredKernels<float>& lowered_kernels_f32();
const LoweredKernels<double>& lowered_kernels_f64();
template <class T>
const LoweredKernels<T>& lowered_kernels() {
  if constexpr (sizeof(T) == 4)
    return lowered_kernels_f32();
  else
    return lowered_kernels_f64();
}

// The two-source shuffle: out lane l = lane f(l) of the concatenation a:b (indices L and up
// pick from b), f a captureless lambda evaluated at compile time. One spelling for GCC and
// clang: __builtin_shufflevector with constant indices (GCC's __builtin_shuffle with a mask
// vector is GCC's own). By reference, so that no vector crosses a call built without the
// vector instruction set (GCC's -Wpsabi); always inlined into the callers that have it.
template <class V, class F, int... I>
[[gnu::always_inline]] inline void shuffle2_seq(const V& a, const V& b, V& out,
                                                std::integer_sequence<int, I...>) {
  out = __builtin_shufflevector(a, b, F{}(I)...);
}
template <int L, class V, class F>
[[gnu::always_inline]] inline void shuffle2(const V& a, const V& b, V& out, F) {
  shuffle2_seq<V, F>(a, b, out, std::make_integer_sequence<int, L>{});
}

// A grow-only per-thread buffer (slot distinguishes simultaneous buffers of one thread).
template <class T>
T* scratch(int slot, index_t n) {
  thread_local std::vector<T> buf[8];
  auto& b = buf[slot];
  if (static_cast<index_t>(b.size()) < n) b.resize(static_cast<std::size_t>(n));
  return b.data();
}

// scratch() with the start rounded up to a 64-byte boundary (a cache line; an AVX-512 vector).
template <class T>
T* scratch_aligned(int slot, index_t n) {
  constexpr index_t pad = 64 / sizeof(T);
  T* p = scratch<T>(slot, n + pad);
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  return p + ((64 - addr % 64) % 64) / sizeof(T);
}

// Packs the M x Kd matrix a(m, kk) = f(m, kk) into ceil(M/mr) panels of Kd x mr (panel p at
// out + p*Kd*mr, element (kk, i) at kk*mr + i), zero-padding rows >= M.
// Row by row: a row-major A is read contiguously (the panel it writes stays in the L1 cache).
template <class T, class F>
void pack_a(index_t m_count, index_t kd, int mr, T* out, F f) {
  for (index_t p0 = 0; p0 < m_count; p0 += mr) {
    T* panel = out + (p0 / mr) * kd * mr;
    for (int i = 0; i < mr; ++i)
      if (p0 + i < m_count)
        for (index_t kk = 0; kk < kd; ++kk) panel[kk * mr + i] = f(p0 + i, kk);
      else
        for (index_t kk = 0; kk < kd; ++kk) panel[kk * mr + i] = T(0);
  }
}

// C[M x N] (ldc) = (acc ? C : 0) + A[M x kd] * B[kd x N] over ONE block of the reduction:
// A packed by pack_a (panel stride a_panel_stride elements, this block's first row at a),
// B row-major (ldb). Partial tiles go through a temporary tile, so C needs no padding, and
// neither does B: a last strip of fewer than nr columns is copied, zero-padded, by each call,
// unless b_padded says B's rows already run on to a whole strip (ldb >= N rounded up to nr,
// the extra columns finite, zero for instance: they only feed the tile's discarded columns).
template <class T>
void outer_block(const MicroKernels<T>& mk, index_t m_count, index_t n_count, index_t kd,
                 const T* a, index_t a_panel_stride, const T* b, index_t ldb, T* c, index_t ldc,
                 bool acc, bool b_padded = false);

}  // namespace tapegrad::fast::detail
