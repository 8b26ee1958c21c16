// Fast pooling: the float/double twins of pool_ref.hpp (see pool_fast.hpp). One (n, c) plane
// per task; within a plane the reference's order exactly, with the window clipped to the input
// once per output instead of testing every element. The 2x2, stride 2, unpadded max pool
// (LeNet's) runs on vectors of L outputs per instruction set: the same comparisons in the
// same order as selects (no branch to mispredict on random data), the gradient written to
// each window's four positions at once (windows do not overlap).
#include "tapegrad/kernels/pool_fast.hpp"

#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "fast_gemm.hpp"

namespace tapegrad::fast {
namespace {

// Below this many window elements a call runs on the calling thread only (same bits).
constexpr double min_parallel_work = 1 << 16;
double work(const Pool2dGeom& g) {
  return double(g.n * g.c) * double(g.p * g.q) * double(g.prm.kernel[0] * g.prm.kernel[1]);
}

// The in-bounds part [a, b) of the window starting at `start` of extent `kernel` in [0, size).
struct Span {
  index_t a, b;
};
inline Span clip(index_t start, index_t kernel, index_t size) {
  return {std::max<index_t>(start, 0), std::min(start + kernel, size)};
}

// Offset (within the plane) of the first maximum of window (p, q), row-major, padding skipped.
template <class T>
index_t argmax_in_plane(const Pool2dGeom& g, const T* xp, index_t p, index_t q) {
  const Span hs = clip(p * g.prm.stride[0] - g.prm.pad[0], g.prm.kernel[0], g.h);
  const Span ws = clip(q * g.prm.stride[1] - g.prm.pad[1], g.prm.kernel[1], g.w);
  index_t best = hs.a * g.w + ws.a;
  for (index_t h = hs.a; h < hs.b; ++h)
    for (index_t w = ws.a; w < ws.b; ++w)
      if (xp[h * g.w + w] > xp[best]) best = h * g.w + w;
  return best;
}

namespace isa_sse {
#include "pool_max2x2.inc"
}  // namespace isa_sse
#pragma GCC push_options
#pragma GCC target("avx2")
namespace isa_avx2 {
#include "pool_max2x2.inc"
}  // namespace isa_avx2
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2")
namespace isa_avx512 {
#include "pool_max2x2.inc"
}  // namespace isa_avx512
#pragma GCC pop_options

#define TG_AVX512 [[gnu::target("avx512f,avx512vl,avx512dq,avx2")]]
#define TG_AVX2 [[gnu::target("avx2")]]
#define TG_MAX2X2(ISA, ATTR, T, L)                                                          \
  ATTR void max2x2_##ISA(const T* xp, index_t h, index_t w, index_t np, index_t nq, T* y,   \
                         const T* dy, T* dx) {                                              \
    isa_##ISA::max2x2_plane<T, L>(xp, h, w, np, nq, y, dy, dx);                             \
  }
TG_MAX2X2(avx512, TG_AVX512, float, 16)
TG_MAX2X2(avx2, TG_AVX2, float, 8)
TG_MAX2X2(sse, , float, 4)
TG_MAX2X2(avx512, TG_AVX512, double, 8)
TG_MAX2X2(avx2, TG_AVX2, double, 4)
TG_MAX2X2(sse, , double, 2)
#undef TG_MAX2X2
#undef TG_AVX512
#undef TG_AVX2

// One plane of the 2x2 / stride 2 max pool (see max2x2_plane in pool_max2x2.inc).
template <class T>
void max2x2_vector(const Pool2dGeom& g, const T* xp, T* y, const T* dy, T* dx) {
  switch (detail::isa_level()) {
    case 2: return max2x2_avx512(xp, g.h, g.w, g.p, g.q, y, dy, dx);
    case 1: return max2x2_avx2(xp, g.h, g.w, g.p, g.q, y, dy, dx);
    default: return max2x2_sse(xp, g.h, g.w, g.p, g.q, y, dy, dx);
  }
}

bool is_2x2_stride_2(const Pool2dGeom& g) {
  return g.prm.kernel == Pair{2, 2} && g.prm.stride == Pair{2, 2} && g.prm.pad == Pair{0, 0};
}

template <class T>
void max_forward_into(const Pool2dGeom& g, const Tensor<T>& x, Tensor<T>& y) {
  assert(x.shape() == g.x_shape());
  if (y.shape() != g.y_shape()) y = Tensor<T>(g.y_shape());
  const T* xd = x.data();
  T* yd = y.data();
  const index_t HW = g.h * g.w, PQ = g.p * g.q;
  const bool k2 = is_2x2_stride_2(g);
#pragma omp parallel for schedule(static) if (work(g) >= min_parallel_work)
  for (index_t plane = 0; plane < g.n * g.c; ++plane) {
    const T* xp = xd + plane * HW;
    T* yp = yd + plane * PQ;
    if (k2) {
      max2x2_vector<T>(g, xp, yp, nullptr, nullptr);
    } else {
      for (index_t p = 0; p < g.p; ++p)
        for (index_t q = 0; q < g.q; ++q) yp[p * g.q + q] = xp[argmax_in_plane(g, xp, p, q)];
    }
  }
}

template <class T>
void max_backward_into(const Pool2dGeom& g, const Tensor<T>& x, const Tensor<T>& dy,
                       Tensor<T>& dx) {
  assert(x.shape() == g.x_shape() && dy.shape() == g.y_shape());
  if (dx.shape() != g.x_shape()) dx = Tensor<T>(g.x_shape());
  const T* xd = x.data();
  const T* dyd = dy.data();
  T* dxd = dx.data();
  const index_t HW = g.h * g.w, PQ = g.p * g.q;
  const bool k2 = is_2x2_stride_2(g);
#pragma omp parallel for schedule(static) if (work(g) >= min_parallel_work)
  for (index_t plane = 0; plane < g.n * g.c; ++plane) {
    const T* xp = xd + plane * HW;
    const T* dyp = dyd + plane * PQ;
    T* dxp = dxd + plane * HW;
    if (k2) {
      max2x2_vector<T>(g, xp, nullptr, dyp, dxp);  // every cell of the plane written
    } else {
      std::fill(dxp, dxp + HW, T(0));
      for (index_t p = 0; p < g.p; ++p)
        for (index_t q = 0; q < g.q; ++q) dxp[argmax_in_plane(g, xp, p, q)] += dyp[p * g.q + q];
    }
  }
}

template <class T>
void avg_forward_into(const Pool2dGeom& g, const Tensor<T>& x, Tensor<T>& y) {
  assert(x.shape() == g.x_shape());
  if (y.shape() != g.y_shape()) y = Tensor<T>(g.y_shape());
  const T count = T(double(g.prm.kernel[0] * g.prm.kernel[1]));
  const T* xd = x.data();
  T* yd = y.data();
  const index_t HW = g.h * g.w, PQ = g.p * g.q;
#pragma omp parallel for schedule(static) if (work(g) >= min_parallel_work)
  for (index_t plane = 0; plane < g.n * g.c; ++plane) {
    const T* xp = xd + plane * HW;
    T* yp = yd + plane * PQ;
    for (index_t p = 0; p < g.p; ++p) {
      const Span hs = clip(p * g.prm.stride[0] - g.prm.pad[0], g.prm.kernel[0], g.h);
      for (index_t q = 0; q < g.q; ++q) {
        const Span ws = clip(q * g.prm.stride[1] - g.prm.pad[1], g.prm.kernel[1], g.w);
        T acc = T(0);
        for (index_t h = hs.a; h < hs.b; ++h)
          for (index_t w = ws.a; w < ws.b; ++w) acc += xp[h * g.w + w];
        yp[p * g.q + q] = acc / count;
      }
    }
  }
}

template <class T>
void avg_backward_into(const Pool2dGeom& g, const Tensor<T>& dy, Tensor<T>& dx) {
  assert(dy.shape() == g.y_shape());
  if (dx.shape() != g.x_shape()) dx = Tensor<T>(g.x_shape());
  const index_t kh = g.prm.kernel[0], kw = g.prm.kernel[1];
  const index_t sh = g.prm.stride[0], sw = g.prm.stride[1];
  const index_t ph = g.prm.pad[0], pw = g.prm.pad[1];
  const T count = T(double(kh * kw));
  const T* dyd = dy.data();
  T* dxd = dx.data();
  const index_t HW = g.h * g.w, PQ = g.p * g.q;
#pragma omp parallel for schedule(static) if (work(g) >= min_parallel_work)
  for (index_t plane = 0; plane < g.n * g.c; ++plane) {
    const T* dyp = dyd + plane * PQ;
    T* dxp = dxd + plane * HW;
    for (index_t h = 0; h < g.h; ++h)
      for (index_t w = 0; w < g.w; ++w) {
        // The reference's order: i ascending (p = (h + ph - i) / sh descending), then j.
        T acc = T(0);
        for (index_t i = 0; i < kh; ++i) {
          const index_t pn = h + ph - i;
          if (pn < 0 || pn % sh != 0 || pn / sh >= g.p) continue;
          const T* dyr = dyp + (pn / sh) * g.q;
          for (index_t j = 0; j < kw; ++j) {
            const index_t qn = w + pw - j;
            if (qn < 0 || qn % sw != 0 || qn / sw >= g.q) continue;
            acc += dyr[qn / sw];
          }
        }
        dxp[h * g.w + w] = acc / count;
      }
  }
}

}  // namespace

#define TAPEGRAD_POOL_FAST(T)                                                                    \
  Tensor<T> max_pool2d_forward(const Pool2dGeom& g, const Tensor<T>& x) {                       \
    Tensor<T> y(g.y_shape());                                                                    \
    max_forward_into(g, x, y);                                                                   \
    return y;                                                                                    \
  }                                                                                              \
  void max_pool2d_forward_into(const Pool2dGeom& g, const Tensor<T>& x, Tensor<T>& y) {         \
    max_forward_into(g, x, y);                                                                   \
  }                                                                                              \
  Tensor<T> max_pool2d_backward(const Pool2dGeom& g, const Tensor<T>& x, const Tensor<T>& dy) { \
    Tensor<T> dx(g.x_shape());                                                                   \
    max_backward_into(g, x, dy, dx);                                                             \
    return dx;                                                                                   \
  }                                                                                              \
  void max_pool2d_backward_into(const Pool2dGeom& g, const Tensor<T>& x, const Tensor<T>& dy,   \
                                Tensor<T>& dx) {                                                 \
    max_backward_into(g, x, dy, dx);                                                             \
  }                                                                                              \
  Tensor<T> avg_pool2d_forward(const Pool2dGeom& g, const Tensor<T>& x) {                       \
    Tensor<T> y(g.y_shape());                                                                    \
    avg_forward_into(g, x, y);                                                                   \
    return y;                                                                                    \
  }                                                                                              \
  void avg_pool2d_forward_into(const Pool2dGeom& g, const Tensor<T>& x, Tensor<T>& y) {         \
    avg_forward_into(g, x, y);                                                                   \
  }                                                                                              \
  Tensor<T> avg_pool2d_backward(const Pool2dGeom& g, const Tensor<T>& dy) {                     \
    Tensor<T> dx(g.x_shape());                                                                   \
    avg_backward_into(g, dy, dx);                                                                \
    return dx;                                                                                   \
  }                                                                                              \
  void avg_pool2d_backward_into(const Pool2dGeom& g, const Tensor<T>& dy, Tensor<T>& dx) {      \
    avg_backward_into(g, dy, dx);                                                                \
  }

TAPEGRAD_POOL_FAST(float)
TAPEGRAD_POOL_FAST(double)
#undef TAPEGRAD_POOL_FAST

}  // namespace tapegrad::fast
