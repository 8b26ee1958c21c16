// Fast activations: the float/double twins of activation_ref.hpp (see activation_fast.hpp).
// This file is compiled with -ffp-contract=off (CMakeLists.txt): a multiply followed by an add
// must stay two roundings, as in the reference, for the results to be the reference's bits.
//   element-wise  chunks of `chunk` elements, OpenMP-parallel above `min_parallel`; relu is
//                 written with vectors for each instruction set (a select is exact)
//   softmax and log_softmax  one task per (n, inner index) slice along dim 1, in the
//                 reference's order within the slice
#include "tapegrad/kernels/activation_fast.hpp"

#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "fast_gemm.hpp"

namespace tapegrad::fast {
namespace {

constexpr index_t chunk = 4096;           // elements per task of the element-wise ops
constexpr index_t min_parallel = 1 << 16;  // below this many elements: the calling thread only

// Runs f(begin, end) over [0, n) in chunks, in parallel for large n (each element is computed
// alone, so the partition changes no bit).
template <class F>
void for_chunks(index_t n, F f) {
  const index_t chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n >= min_parallel)
  for (index_t c = 0; c < chunks; ++c) f(c * chunk, std::min(n, (c + 1) * chunk));
}

template <class T>
void shape_like(const Tensor<T>& like, Tensor<T>& out) {
  if (out.shape() != like.shape()) out = Tensor<T>(like.shape());
}

// relu on vectors of L lanes: y = x > 0 ? x : 0, dx = x > 0 ? dy : 0 (NaN > 0 is false: 0).
template <class T, int L>
[[gnu::always_inline]] inline void relu_fwd_body(const T* x, T* y, index_t n) {
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  index_t i = 0;
  for (; i + L <= n; i += L) {
    V v;
    std::memcpy(&v, x + i, sizeof(V));
    const V r = v > V{} ? v : V{};
    std::memcpy(y + i, &r, sizeof(V));
  }
  for (; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}
template <class T, int L>
[[gnu::always_inline]] inline void relu_bwd_body(const T* x, const T* dy, T* dx, index_t n) {
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  index_t i = 0;
  for (; i + L <= n; i += L) {
    V v, d;
    std::memcpy(&v, x + i, sizeof(V));
    std::memcpy(&d, dy + i, sizeof(V));
    const V r = v > V{} ? d : V{};
    std::memcpy(dx + i, &r, sizeof(V));
  }
  for (; i < n; ++i) dx[i] = x[i] > T(0) ? dy[i] : T(0);
}

#define TG_RELU(ISA, ATTR, T, L)                                                         \
  ATTR void relu_fwd_##ISA(const T* x, T* y, index_t n) { relu_fwd_body<T, L>(x, y, n); } \
  ATTR void relu_bwd_##ISA(const T* x, const T* dy, T* dx, index_t n) {                   \
    relu_bwd_body<T, L>(x, dy, dx, n);                                                    \
  }
#define TG_AVX512 [[gnu::target("avx512f,avx512vl,avx512dq,avx2")]]
#define TG_AVX2 [[gnu::target("avx2")]]
TG_RELU(avx512, TG_AVX512, float, 16)
TG_RELU(avx2, TG_AVX2, float, 8)
TG_RELU(sse, , float, 4)
TG_RELU(avx512, TG_AVX512, double, 8)
TG_RELU(avx2, TG_AVX2, double, 4)
TG_RELU(sse, , double, 2)
#undef TG_RELU
#undef TG_AVX512
#undef TG_AVX2

template <class T>
void relu_fwd(const T* x, T* y, index_t n) {
  switch (detail::isa_level()) {
    case 2: return relu_fwd_avx512(x, y, n);
    case 1: return relu_fwd_avx2(x, y, n);
    default: return relu_fwd_sse(x, y, n);
  }
}
template <class T>
void relu_bwd(const T* x, const T* dy, T* dx, index_t n) {
  switch (detail::isa_level()) {
    case 2: return relu_bwd_avx512(x, dy, dx, n);
    case 1: return relu_bwd_avx2(x, dy, dx, n);
    default: return relu_bwd_sse(x, dy, dx, n);
  }
}

template <class T>
void relu_forward_impl(const Tensor<T>& x, Tensor<T>& y) {
  shape_like(x, y);
  const T* xd = x.data();
  T* yd = y.data();
  for_chunks(x.numel(), [&](index_t b, index_t e) { relu_fwd(xd + b, yd + b, e - b); });
}

template <class T>
void relu_backward_impl(const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& dx) {
  assert(x.shape() == dy.shape());
  shape_like(x, dx);
  const T *xd = x.data(), *dyd = dy.data();
  T* dxd = dx.data();
  for_chunks(x.numel(), [&](index_t b, index_t e) { relu_bwd(xd + b, dyd + b, dxd + b, e - b); });
}

// The element functions of sigmoid and tanh over a span (y may be x: in place), the one
// implementation behind the tensor ops below and fast::activate.
template <class T>
void sigmoid_span(const T* x, T* y, index_t n) {
  for (index_t i = 0; i < n; ++i) {
    const T v = x[i];
    if (v >= T(0)) {
      y[i] = T(1) / (T(1) + std::exp(-v));
    } else {
      const T ev = std::exp(v);
      y[i] = ev / (T(1) + ev);
    }
  }
}
template <class T>
void tanh_span(const T* x, T* y, index_t n) {
  for (index_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

template <class T>
void sigmoid_forward_impl(const Tensor<T>& x, Tensor<T>& y) {
  shape_like(x, y);
  const T* xd = x.data();
  T* yd = y.data();
  for_chunks(x.numel(), [&](index_t b, index_t e) { sigmoid_span(xd + b, yd + b, e - b); });
}

template <class T>
void sigmoid_backward_impl(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx) {
  assert(y.shape() == dy.shape());
  shape_like(y, dx);
  const T *yd = y.data(), *dyd = dy.data();
  T* dxd = dx.data();
  for_chunks(y.numel(), [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) dxd[i] = dyd[i] * yd[i] * (T(1) - yd[i]);
  });
}

template <class T>
void tanh_forward_impl(const Tensor<T>& x, Tensor<T>& y) {
  shape_like(x, y);
  const T* xd = x.data();
  T* yd = y.data();
  for_chunks(x.numel(), [&](index_t b, index_t e) { tanh_span(xd + b, yd + b, e - b); });
}

template <class T>
void tanh_backward_impl(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx) {
  assert(y.shape() == dy.shape());
  shape_like(y, dx);
  const T *yd = y.data(), *dyd = dy.data();
  T* dxd = dx.data();
  for_chunks(y.numel(), [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) dxd[i] = dyd[i] * (T(1) - yd[i] * yd[i]);
  });
}

// A rank >= 2 tensor as (outer, C, inner), as the reference's Dim1View: element (o, c, i) at
// (o*C + c)*inner + i. f(base, stride, count) runs on the slice (o, i): elements
// base + c*stride for c < C; slices in parallel when there are many elements.
template <class T, class F>
void for_slices(const Shape& s, F f) {
  assert(s.rank() >= 2 && s[1] > 0);
  index_t inner = 1;
  for (index_t d = 2; d < s.rank(); ++d) inner *= s[d];
  const index_t outer = s[0], c = s[1], slices = outer * inner;
#pragma omp parallel for schedule(static) if (slices * c >= min_parallel)
  for (index_t sl = 0; sl < slices; ++sl) {
    const index_t o = sl / inner, i = sl % inner;
    f(o * c * inner + i, inner, c);
  }
}

template <class T>
void softmax_forward_impl(const Tensor<T>& x, Tensor<T>& y) {
  shape_like(x, y);
  const T* xd = x.data();
  T* yd = y.data();
  for_slices<T>(x.shape(), [&](index_t base, index_t st, index_t nc) {
    const T* xs = xd + base;
    T* ys = yd + base;
    T m = xs[0];
    for (index_t c = 1; c < nc; ++c)
      if (xs[c * st] > m) m = xs[c * st];
    T sum(0);
    for (index_t c = 0; c < nc; ++c) {
      ys[c * st] = std::exp(xs[c * st] - m);
      sum += ys[c * st];
    }
    for (index_t c = 0; c < nc; ++c) ys[c * st] /= sum;
  });
}

template <class T>
void softmax_backward_impl(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx) {
  assert(y.shape() == dy.shape());
  shape_like(y, dx);
  const T *yd = y.data(), *dyd = dy.data();
  T* dxd = dx.data();
  for_slices<T>(y.shape(), [&](index_t base, index_t st, index_t nc) {
    T dot(0);
    for (index_t c = 0; c < nc; ++c) dot += yd[base + c * st] * dyd[base + c * st];
    for (index_t c = 0; c < nc; ++c)
      dxd[base + c * st] = yd[base + c * st] * (dyd[base + c * st] - dot);
  });
}

template <class T>
void log_softmax_forward_impl(const Tensor<T>& x, Tensor<T>& y) {
  shape_like(x, y);
  const T* xd = x.data();
  T* yd = y.data();
  for_slices<T>(x.shape(), [&](index_t base, index_t st, index_t nc) {
    const T* xs = xd + base;
    T m = xs[0];
    for (index_t c = 1; c < nc; ++c)
      if (xs[c * st] > m) m = xs[c * st];
    T sum(0);
    for (index_t c = 0; c < nc; ++c) sum += std::exp(xs[c * st] - m);
    const T lse = std::log(sum);
    for (index_t c = 0; c < nc; ++c) yd[base + c * st] = xs[c * st] - m - lse;
  });
}

template <class T>
void log_softmax_backward_impl(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx) {
  assert(y.shape() == dy.shape());
  shape_like(y, dx);
  const T *yd = y.data(), *dyd = dy.data();
  T* dxd = dx.data();
  for_slices<T>(y.shape(), [&](index_t base, index_t st, index_t nc) {
    T sum(0);
    for (index_t c = 0; c < nc; ++c) sum += dyd[base + c * st];
    for (index_t c = 0; c < nc; ++c)
      dxd[base + c * st] = dyd[base + c * st] - std::exp(yd[base + c * st]) * sum;
  });
}

}  // namespace

#define TAPEGRAD_UNARY(T, NAME)                                                  \
  Tensor<T> NAME##_forward(const Tensor<T>& x) {                                 \
    Tensor<T> y(x.shape());                                                      \
    NAME##_forward_impl(x, y);                                                   \
    return y;                                                                    \
  }                                                                              \
  void NAME##_forward_into(const Tensor<T>& x, Tensor<T>& y) { NAME##_forward_impl(x, y); } \
  Tensor<T> NAME##_backward(const Tensor<T>& a, const Tensor<T>& dy) {           \
    Tensor<T> dx(a.shape());                                                     \
    NAME##_backward_impl(a, dy, dx);                                             \
    return dx;                                                                   \
  }                                                                              \
  void NAME##_backward_into(const Tensor<T>& a, const Tensor<T>& dy, Tensor<T>& dx) { \
    NAME##_backward_impl(a, dy, dx);                                             \
  }
#define TAPEGRAD_ACTIVATIONS(T) \
  TAPEGRAD_UNARY(T, relu)       \
  TAPEGRAD_UNARY(T, sigmoid)    \
  TAPEGRAD_UNARY(T, tanh)       \
  TAPEGRAD_UNARY(T, softmax)    \
  TAPEGRAD_UNARY(T, log_softmax)
TAPEGRAD_ACTIVATIONS(float)
TAPEGRAD_ACTIVATIONS(double)
#undef TAPEGRAD_ACTIVATIONS
#undef TAPEGRAD_UNARY

namespace {
template <class T>
void activate_impl(Activation a, T* y, index_t n) {
  switch (a) {
    case Activation::none: return;
    case Activation::relu: return relu_fwd(y, y, n);
    case Activation::sigmoid: return sigmoid_span(y, y, n);
    case Activation::tanh: return tanh_span(y, y, n);
  }
}
}  // namespace
void activate(Activation a, float* y, index_t n) { activate_impl(a, y, n); }
void activate(Activation a, double* y, index_t n) { activate_impl(a, y, n); }
void activate(Activation a, Tensor<float>& y) {
  if (a != Activation::none)
    for_chunks(y.numel(), [&](index_t b, index_t e) { activate_impl(a, y.data() + b, e - b); });
}
void activate(Activation a, Tensor<double>& y) {
  if (a != Activation::none)
    for_chunks(y.numel(), [&](index_t b, index_t e) { activate_impl(a, y.data() + b, e - b); });
}

}  // namespace tapegrad::fast
