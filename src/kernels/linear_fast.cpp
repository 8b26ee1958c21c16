// Fast linear: the float/double twins of linear_ref.hpp (see linear_fast.hpp). All three
// products are one packed GEMM C[M x N] += A[M x Kd] * B[Kd x N] with B row-major:
//   forward        C = y  (N x out),  A = x,    B = w^T (transposed once per call by L x L
//                                                        vector blocks), Kd = in
//   backward-data  C = dx (N x in),   A = dy,   B = w,                          Kd = out
//   backward-wts   C = dw (out x in), A = dy^T, B = x,                          Kd = N
// Tasks are (block of rows, block of columns) of C; each runs the whole reduction in fixed
// blocks of 256, so the summation order depends on the shape only.
#include "tapegrad/kernels/linear_fast.hpp"

#include <omp.h>

#include <algorithm>
#include <cassert>

#include "fast_gemm.hpp"
#include "tapegrad/kernels/activation_fast.hpp"

namespace tapegrad::fast {
namespace {

using detail::micro_kernels;
using detail::MicroKernels;
using detail::scratch;

constexpr index_t kc_rows = 256;
// Below this much work a call runs on the calling thread only (same bits either way).
constexpr double min_parallel_flops = 1e6;

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// C (M x N, ldc) = A * B (accumulate: C += A * B, C initialized), A given by a(m, kk), B
// row-major (ldb). Without accumulate the first block of the reduction writes C, so C needs no
// zeroing first (backward-weights' dw is as large as w: zeroing it was a quarter of the call).
// b_padded: as detail::outer_block's (B's rows run on, zero, to a whole number of strips).
template <class T, class F>
void gemm(index_t m_count, index_t n_count, index_t kd, F a, const T* b, index_t ldb, T* c,
          index_t ldc, bool accumulate, bool b_padded = false) {
  const MicroKernels<T>& mk = micro_kernels<T>();
  const index_t panels = ceil_div(m_count, mk.mr), panel_stride = kd * mk.mr;
  T* apack = scratch<T>(0, panels * panel_stride);
  detail::pack_a<T>(m_count, kd, mk.mr, apack, a);
  const index_t mb = 4 * mk.mr, nb = 4 * mk.nr;
  const index_t mblocks = ceil_div(m_count, mb), nblocks = ceil_div(n_count, nb);
#pragma omp parallel for schedule(dynamic, 1) if (2.0 * double(m_count) * double(n_count) * double(kd) >= min_parallel_flops)
  for (index_t t = 0; t < mblocks * nblocks; ++t) {
    const index_t i0 = (t / nblocks) * mb, j0 = (t % nblocks) * nb;
    const index_t mi = std::min(mb, m_count - i0), nj = std::min(nb, n_count - j0);
    for (index_t kk0 = 0; kk0 < kd; kk0 += kc_rows) {
      const index_t rows = std::min(kc_rows, kd - kk0);
      detail::outer_block(mk, mi, nj, rows, apack + (i0 / mk.mr) * panel_stride + kk0 * mk.mr,
                          panel_stride, b + kk0 * ldb + j0, ldb, c + i0 * ldc + j0, ldc,
                          accumulate || kk0 > 0, b_padded);
    }
  }
}

template <class T>
void forward_into(const LinearGeom& g, const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* b,
                  Tensor<T>& y, Activation act) {
  assert(x.shape() == g.x_shape() && w.shape() == g.w_shape());
  assert(!b || b->shape() == g.b_shape());
  if (y.shape() != g.y_shape()) y = Tensor<T>(g.y_shape());
  const T* wd = w.data();
  // w^T, in x out, by L x L vector transposes and then the edges, its rows zero-padded to a
  // whole number of micro-kernel strips (ld), so that the GEMM reads its last strip in place
  // instead of copying it, zero-padded, per task and block (lenet5's fc1, 120 columns: a copy
  // of 400 x 48 per call)
  const index_t nr = micro_kernels<T>().nr, ld = ceil_div(g.out, nr) * nr;
  T* wt = scratch<T>(1, g.in * ld);
  const auto& lk = detail::lowered_kernels<T>();
  const index_t L = lk.lanes, ob = g.out / L * L, ib = g.in / L * L;
  for (index_t o = 0; o < ob; o += L)
    for (index_t i = 0; i < ib; i += L) lk.transpose(wd + o * g.in + i, g.in, wt + i * ld + o, ld);
  for (index_t o = 0; o < g.out; ++o)
    for (index_t i = o < ob ? ib : 0; i < g.in; ++i) wt[i * ld + o] = wd[o * g.in + i];
  for (index_t i = 0; i < g.in; ++i) std::fill(wt + i * ld + g.out, wt + (i + 1) * ld, T(0));
  T* yd = y.data();
  for (index_t n = 0; n < g.n; ++n)
    for (index_t o = 0; o < g.out; ++o) yd[n * g.out + o] = b ? (*b)[o] : T(0);
  const T* xd = x.data();
  gemm<T>(g.n, g.out, g.in, [&](index_t n, index_t i) { return xd[n * g.in + i]; }, wt, ld,
          yd, g.out, /*accumulate=*/true, /*b_padded=*/true);  // onto the bias
  // The activation after the product, over y just written (lenet5's fc1 at a shard of 16
  // rows: 7.5 KB, still in L1); parallel over chunks for a large y
  activate(act, y);
}

template <class T>
void backward_data_into(const LinearGeom& g, const Tensor<T>& dy, const Tensor<T>& w,
                        Tensor<T>& dx) {
  assert(dy.shape() == g.y_shape() && w.shape() == g.w_shape());
  if (dx.shape() != g.x_shape()) dx = Tensor<T>(g.x_shape());
  const T* dyd = dy.data();
  gemm<T>(g.n, g.in, g.out, [&](index_t n, index_t o) { return dyd[n * g.out + o]; }, w.data(),
          g.in, dx.data(), g.in, /*accumulate=*/false);
}

template <class T>
void backward_weights_into(const LinearGeom& g, const Tensor<T>& x, const Tensor<T>& dy,
                           Tensor<T>& dw) {
  assert(x.shape() == g.x_shape() && dy.shape() == g.y_shape());
  if (dw.shape() != g.w_shape()) dw = Tensor<T>(g.w_shape());
  const T* dyd = dy.data();
  gemm<T>(g.out, g.in, g.n, [&](index_t o, index_t n) { return dyd[n * g.out + o]; }, x.data(),
          g.in, dw.data(), g.in, /*accumulate=*/false);
}

// db[o] = sum_n dy[n, o] in increasing n, as the reference (the same bits); the loop runs over
// o innermost so that it vectorizes, each column still its own chain in n order.
template <class T>
void backward_bias_into(const LinearGeom& g, const Tensor<T>& dy, Tensor<T>& db) {
  assert(dy.shape() == g.y_shape());
  if (db.shape() != g.b_shape()) db = Tensor<T>(g.b_shape());
  const T* dyd = dy.data();
  T* dbd = db.data();
  constexpr index_t cols = 256;  // columns per task
  const index_t tasks = (g.out + cols - 1) / cols;
#pragma omp parallel for schedule(static) if (double(dy.numel()) >= 0.1 * min_parallel_flops)
  for (index_t t = 0; t < tasks; ++t) {
    const index_t o0 = t * cols, o1 = std::min(g.out, o0 + cols);
    for (index_t o = o0; o < o1; ++o) dbd[o] = T(0);
    for (index_t n = 0; n < g.n; ++n) {
      const T* row = dyd + n * g.out;
      for (index_t o = o0; o < o1; ++o) dbd[o] += row[o];
    }
  }
}

}  // namespace

#define TAPEGRAD_LINEAR_FAST(T)                                                                  \
  Tensor<T> linear_forward(const LinearGeom& g, const Tensor<T>& x, const Tensor<T>& w,         \
                           const Tensor<T>* b, Activation act) {                                 \
    Tensor<T> y(g.y_shape());                                                                    \
    forward_into(g, x, w, b, y, act);                                                            \
    return y;                                                                                    \
  }                                                                                              \
  void linear_forward_into(const LinearGeom& g, const Tensor<T>& x, const Tensor<T>& w,         \
                           const Tensor<T>* b, Tensor<T>& y, Activation act) {                   \
    forward_into(g, x, w, b, y, act);                                                            \
  }                                                                                              \
  Tensor<T> linear_backward_data(const LinearGeom& g, const Tensor<T>& dy, const Tensor<T>& w) { \
    Tensor<T> dx(g.x_shape());                                                                   \
    backward_data_into(g, dy, w, dx);                                                            \
    return dx;                                                                                   \
  }                                                                                              \
  void linear_backward_data_into(const LinearGeom& g, const Tensor<T>& dy, const Tensor<T>& w,  \
                                 Tensor<T>& dx) {                                                \
    backward_data_into(g, dy, w, dx);                                                            \
  }                                                                                              \
  Tensor<T> linear_backward_weights(const LinearGeom& g, const Tensor<T>& x,                    \
                                    const Tensor<T>& dy) {                                       \
    Tensor<T> dw(g.w_shape());                                                                   \
    backward_weights_into(g, x, dy, dw);                                                         \
    return dw;                                                                                   \
  }                                                                                              \
  void linear_backward_weights_into(const LinearGeom& g, const Tensor<T>& x,                    \
                                    const Tensor<T>& dy, Tensor<T>& dw) {                        \
    backward_weights_into(g, x, dy, dw);                                                         \
  }                                                                                              \
  Tensor<T> linear_backward_bias(const LinearGeom& g, const Tensor<T>& dy) {                    \
    Tensor<T> db(g.b_shape());                                                                   \
    backward_bias_into(g, dy, db);                                                               \
    return db;                                                                                   \
  }                                                                                              \
  void linear_backward_bias_into(const LinearGeom& g, const Tensor<T>& dy, Tensor<T>& db) {     \
    backward_bias_into(g, dy, db);                                                               \
  }

TAPEGRAD_LINEAR_FAST(float)
TAPEGRAD_LINEAR_FAST(double)
#undef TAPEGRAD_LINEAR_FAST

}  // namespace tapegrad::fast
