// Fast conv2d: the float/double twins of conv2d_ref.hpp. See conv2d_fast.hpp for what differs
// from the reference and why. The paths (conv2d_path names them):
//   lowered        forward, backward-weights, and backward-data with stride 1: register-tiled
//                  products over a padded, stride-phase-split copy of the input, in one of
//                  three tilings (tiers "pixels", "batch" and, for forward and backward-data,
//                  "channels"); see conv2d_lowered.hpp.
//   col2im         backward-data with a stride > 1: tasks (n, group) compute dcol = w^T dy
//                  and add it onto their own image of dx in a fixed order.
//   direct         tiny problems (tiny_flops): plain loops on the calling thread, no packing,
//                  no workspace, no parallel region.
// A thread owns its outputs, and every reduction is cut by the shape alone, so the results
// are the same bits for any number of threads.
#include "tapegrad/kernels/conv2d_fast.hpp"

#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

#include "conv2d_lowered.hpp"
#include "fast_gemm.hpp"
#include "tapegrad/kernels/activation_fast.hpp"

namespace tapegrad::fast {
namespace {

using detail::micro_kernels;
using detail::MicroKernels;
using detail::scratch;

constexpr index_t kc_rows = 256;  // reduction block of the col2im backward-data
// Below this much work a call runs on the calling thread only: starting a parallel region
// costs more than it saves (the results are the same bits either way).
constexpr double min_parallel_flops = 1e6;

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// Adds the lowered gradient back onto dx for one image and group (the adjoint of im2col):
// dxg[c, h, w] += dcol[kk * cols + j] for kk = (c, r, s) < C/G*R*S, pq = pq0 + j, j < cols,
// with (h, w) as in im2col; positions outside x are dropped. Sequential: fixed order. Rows at
// stride 2 go through mk.add_even (the same bits: dxg starts at +0, see MicroKernels).
template <class T>
void col2im_add(const MicroKernels<T>& mk, const Conv2dGeom& g, const T* dcol, index_t pq0,
                index_t cols, T* dxg) {
  const index_t RS = g.r * g.s, CRS = g.c_per_group() * RS;
  const index_t sh = g.prm.stride[0], sw = g.prm.stride[1];
  const index_t ph = g.prm.pad[0], pw = g.prm.pad[1];
  const index_t dh = g.prm.dilation[0], dw = g.prm.dilation[1];
  for (index_t kk = 0; kk < CRS; ++kk) {
    const index_t c = kk / RS, r = (kk / g.s) % g.r, s = kk % g.s;
    const T* row = dcol + kk * cols;
    T* xc = dxg + c * g.h * g.w;
    index_t j = 0;
    while (j < cols) {
      const index_t pq = pq0 + j;
      const index_t p = pq / g.q, q_begin = pq % g.q;
      const index_t q_end = std::min(g.q, q_begin + (cols - j));
      const index_t h = p * sh - ph + r * dh;
      if (h >= 0 && h < g.h) {
        const T* seg = row + j - q_begin;
        T* xr = xc + h * g.w;
        const index_t off = s * dw - pw;
        index_t qa = off >= 0 ? 0 : ceil_div(-off, sw);
        index_t qb = g.w - 1 - off < 0 ? 0 : (g.w - 1 - off) / sw + 1;
        qa = std::clamp(qa, q_begin, q_end);
        qb = std::clamp(qb, qa, q_end);
        if (sw == 2)
          mk.add_even(seg + qa, qb - qa, xr + qa * 2 + off);
        else
          for (index_t q = qa; q < qb; ++q) xr[q * sw + off] += seg[q];
      }
      j += q_end - q_begin;
    }
  }
}

// Problems below this many flops run as plain direct loops on the calling thread: for them the
// fixed cost of packing, workspaces and a parallel region is more than the arithmetic. The
// choice depends on the shape only, so the results are still the same for any thread count.
constexpr double tiny_flops = 4096;

// In the direct loops output pixel (p, q) sees input pixel h = p*sh - ph + r*dh,
// w = q*sw - pw + s*dw through tap (r, s). Direct forward: y[n,k,p,q] = b[k] + sum over (c, r, s) in order, taps outside x skipped.
template <class T>
void forward_direct(const Conv2dGeom& g, const T* xd, const T* wd, const T* bd, T* yd) {
  const index_t Cg = g.c_per_group(), Kg = g.k_per_group();
  const index_t sh = g.prm.stride[0], sw = g.prm.stride[1];
  const index_t ph = g.prm.pad[0], pw = g.prm.pad[1];
  const index_t dh = g.prm.dilation[0], dw = g.prm.dilation[1];
  for (index_t n = 0; n < g.n; ++n)
    for (index_t k = 0; k < g.k; ++k) {
      const T* xg = xd + (n * g.c + (k / Kg) * Cg) * g.h * g.w;
      const T* wk = wd + k * Cg * g.r * g.s;
      for (index_t p = 0; p < g.p; ++p)
        for (index_t q = 0; q < g.q; ++q) {
          T acc = bd ? bd[k] : T(0);
          for (index_t c = 0; c < Cg; ++c)
            for (index_t r = 0; r < g.r; ++r) {
              const index_t h = p * sh - ph + r * dh;
              if (h < 0 || h >= g.h) continue;
              for (index_t s = 0; s < g.s; ++s) {
                const index_t w = q * sw - pw + s * dw;
                if (w < 0 || w >= g.w) continue;
                acc += xg[(c * g.h + h) * g.w + w] * wk[(c * g.r + r) * g.s + s];
              }
            }
          *yd++ = acc;
        }
    }
}

// Direct backward-data as a scatter (no divisions): dx = 0, then for each dy[n,k,p,q] in order
// and each tap (c, r, s) inside x, dx[n, c of k's group, h, w] += w[k,c,r,s] * dy[n,k,p,q].
template <class T>
void backward_data_direct(const Conv2dGeom& g, const T* dyd, const T* wd, T* dxd) {
  const index_t Cg = g.c_per_group(), Kg = g.k_per_group();
  const index_t sh = g.prm.stride[0], sw = g.prm.stride[1];
  const index_t ph = g.prm.pad[0], pw = g.prm.pad[1];
  const index_t dh = g.prm.dilation[0], dw = g.prm.dilation[1];
  std::fill(dxd, dxd + g.n * g.c * g.h * g.w, T(0));
  for (index_t n = 0; n < g.n; ++n)
    for (index_t k = 0; k < g.k; ++k) {
      T* xg = dxd + (n * g.c + (k / Kg) * Cg) * g.h * g.w;
      const T* wk = wd + k * Cg * g.r * g.s;
      for (index_t p = 0; p < g.p; ++p)
        for (index_t q = 0; q < g.q; ++q) {
          const T d = *dyd++;
          for (index_t c = 0; c < Cg; ++c)
            for (index_t r = 0; r < g.r; ++r) {
              const index_t h = p * sh - ph + r * dh;
              if (h < 0 || h >= g.h) continue;
              for (index_t s = 0; s < g.s; ++s) {
                const index_t w = q * sw - pw + s * dw;
                if (w < 0 || w >= g.w) continue;
                xg[(c * g.h + h) * g.w + w] += wk[(c * g.r + r) * g.s + s] * d;
              }
            }
        }
    }
}

// Direct backward-weights: dw[k,c,r,s] = sum over (n, p, q) in order of
// x[n, c of k's group, h, w] * dy[n,k,p,q], taps outside x skipped.
template <class T>
void backward_weights_direct(const Conv2dGeom& g, const T* xd, const T* dyd, T* dwd) {
  const index_t Cg = g.c_per_group(), Kg = g.k_per_group();
  const index_t sh = g.prm.stride[0], sw = g.prm.stride[1];
  const index_t ph = g.prm.pad[0], pw = g.prm.pad[1];
  const index_t dh = g.prm.dilation[0], dw = g.prm.dilation[1];
  for (index_t k = 0; k < g.k; ++k)
    for (index_t c = 0; c < Cg; ++c)
      for (index_t r = 0; r < g.r; ++r)
        for (index_t s = 0; s < g.s; ++s) {
          T acc = T(0);
          for (index_t n = 0; n < g.n; ++n) {
            const T* xc = xd + (n * g.c + (k / Kg) * Cg + c) * g.h * g.w;
            const T* dyk = dyd + (n * g.k + k) * g.p * g.q;
            for (index_t p = 0; p < g.p; ++p) {
              const index_t h = p * sh - ph + r * dh;
              if (h < 0 || h >= g.h) continue;
              for (index_t q = 0; q < g.q; ++q) {
                const index_t w = q * sw - pw + s * dw;
                if (w < 0 || w >= g.w) continue;
                acc += xc[h * g.w + w] * dyk[p * g.q + q];
              }
            }
          }
          *dwd++ = acc;
        }
}

template <class T>
void forward_into(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* b,
                  Tensor<T>& y, Activation act) {
  assert(x.shape() == g.x_shape() && w.shape() == g.w_shape());
  assert(!b || b->shape() == g.b_shape());
  if (y.shape() != g.y_shape()) y = Tensor<T>(g.y_shape());
  if (g.flops() < tiny_flops) {
    forward_direct(g, x.data(), w.data(), b ? b->data() : nullptr, y.data());
    return activate(act, y.data(), y.numel());  // tiny: the whole output is in cache
  }
  detail::lowered_forward(g, x.data(), w.data(), b ? b->data() : nullptr, y.data(), act);
}

// Backward-data as GEMM + col2im: dcol = w^T dy (rows (c,r,s), no gathered zeros), then
// added onto dx. For strides > 1 (where the gather would be mostly zeros) and few channels per
// group. Tasks are whole (n, group) images, so each dx element is owned by one task and its
// contributions arrive in a fixed order.
// Output pixels per block of the col2im backward-data.
template <class T>
index_t col2im_cols(const MicroKernels<T>& mk) {
  return 4 * mk.nr;
}

template <class T>
void backward_data_col2im(const Conv2dGeom& g, const Tensor<T>& dy, const Tensor<T>& w,
                          Tensor<T>& dx) {
  const MicroKernels<T>& mk = micro_kernels<T>();
  const index_t G = g.groups(), Cg = g.c_per_group(), Kg = g.k_per_group();
  const index_t CRS = Cg * g.r * g.s, PQ = g.p * g.q, HW = g.h * g.w;
  const index_t panels = ceil_div(CRS, mk.mr), panel_stride = Kg * mk.mr;
  T* apack = scratch<T>(0, G * panels * panel_stride);
  const T* wd = w.data();
  // A((c,r,s), k) = w[g*Kg + k, c, r, s]
  for (index_t gi = 0; gi < G; ++gi)
    detail::pack_a<T>(CRS, Kg, mk.mr, apack + gi * panels * panel_stride,
                      [&](index_t kk, index_t k) { return wd[(gi * Kg + k) * CRS + kk]; });
  const index_t nc = col2im_cols(mk);
  const T* dyd = dy.data();
  T* dxd = dx.data();
#pragma omp parallel for schedule(dynamic, 1) if (g.flops() >= min_parallel_flops)
  for (index_t t = 0; t < g.n * G; ++t) {
    const index_t n = t / G, gi = t % G;
    T* dxg = dxd + (n * g.c + gi * Cg) * HW;
    std::fill(dxg, dxg + Cg * HW, T(0));
    const T* dyg = dyd + (n * g.k + gi * Kg) * PQ;
    T* dcol = scratch<T>(1, CRS * nc);
    for (index_t pq0 = 0; pq0 < PQ; pq0 += nc) {
      const index_t cols = std::min(nc, PQ - pq0);
      for (index_t k0 = 0; k0 < Kg; k0 += kc_rows) {
        const index_t rows = std::min(kc_rows, Kg - k0);
        detail::outer_block(mk, CRS, cols, rows, apack + gi * panels * panel_stride + k0 * mk.mr,
                            panel_stride, dyg + k0 * PQ + pq0, PQ, dcol, cols, k0 > 0);
      }
      col2im_add(mk, g, dcol, pq0, cols, dxg);
    }
  }
}

template <class T>
void backward_data_into(const Conv2dGeom& g, const Tensor<T>& dy, const Tensor<T>& w,
                        Tensor<T>& dx) {
  assert(dy.shape() == g.y_shape() && w.shape() == g.w_shape());
  if (dx.shape() != g.x_shape()) dx = Tensor<T>(g.x_shape());
  if (g.flops() < tiny_flops) return backward_data_direct(g, dy.data(), w.data(), dx.data());
  if (g.prm.stride[0] > 1 || g.prm.stride[1] > 1)
    backward_data_col2im(g, dy, w, dx);
  else
    detail::lowered_backward_data(g, dy.data(), w.data(), dx.data());
}

template <class T>
void backward_weights_into(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& dy,
                           Tensor<T>& dw) {
  assert(x.shape() == g.x_shape() && dy.shape() == g.y_shape());
  if (dw.shape() != g.w_shape()) dw = Tensor<T>(g.w_shape());
  if (g.flops() < tiny_flops) return backward_weights_direct(g, x.data(), dy.data(), dw.data());
  detail::lowered_backward_weights(g, x.data(), dy.data(), dw.data());
}

// db[k]: each task owns one k and sums its N rows of P*Q in 4 x L vector lanes (LoweredKernels::
// sum, in row order), then combines the lanes by a fixed tree.
template <class T>
void backward_bias_into(const Conv2dGeom& g, const Tensor<T>& dy, Tensor<T>& db) {
  assert(dy.shape() == g.y_shape());
  if (db.shape() != g.b_shape()) db = Tensor<T>(g.b_shape());
  const detail::LoweredKernels<T>& lk = detail::lowered_kernels<T>();
  const index_t PQ = g.p * g.q, L = lk.lanes;
  const T* dyd = dy.data();
  T* dbd = db.data();
#pragma omp parallel for schedule(static) if (double(dy.numel()) >= 0.1 * min_parallel_flops)
  for (index_t k = 0; k < g.k; ++k) {
    T acc[4 * 16] = {};
    for (index_t n = 0; n < g.n; ++n) lk.sum(dyd + (n * g.k + k) * PQ, PQ, acc);
    T v[16];
    for (index_t l = 0; l < L; ++l) v[l] = (acc[l] + acc[L + l]) + (acc[2 * L + l] + acc[3 * L + l]);
    for (index_t w = L / 2; w >= 1; w /= 2)
      for (index_t l = 0; l < w; ++l) v[l] += v[l + w];
    dbd[k] = v[0];
  }
}

detail::ConvDir conv_dir(Conv2dDirection dir) {
  return dir == Conv2dDirection::forward          ? detail::ConvDir::forward
         : dir == Conv2dDirection::backward_data ? detail::ConvDir::backward_data
                                                  : detail::ConvDir::backward_weights;
}

bool lowered(const Conv2dGeom& g, Conv2dDirection dir) {
  return g.flops() >= tiny_flops &&
         !(dir == Conv2dDirection::backward_data && (g.prm.stride[0] > 1 || g.prm.stride[1] > 1));
}

template <class T>
const char* path_of(const Conv2dGeom& g, Conv2dDirection dir) {
  if (g.flops() < tiny_flops) return "direct";
  if (!lowered(g, dir)) return "col2im";
  const std::string_view tier = detail::lowered_tier<T>(g, conv_dir(dir));
  return tier == "batch"      ? "lowered-batch"
         : tier == "channels" ? "lowered-channels"
                              : "lowered-pixels";
}

template <class T>
std::string plan_of(const Conv2dGeom& g, Conv2dDirection dir) {
  std::string s = path_of<T>(g, dir);
  if (lowered(g, dir)) {
    const std::string p = detail::lowered_plan<T>(g, conv_dir(dir));
    s += p.substr(p.find(' '));  // the tiling after the tier's name
  }
  return s;
}

template <class T>
std::uint64_t workspace_bytes(const Conv2dGeom& g, Conv2dDirection dir, int threads) {
  if (g.flops() < tiny_flops) return 0;  // the direct loops
  const auto u = [](index_t v) { return static_cast<std::uint64_t>(v); };
  const std::uint64_t team = u(std::max(threads, 1)), t = sizeof(T);
  if (!lowered(g, dir)) {  // backward_data_col2im: the packed weights, a dcol block per thread
    const MicroKernels<T>& mk = micro_kernels<T>();
    const index_t CRS = g.c_per_group() * g.r * g.s;
    const std::uint64_t apack = u(g.groups() * ceil_div(CRS, mk.mr) * g.k_per_group() * mk.mr);
    return t * (apack + team * u(CRS * col2im_cols(mk)));
  }
  const detail::LoweredWorkspace ws = detail::lowered_workspace<T>(g, conv_dir(dir));
  return t * (u(ws.shared) + team * u(ws.per_thread));
}

}  // namespace

template <>
const char* conv2d_path<float>(const Conv2dGeom& g, Conv2dDirection dir) {
  return path_of<float>(g, dir);
}
template <>
const char* conv2d_path<double>(const Conv2dGeom& g, Conv2dDirection dir) {
  return path_of<double>(g, dir);
}
template <>
std::string conv2d_plan<float>(const Conv2dGeom& g, Conv2dDirection dir) {
  return plan_of<float>(g, dir);
}
template <>
std::string conv2d_plan<double>(const Conv2dGeom& g, Conv2dDirection dir) {
  return plan_of<double>(g, dir);
}

template <>
std::uint64_t conv2d_workspace_bytes<float>(const Conv2dGeom& g, Conv2dDirection dir,
                                            int threads) {
  return workspace_bytes<float>(g, dir, threads);
}
template <>
std::uint64_t conv2d_workspace_bytes<double>(const Conv2dGeom& g, Conv2dDirection dir,
                                             int threads) {
  return workspace_bytes<double>(g, dir, threads);
}

void set_conv2d_tier(std::string_view tier) {
  int v;
  if (tier == "auto")
    v = 0;
  else if (tier == "pixels")
    v = 1;
  else if (tier == "batch")
    v = 2;
  else if (tier == "channels")
    v = 3;
  else
    throw std::invalid_argument("fast::set_conv2d_tier: unknown tier '" + std::string(tier) +
                                "', expected auto, pixels, batch or channels");
  detail::forced_tier().store(v);
}

#define TAPEGRAD_CONV2D_FAST(T)                                                                  \
  Tensor<T> conv2d_forward(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& w,         \
                           const Tensor<T>* b, Activation act) {                                 \
    Tensor<T> y(g.y_shape());                                                                    \
    forward_into(g, x, w, b, y, act);                                                            \
    return y;                                                                                    \
  }                                                                                              \
  void conv2d_forward_into(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& w,         \
                           const Tensor<T>* b, Tensor<T>& y, Activation act) {                   \
    forward_into(g, x, w, b, y, act);                                                            \
  }                                                                                              \
  Tensor<T> conv2d_backward_data(const Conv2dGeom& g, const Tensor<T>& dy, const Tensor<T>& w) { \
    Tensor<T> dx(g.x_shape());                                                                   \
    backward_data_into(g, dy, w, dx);                                                            \
    return dx;                                                                                   \
  }                                                                                              \
  void conv2d_backward_data_into(const Conv2dGeom& g, const Tensor<T>& dy, const Tensor<T>& w,  \
                                 Tensor<T>& dx) {                                                \
    backward_data_into(g, dy, w, dx);                                                            \
  }                                                                                              \
  Tensor<T> conv2d_backward_weights(const Conv2dGeom& g, const Tensor<T>& x,                    \
                                    const Tensor<T>& dy) {                                       \
    Tensor<T> dw(g.w_shape());                                                                   \
    backward_weights_into(g, x, dy, dw);                                                         \
    return dw;                                                                                   \
  }                                                                                              \
  void conv2d_backward_weights_into(const Conv2dGeom& g, const Tensor<T>& x,                    \
                                    const Tensor<T>& dy, Tensor<T>& dw) {                        \
    backward_weights_into(g, x, dy, dw);                                                         \
  }                                                                                              \
  Tensor<T> conv2d_backward_bias(const Conv2dGeom& g, const Tensor<T>& dy) {                    \
    Tensor<T> db(g.b_shape());                                                                   \
    backward_bias_into(g, dy, db);                                                               \
    return db;                                                                                   \
  }                                                                                              \
  void conv2d_backward_bias_into(const Conv2dGeom& g, const Tensor<T>& dy, Tensor<T>& db) {     \
    backward_bias_into(g, dy, db);                                                               \
  }

TAPEGRAD_CONV2D_FAST(float)
TAPEGRAD_CONV2D_FAST(double)
#undef TAPEGRAD_CONV2D_FAST

}  // namespace tapegrad::fast
