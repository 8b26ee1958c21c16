// Fast conv2d: the float/double twins of conv2d_ref.hpp. See conv2d_fast.hpp for what differs
// from the reference and why. Parallel structure (a thread owns its outputs):
//   forward        tasks (n, group, block of NC output pixels); each lowers its block of x
//                  (im2col, KC rows at a time) and runs the outer-product micro-kernel with
//                  the packed weights. Sum order per y element: bias, then KC-blocks of
//                  (c,r,s) in order, each one FMA chain — fixed by the shape.
//   backward-data  stride 1 and enough channels per group: the same with dx as output,
//                  dx[c, hw] = sum_{k,r,s} w[k,c,r,s] * dy[k, p, q] where
//                  p*stride = h + pad - r*dilation (zero where that is no output pixel), so each
//                  dx element is owned by one task (no scatter, no atomics). Otherwise (strides
//                  > 1, where that gather is mostly zeros, or few channels): tasks (n, group)
//                  compute dcol = w^T dy and add it onto their own image of dx (col2im) in a
//                  fixed order.
//   backward-wts   tasks (run of images, group, block of k, block of (c,r,s)); each loops
//                  over its images and fixed chunks of output pixels, adding one tree-summed
//                  dot product per chunk into its run's partial dw; the last task to finish
//                  a tile sums its runs' partials in run order. The runs are fixed by the
//                  shape (weight_chunks), never by the thread count.
//   tiny problems  (tiny_flops) plain direct loops on the calling thread: no packing, no
//                  workspace, no parallel region.
#include "tapegrad/kernels/conv2d_fast.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstring>
#include <memory>

#include "fast_gemm.hpp"

namespace tapegrad::fast {
namespace {

using detail::micro_kernels;
using detail::MicroKernels;
using detail::scratch;

constexpr index_t kc_rows = 256;      // reduction block of forward / backward-data
constexpr index_t chunk_pixels = 2048;  // reduction chunk of backward-weights (upper bound)
// Below this much work a call runs on the calling thread only: starting a parallel region
// costs more than it saves (the results are the same bits either way).
constexpr double min_parallel_flops = 1e6;

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// Lowers x for one image and group: out[(kk - kk0) * ld + j] = x[n, c0 + c, h, w] for
// kk = (c, r, s) in [kk0, kk0 + rows), output pixel pq = pq0 + j, j < cols, where
// h = p*sh - ph + r*dh, w = q*sw - pw + s*dw; zero outside x and for cols <= j < ld.
template <class T>
void im2col(const Conv2dGeom& g, const T* xg /* x[n, c0] */, index_t kk0, index_t rows,
            index_t pq0, index_t cols, T* out, index_t ld) {
  const index_t RS = g.r * g.s;
  const index_t sh = g.prm.stride[0], sw = g.prm.stride[1];
  const index_t ph = g.prm.pad[0], pw = g.prm.pad[1];
  const index_t dh = g.prm.dilation[0], dw = g.prm.dilation[1];
  for (index_t row = 0; row < rows; ++row) {
    const index_t kk = kk0 + row;
    const index_t c = kk / RS, r = (kk / g.s) % g.r, s = kk % g.s;
    T* o = out + row * ld;
    const T* xc = xg + c * g.h * g.w;
    index_t j = 0;
    while (j < cols) {
      const index_t pq = pq0 + j;
      const index_t p = pq / g.q, q_begin = pq % g.q;
      const index_t q_end = std::min(g.q, q_begin + (cols - j));
      const index_t h = p * sh - ph + r * dh;
      T* seg = o + j - q_begin;  // seg[q] is the element of output column q
      if (h < 0 || h >= g.h) {
        std::fill(seg + q_begin, seg + q_end, T(0));
      } else {
        const T* xr = xc + h * g.w;
        const index_t off = s * dw - pw;  // w = q*sw + off
        // valid q: 0 <= q*sw + off < W
        index_t qa = off >= 0 ? 0 : ceil_div(-off, sw);
        index_t qb = g.w - 1 - off < 0 ? 0 : (g.w - 1 - off) / sw + 1;
        qa = std::clamp(qa, q_begin, q_end);
        qb = std::clamp(qb, qa, q_end);
        std::fill(seg + q_begin, seg + qa, T(0));
        if (sw == 1) {
          if (qb > qa) std::memcpy(seg + qa, xr + off + qa, sizeof(T) * std::size_t(qb - qa));
        } else {
          for (index_t q = qa; q < qb; ++q) seg[q] = xr[q * sw + off];
        }
        std::fill(seg + qb, seg + q_end, T(0));
      }
      j += q_end - q_begin;
    }
    std::fill(o + cols, o + ld, T(0));
  }
}

// The gather of dy that backward-data multiplies with the transposed weights:
// out[(kk - kk0) * cols + j] = dy[n, k0 + k, p, q] for kk = (k, r, s), input pixel
// hw = hw0 + j = (h, w), when h + ph - r*dh = p*sh and w + pw - s*dw = q*sw for an output pixel
// (p, q); zero otherwise.
template <class T>
void gather_dy(const Conv2dGeom& g, const T* dyg /* dy[n, k0] */, index_t kk0, index_t rows,
               index_t hw0, index_t cols, T* out) {
  const index_t RS = g.r * g.s;
  const index_t sh = g.prm.stride[0], sw = g.prm.stride[1];
  const index_t ph = g.prm.pad[0], pw = g.prm.pad[1];
  const index_t dh = g.prm.dilation[0], dw = g.prm.dilation[1];
  for (index_t row = 0; row < rows; ++row) {
    const index_t kk = kk0 + row;
    const index_t k = kk / RS, r = (kk / g.s) % g.r, s = kk % g.s;
    T* o = out + row * cols;
    const T* dyk = dyg + k * g.p * g.q;
    index_t j = 0;
    while (j < cols) {
      const index_t hw = hw0 + j;
      const index_t h = hw / g.w, w_begin = hw % g.w;
      const index_t w_end = std::min(g.w, w_begin + (cols - j));
      T* seg = o + j - w_begin;
      const index_t pn = h + ph - r * dh;
      const index_t p = pn >= 0 && pn % sh == 0 ? pn / sh : -1;
      if (p < 0 || p >= g.p) {
        std::fill(seg + w_begin, seg + w_end, T(0));
      } else {
        const T* dyr = dyk + p * g.q;
        const index_t off = pw - s * dw;  // q*sw = w + off
        if (sw == 1) {
          // valid w: 0 <= w + off < Q
          index_t wa = std::clamp(-off, w_begin, w_end);
          index_t wb = std::clamp(g.q - off, wa, w_end);
          std::fill(seg + w_begin, seg + wa, T(0));
          if (wb > wa) std::memcpy(seg + wa, dyr + off + wa, sizeof(T) * std::size_t(wb - wa));
          std::fill(seg + wb, seg + w_end, T(0));
        } else {
          for (index_t w = w_begin; w < w_end; ++w) {
            const index_t qn = w + off;
            seg[w] = qn >= 0 && qn % sw == 0 && qn / sw < g.q ? dyr[qn / sw] : T(0);
          }
        }
      }
      j += w_end - w_begin;
    }
  }
}

// Adds the lowered gradient back onto dx for one image and group (the adjoint of im2col):
// dxg[c, h, w] += dcol[kk * cols + j] for kk = (c, r, s) < C/G*R*S, pq = pq0 + j, j < cols,
// with (h, w) as in im2col; positions outside x are dropped. Sequential: fixed order.
template <class T>
void col2im_add(const Conv2dGeom& g, const T* dcol, index_t pq0, index_t cols, T* dxg) {
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

// Output-pixel block of forward / backward-data: a multiple of the micro-tile width.
template <class T>
index_t pixel_block(const MicroKernels<T>& mk) {
  return 4 * mk.nr;
}

template <class T>
void forward_into(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* b,
                  Tensor<T>& y) {
  assert(x.shape() == g.x_shape() && w.shape() == g.w_shape());
  assert(!b || b->shape() == g.b_shape());
  if (y.shape() != g.y_shape()) y = Tensor<T>(g.y_shape());
  if (g.flops() < tiny_flops)
    return forward_direct(g, x.data(), w.data(), b ? b->data() : nullptr, y.data());
  const MicroKernels<T>& mk = micro_kernels<T>();
  const index_t G = g.groups(), Cg = g.c_per_group(), Kg = g.k_per_group();
  const index_t CRS = Cg * g.r * g.s, PQ = g.p * g.q;
  const index_t panels = ceil_div(Kg, mk.mr), panel_stride = CRS * mk.mr;
  T* apack = scratch<T>(0, G * panels * panel_stride);
  const T* wd = w.data();
  for (index_t gi = 0; gi < G; ++gi)
    detail::pack_a<T>(Kg, CRS, mk.mr, apack + gi * panels * panel_stride,
                      [&](index_t k, index_t kk) { return wd[(gi * Kg + k) * CRS + kk]; });
  const index_t nc = pixel_block(mk), nb = ceil_div(PQ, nc);
  const index_t tasks = g.n * G * nb;
  const T* xd = x.data();
  const T* bd = b ? b->data() : nullptr;
  T* yd = y.data();
#pragma omp parallel for schedule(dynamic, 1) if (g.flops() >= min_parallel_flops)
  for (index_t t = 0; t < tasks; ++t) {
    const index_t n = t / (G * nb), gi = (t / nb) % G, jb = t % nb;
    const index_t pq0 = jb * nc, cols = std::min(nc, PQ - pq0);
    T* yb = yd + (n * g.k + gi * Kg) * PQ + pq0;
    for (index_t k = 0; k < Kg; ++k)
      for (index_t j = 0; j < cols; ++j) yb[k * PQ + j] = bd ? bd[gi * Kg + k] : T(0);
    T* col = scratch<T>(1, kc_rows * cols);
    const T* xg = xd + (n * g.c + gi * Cg) * g.h * g.w;
    for (index_t kk0 = 0; kk0 < CRS; kk0 += kc_rows) {
      const index_t rows = std::min(kc_rows, CRS - kk0);
      im2col(g, xg, kk0, rows, pq0, cols, col, cols);
      detail::outer_block(mk, Kg, cols, rows, apack + gi * panels * panel_stride + kk0 * mk.mr,
                          panel_stride, col, cols, yb, PQ, true);
    }
  }
}

// Backward-data as a gather (no scatter): best for stride 1 and enough channels per group to
// fill the micro-tile rows. Tasks (n, group, block of input pixels).
template <class T>
void backward_data_gather(const Conv2dGeom& g, const Tensor<T>& dy, const Tensor<T>& w,
                          Tensor<T>& dx) {
  const MicroKernels<T>& mk = micro_kernels<T>();
  const index_t G = g.groups(), Cg = g.c_per_group(), Kg = g.k_per_group();
  const index_t RS = g.r * g.s, CRS = Cg * RS, KRS = Kg * RS, HW = g.h * g.w;
  const index_t panels = ceil_div(Cg, mk.mr), panel_stride = KRS * mk.mr;
  T* apack = scratch<T>(0, G * panels * panel_stride);
  const T* wd = w.data();
  // A(c, (k,r,s)) = w[g*Kg + k, c, r, s]
  for (index_t gi = 0; gi < G; ++gi)
    detail::pack_a<T>(Cg, KRS, mk.mr, apack + gi * panels * panel_stride,
                      [&](index_t c, index_t kk) {
                        return wd[(gi * Kg + kk / RS) * CRS + c * RS + kk % RS];
                      });
  const index_t nc = pixel_block(mk), nb = ceil_div(HW, nc);
  const index_t tasks = g.n * G * nb;
  const T* dyd = dy.data();
  T* dxd = dx.data();
#pragma omp parallel for schedule(dynamic, 1) if (g.flops() >= min_parallel_flops)
  for (index_t t = 0; t < tasks; ++t) {
    const index_t n = t / (G * nb), gi = (t / nb) % G, jb = t % nb;
    const index_t hw0 = jb * nc, cols = std::min(nc, HW - hw0);
    T* xb = dxd + (n * g.c + gi * Cg) * HW + hw0;
    for (index_t c = 0; c < Cg; ++c)
      for (index_t j = 0; j < cols; ++j) xb[c * HW + j] = T(0);
    T* col = scratch<T>(1, kc_rows * cols);
    const T* dyg = dyd + (n * g.k + gi * Kg) * g.p * g.q;
    for (index_t kk0 = 0; kk0 < KRS; kk0 += kc_rows) {
      const index_t rows = std::min(kc_rows, KRS - kk0);
      gather_dy(g, dyg, kk0, rows, hw0, cols, col);
      detail::outer_block(mk, Cg, cols, rows, apack + gi * panels * panel_stride + kk0 * mk.mr,
                          panel_stride, col, cols, xb, HW, true);
    }
  }
}

// Backward-data as GEMM + col2im: dcol = w^T dy (rows (c,r,s), no gathered zeros), then
// added onto dx. For strides > 1 (where the gather would be mostly zeros) and few channels per
// group. Tasks are whole (n, group) images, so each dx element is owned by one task and its
// contributions arrive in a fixed order.
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
  const index_t nc = pixel_block(mk);
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
      col2im_add(g, dcol, pq0, cols, dxg);
    }
  }
}

template <class T>
void backward_data_into(const Conv2dGeom& g, const Tensor<T>& dy, const Tensor<T>& w,
                        Tensor<T>& dx) {
  assert(dy.shape() == g.y_shape() && w.shape() == g.w_shape());
  if (dx.shape() != g.x_shape()) dx = Tensor<T>(g.x_shape());
  if (g.flops() < tiny_flops) return backward_data_direct(g, dy.data(), w.data(), dx.data());
  const bool strided = g.prm.stride[0] > 1 || g.prm.stride[1] > 1;
  if (strided || g.c_per_group() < micro_kernels<T>().mr)
    backward_data_col2im(g, dy, w, dx);
  else
    backward_data_gather(g, dy, w, dx);
}

// The partition of backward-weights' reduction over images: `count` chunks of consecutive
// images, chosen from the shape alone (never the thread count) so that there are enough
// (chunk, k block, (c,r,s) block) tasks to share out while each task stays big enough to be
// worth a task. Chunk ch covers images [ch*N/count, (ch+1)*N/count).
index_t weight_chunks(const Conv2dGeom& g, index_t base_tasks) {
  constexpr index_t min_tasks = 32;
  constexpr double min_task_flops = 2.5e5;
  const index_t want = ceil_div(min_tasks, base_tasks);
  const auto afford = static_cast<index_t>(g.flops() / (min_task_flops * double(base_tasks)));
  return std::clamp<index_t>(std::min(want, afford), 1, g.n);
}

template <class T>
void backward_weights_into(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& dy,
                           Tensor<T>& dw) {
  assert(x.shape() == g.x_shape() && dy.shape() == g.y_shape());
  if (dw.shape() != g.w_shape()) dw = Tensor<T>(g.w_shape());
  if (g.flops() < tiny_flops) return backward_weights_direct(g, x.data(), dy.data(), dw.data());
  const MicroKernels<T>& mk = micro_kernels<T>();
  const index_t G = g.groups(), Cg = g.c_per_group(), Kg = g.k_per_group();
  const index_t CRS = Cg * g.r * g.s, PQ = g.p * g.q;
  // The reduction over (n, p, q) is cut into pieces fixed by the shape: the images into
  // `nchunks` runs of consecutive images (weight_chunks), and each image's output pixels into
  // `chunks` equal runs. Within an image run, each pixel run's dot product is tree-summed over
  // the lanes and added in (n, pixel run) order; with several image runs each one fills its own
  // partial dw and the partials are summed in run order. Nothing depends on the thread count.
  // The pixel-run length is a multiple of 16 (so of every ISA's lane count): full runs of dy
  // are used in place, only a ragged last run is copied and zero-padded.
  const index_t chunks = ceil_div(PQ, chunk_pixels);
  const index_t chunk = ceil_div(ceil_div(PQ, chunks), 16) * 16;
  const index_t chunk_pad = ceil_div(chunk, mk.lanes) * mk.lanes;
  const index_t mb = std::min<index_t>(Kg, 16 * mk.dmr);
  const index_t cb = 8 * mk.dnr;
  const index_t kblocks = ceil_div(Kg, mb), cblocks = ceil_div(CRS, cb);
  const index_t base_tasks = G * kblocks * cblocks;
  const index_t nchunks = weight_chunks(g, base_tasks);
  const index_t tasks = nchunks * base_tasks;
  const index_t KCRS = g.k * CRS;
  const T* xd = x.data();
  const T* dyd = dy.data();
  T* dwd = dw.data();
  // Partial sums of image runs 1.. (run 0 goes straight into dw); slot 0 of the calling thread
  // is not used by the task bodies. Whichever task finishes a tile's last image run adds the
  // tile's partials onto dw in run order (an integer counter per tile says which task that is;
  // the sum order does not depend on it), so the call needs no second pass and no barrier
  // besides the one at the end.
  T* partial = nchunks > 1 ? scratch<T>(0, (nchunks - 1) * KCRS) : nullptr;
  std::unique_ptr<std::atomic<index_t>[]> done;
  if (nchunks > 1) done.reset(new std::atomic<index_t>[std::size_t(base_tasks)]());
#pragma omp parallel for schedule(dynamic, 1) if (g.flops() >= min_parallel_flops)
  for (index_t t = 0; t < tasks; ++t) {
    const index_t ch = t / base_tasks, bt = t % base_tasks;
    const index_t gi = bt / (kblocks * cblocks), kb = (bt / cblocks) % kblocks, jb = bt % cblocks;
    const index_t k0 = kb * mb, mk_count = std::min(mb, Kg - k0);
    const index_t c0 = jb * cb, c_count = std::min(cb, CRS - c0);
    const index_t n_begin = ch * g.n / nchunks, n_end = (ch + 1) * g.n / nchunks;
    const index_t tile = (gi * Kg + k0) * CRS + c0;  // offset of the tile's first element
    T* out = (ch == 0 ? dwd : partial + (ch - 1) * KCRS) + tile;
    for (index_t i = 0; i < mk_count; ++i)
      for (index_t j = 0; j < c_count; ++j) out[i * CRS + j] = T(0);
    T* col = scratch<T>(1, c_count * chunk_pad);
    T* arows = scratch<T>(2, mk_count * chunk_pad);
    for (index_t n = n_begin; n < n_end; ++n) {
      const T* xg = xd + (n * g.c + gi * Cg) * g.h * g.w;
      const T* dyb = dyd + (n * g.k + gi * Kg + k0) * PQ;
      for (index_t pq0 = 0; pq0 < PQ; pq0 += chunk) {
        const index_t len = std::min(chunk, PQ - pq0);
        const index_t len_pad = ceil_div(len, mk.lanes) * mk.lanes;
        const T* a = dyb + pq0;
        index_t lda = PQ;
        if (len != len_pad) {
          for (index_t i = 0; i < mk_count; ++i) {
            T* dst = arows + i * len_pad;
            std::memcpy(dst, dyb + i * PQ + pq0, sizeof(T) * std::size_t(len));
            std::fill(dst + len, dst + len_pad, T(0));
          }
          a = arows;
          lda = len_pad;
        }
        im2col(g, xg, c0, c_count, pq0, len, col, len_pad);
        detail::dot_block(mk, mk_count, c_count, len_pad, a, lda, col, len_pad, out, CRS);
      }
    }
    // The last run of this tile to finish: dw = ((run0 + run1) + run2) + ... on the tile.
    if (nchunks > 1 && done[std::size_t(bt)].fetch_add(1, std::memory_order_acq_rel) ==
                           nchunks - 1) {
      T* dst = dwd + tile;
      for (index_t r = 1; r < nchunks; ++r) {
        const T* src = partial + (r - 1) * KCRS + tile;
        for (index_t i = 0; i < mk_count; ++i)
          for (index_t j = 0; j < c_count; ++j) dst[i * CRS + j] += src[i * CRS + j];
      }
    }
  }
}

template <class T>
void backward_bias_into(const Conv2dGeom& g, const Tensor<T>& dy, Tensor<T>& db) {
  assert(dy.shape() == g.y_shape());
  if (db.shape() != g.b_shape()) db = Tensor<T>(g.b_shape());
  const index_t PQ = g.p * g.q;
  const T* dyd = dy.data();
  T* dbd = db.data();
#pragma omp parallel for schedule(static) if (double(dy.numel()) >= 0.1 * min_parallel_flops)
  for (index_t k = 0; k < g.k; ++k) {
    T sum = T(0);
    for (index_t n = 0; n < g.n; ++n) {
      const T* row = dyd + (n * g.k + k) * PQ;
      for (index_t j = 0; j < PQ; ++j) sum += row[j];
    }
    dbd[k] = sum;
  }
}

}  // namespace

#define TAPEGRAD_CONV2D_FAST(T)                                                                  \
  Tensor<T> conv2d_forward(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& w,         \
                           const Tensor<T>* b) {                                                 \
    Tensor<T> y(g.y_shape());                                                                    \
    forward_into(g, x, w, b, y);                                                                 \
    return y;                                                                                    \
  }                                                                                              \
  void conv2d_forward_into(const Conv2dGeom& g, const Tensor<T>& x, const Tensor<T>& w,         \
                           const Tensor<T>* b, Tensor<T>& y) {                                   \
    forward_into(g, x, w, b, y);                                                                 \
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
