// Exact avg_pool2d (see kernels/pool_exact.hpp), built like conv2d_exact.cpp with one output
// plane per row kernel call (a coefficient of 1 on its first row) and the division by the
// window size done by the Sink (exact_sum.hpp divide), counted as one more rounding of the
// reference in the bound.
#include "tapegrad/kernels/pool_exact.hpp"

#include <algorithm>
#include <cassert>

#include "exact_layout.hpp"
#include "exact_sum.hpp"
#include "tapegrad/kernels/pool_ref.hpp"

namespace tapegrad::exact {

using namespace detail;

namespace {

auto forward_ref(const Pool2dGeom& g) {
  return [&g](const Tensor<double>* x) {
    return [&g, x](index_t i) {
      const index_t q = i % g.q, p = (i / g.q) % g.p, c = (i / (g.q * g.p)) % g.c,
                    n = i / (g.q * g.p * g.c);
      return ref::avg_pool2d_forward_at<f50>(g, *x, n, c, p, q);
    };
  };
}
auto backward_ref(const Pool2dGeom& g) {
  return [&g](const Tensor<double>* dy) {
    return [&g, dy](index_t i) {
      const index_t ww = i % g.w, h = (i / g.w) % g.h, c = (i / (g.w * g.h)) % g.c,
                    n = i / (g.w * g.h * g.c);
      return ref::avg_pool2d_backward_at<f50>(g, *dy, n, c, h, ww);
    };
  };
}

// The row kernel's coefficients for one plane: 1 for every term on row 0, 0 on the others.
std::vector<double> first_row_ones(const Kernels& kk, index_t nt) {
  std::vector<double> coef(static_cast<std::size_t>(nt * kk.row_mo), 0.0);
  for (index_t t = 0; t < nt; ++t) coef[t * kk.row_mo] = 1.0;
  return coef;
}

// The extents of the images each direction reads: one formula for the drivers and for
// avg_pool2d_workspace_bytes.
index_t forward_cols(const Pool2dGeom& g, const Kernels& kk) {
  return ceil_div(g.q, kk.row_width) * kk.row_width + (g.prm.kernel[1] - 1) / g.prm.stride[1];
}
index_t spread_rows(const Pool2dGeom& g) { return g.h + g.prm.pad[0] + g.prm.kernel[0] - 1; }
index_t spread_cols(const Pool2dGeom& g, const Kernels& kk) {
  return ceil_div(g.w, kk.row_width) * kk.row_width + g.prm.pad[1] + g.prm.kernel[1] - 1;
}

void forward_run(const Pool2dGeom& g, const Tensor<double>& x, Sink& sink, bool abs) {
  const Kernels& kk = kernels();
  const index_t kh = g.prm.kernel[0], kw = g.prm.kernel[1];
  const index_t sh = g.prm.stride[0], sw = g.prm.stride[1];
  const index_t ph = g.prm.pad[0], pw = g.prm.pad[1];
  const index_t nt = kh * kw, count = g.y_shape().numel();
  const Scale sc = choose_scale_sum(range_of(x.data(), x.numel(), "x"), nt);
  sink.divisor = static_cast<double>(nt);
  if (!prepare(sink, sc, make_bound(nt, kk.lanes, 1), nt, abs, count, forward_ref(g), &x)) return;
  const index_t width = kk.row_width, qt = ceil_div(g.q, width);
  const PhaseImage img =
      phase_image(x.data(), g.n * g.c, g.h, g.w, ph, pw, sw, forward_cols(g, kk), sc.sa, abs);
  const std::vector<double> coef = first_row_ones(kk, nt);
  const index_t tiles = g.n * g.c * g.p * qt;
#pragma omp parallel if (parallel_worth(count, nt))
  {
    std::vector<const double*> src(static_cast<std::size_t>(nt));
    std::vector<Raw> tile(static_cast<std::size_t>(kk.row_mo * width));
#pragma omp for schedule(static)
    for (index_t tix = 0; tix < tiles; ++tix) {
      const index_t q0 = (tix % qt) * width, p = (tix / qt) % g.p, nc = tix / (qt * g.p);
      for (index_t i = 0, t = 0; i < kh; ++i)
        for (index_t j = 0; j < kw; ++j, ++t) src[t] = img.at(nc, p * sh + i, j % sw) + q0 + j / sw;
      kk.row(nt, coef.data(), src.data(), tile.data(), width);
      for (index_t j = 0; j < std::min(width, g.q - q0); ++j)
        sink.put((nc * g.p + p) * g.q + q0 + j, tile[j]);
    }
  }
}

void backward_run(const Pool2dGeom& g, const Tensor<double>& dy, Sink& sink, bool abs) {
  const Kernels& kk = kernels();
  const index_t kh = g.prm.kernel[0], kw = g.prm.kernel[1];
  const index_t sh = g.prm.stride[0], sw = g.prm.stride[1];
  const index_t ph = g.prm.pad[0], pw = g.prm.pad[1];
  const index_t nt = kh * kw, count = g.x_shape().numel();
  const Scale sc = choose_scale_sum(range_of(dy.data(), dy.numel(), "dy"), nt);
  sink.divisor = static_cast<double>(nt);
  if (!prepare(sink, sc, make_bound(nt, kk.lanes, 1), nt, abs, count, backward_ref(g), &dy))
    return;
  const index_t width = kk.row_width, wt = ceil_div(g.w, width);
  // dx[h][w] gathers dy spread out by the stride at row h + ph - i (+ oh), column w + pw - j
  // (+ ow), as conv2d's backward-data with a kernel of ones.
  const index_t oh = kh - 1, ow = kw - 1;
  const SpreadImage img = spread_image(dy.data(), g.n * g.c, g.p, g.q, sh, sw, oh, ow,
                                       spread_rows(g), spread_cols(g, kk), sc.sa, abs);
  const std::vector<double> coef = first_row_ones(kk, nt);
  const index_t tiles = g.n * g.c * g.h * wt;
#pragma omp parallel if (parallel_worth(count, nt))
  {
    std::vector<const double*> src(static_cast<std::size_t>(nt));
    std::vector<Raw> tile(static_cast<std::size_t>(kk.row_mo * width));
#pragma omp for schedule(static)
    for (index_t tix = 0; tix < tiles; ++tix) {
      const index_t w0 = (tix % wt) * width, h = (tix / wt) % g.h, nc = tix / (wt * g.h);
      for (index_t i = 0, t = 0; i < kh; ++i)
        for (index_t j = 0; j < kw; ++j, ++t)
          src[t] = img.at(nc, h + ph - i + oh) + w0 + pw - j + ow;
      kk.row(nt, coef.data(), src.data(), tile.data(), width);
      for (index_t j = 0; j < std::min(width, g.w - w0); ++j)
        sink.put((nc * g.h + h) * g.w + w0 + j, tile[j]);
    }
  }
}

}  // namespace

std::uint64_t avg_pool2d_workspace_bytes(const Pool2dGeom& g) {
  const Kernels& kk = kernels();
  const index_t elems =
      std::max(g.n * g.c * (g.h + 2 * g.prm.pad[0]) * g.prm.stride[1] * forward_cols(g, kk),
               g.n * g.c * spread_rows(g) * spread_cols(g, kk));
  return static_cast<std::uint64_t>(elems) * sizeof(double);
}

template <class Tag>
Tensor<typename Tag::type> avg_pool2d_forward(const Pool2dGeom& g, const Tensor<double>& x,
                                              Stats* stats) {
  assert(x.shape() == g.x_shape());
  return run_exact<Tag>(g.y_shape(), stats,
                        [&](Sink& sink, bool abs) { forward_run(g, x, sink, abs); });
}

template <class Tag>
Tensor<typename Tag::type> avg_pool2d_backward(const Pool2dGeom& g, const Tensor<double>& dy,
                                               Stats* stats) {
  assert(dy.shape() == g.y_shape());
  return run_exact<Tag>(g.x_shape(), stats,
                        [&](Sink& sink, bool abs) { backward_run(g, dy, sink, abs); });
}

#define TAPEGRAD_INSTANTIATE(Tag)                                                           \
  template Tensor<Tag::type> avg_pool2d_forward<Tag>(const Pool2dGeom&, const Tensor<double>&, \
                                                     Stats*);                                 \
  template Tensor<Tag::type> avg_pool2d_backward<Tag>(const Pool2dGeom&,                      \
                                                      const Tensor<double>&, Stats*);
TAPEGRAD_INSTANTIATE(Nearest<float>)
TAPEGRAD_INSTANTIATE(Nearest<double>)
TAPEGRAD_INSTANTIATE(AbsSumUp)
TAPEGRAD_INSTANTIATE(Precise)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad::exact
