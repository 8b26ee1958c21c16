// Exact conv2d (see kernels/conv2d_exact.hpp). Each direction: the ranges of the inputs give
// the scale (exact_sum.hpp), the scaled inputs are laid out for the micro-kernels
// (exact_layout.hpp), tiles of outputs run in parallel, and every element is emitted through
// the Sink, which decides it or falls back to the reference element function in f50.
#include "tapegrad/kernels/conv2d_exact.hpp"

#include <algorithm>
#include <cassert>

#include "exact_layout.hpp"
#include "exact_sum.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"

namespace tapegrad::exact {

using namespace detail;

namespace {

// The reference element functions as Sink::reference, on the given tensors (the inputs, or
// their magnitudes for the abs sums); flat output index -> F.
auto forward_ref(const Conv2dGeom& g) {
  return [&g](const Tensor<double>* x, const Tensor<double>* w, const Tensor<double>* b) {
    return [&g, x, w, b](index_t i) {
      const index_t q = i % g.q, p = (i / g.q) % g.p, k = (i / (g.q * g.p)) % g.k,
                    n = i / (g.q * g.p * g.k);
      return ref::conv2d_forward_at<f50>(g, *x, *w, b, n, k, p, q);
    };
  };
}
auto backward_data_ref(const Conv2dGeom& g) {
  return [&g](const Tensor<double>* dy, const Tensor<double>* w) {
    return [&g, dy, w](index_t i) {
      const index_t ww = i % g.w, h = (i / g.w) % g.h, c = (i / (g.w * g.h)) % g.c,
                    n = i / (g.w * g.h * g.c);
      return ref::conv2d_backward_data_at<f50>(g, *dy, *w, n, c, h, ww);
    };
  };
}
auto backward_weights_ref(const Conv2dGeom& g) {
  return [&g](const Tensor<double>* x, const Tensor<double>* dy) {
    return [&g, x, dy](index_t i) {
      const index_t cg = g.c_per_group(), s = i % g.s, r = (i / g.s) % g.r,
                    c = (i / (g.s * g.r)) % cg, k = i / (g.s * g.r * cg);
      return ref::conv2d_backward_weights_at<f50>(g, *x, *dy, k, c, r, s);
    };
  };
}
auto backward_bias_ref(const Conv2dGeom& g) {
  return [&g](const Tensor<double>* dy) {
    return [&g, dy](index_t k) { return ref::conv2d_backward_bias_at<f50>(g, *dy, k); };
  };
}

// The extents of the images each direction reads (exact_layout.hpp): one formula for the
// drivers and for conv2d_workspace_bytes.
index_t forward_cols(const Conv2dGeom& g, const Kernels& kk) {
  return ceil_div(g.q, kk.row_width) * kk.row_width +
         (g.s - 1) * g.prm.dilation[1] / g.prm.stride[1];
}
index_t spread_rows(const Conv2dGeom& g) {
  return g.h + g.prm.pad[0] + (g.r - 1) * g.prm.dilation[0];
}
index_t spread_cols(const Conv2dGeom& g, const Kernels& kk) {
  return ceil_div(g.w, kk.row_width) * kk.row_width + g.prm.pad[1] + (g.s - 1) * g.prm.dilation[1];
}
index_t run_len(const Conv2dGeom& g, const Kernels& kk) { return round_up(g.q, kk.lanes); }
index_t weights_cols(const Conv2dGeom& g, const Kernels& kk) {
  return run_len(g, kk) + (g.s - 1) * g.prm.dilation[1] / g.prm.stride[1];
}
index_t image_elems(const Conv2dGeom& g, index_t cols) {
  return g.n * g.c * (g.h + 2 * g.prm.pad[0]) * g.prm.stride[1] * cols;
}

void forward_run(const Conv2dGeom& g, const Tensor<double>& x, const Tensor<double>& w,
                 const Tensor<double>* b, Sink& sink, bool abs) {
  const Kernels& kk = kernels();
  const index_t cg = g.c_per_group(), kg = g.k_per_group(), nt = cg * g.r * g.s;
  const index_t n_terms = nt + (b ? 1 : 0), count = g.y_shape().numel();
  const Range rb = b ? range_of(b->data(), b->numel(), "b") : Range{};
  const Scale sc = choose_scale(range_of(x.data(), x.numel(), "x"),
                                range_of(w.data(), w.numel(), "w"), rb, n_terms);
  if (!prepare(sink, sc, make_bound(n_terms, kk.lanes), n_terms, abs, count, forward_ref(g), &x,
               &w, b))
    return;

  const index_t sh = g.prm.stride[0], sw = g.prm.stride[1];
  const index_t ph = g.prm.pad[0], pw = g.prm.pad[1];
  const index_t dh = g.prm.dilation[0], dw = g.prm.dilation[1];
  const index_t mo = kk.row_mo, width = kk.row_width, groups = g.groups();
  const index_t qt = ceil_div(g.q, width), kb = ceil_div(kg, mo);
  const PhaseImage img =
      phase_image(x.data(), g.n * g.c, g.h, g.w, ph, pw, sw, forward_cols(g, kk), sc.sa, abs);
  // coef of (group, k-block): term t = (c*R + r)*S + s, row o = output channel in the block.
  std::vector<double> coef(static_cast<std::size_t>(groups * kb * nt * mo), 0.0);
  for (index_t k = 0; k < g.k; ++k) {
    const index_t grp = k / kg, blk = (k % kg) / mo, o = (k % kg) % mo;
    double* cp = coef.data() + (grp * kb + blk) * nt * mo;
    for (index_t t = 0; t < nt; ++t) cp[t * mo + o] = scaled(w.data()[k * nt + t], sc.sb, abs);
  }
  std::vector<double> bias(static_cast<std::size_t>(g.k), 0.0);
  if (b)
    for (index_t k = 0; k < g.k; ++k) bias[k] = scaled((*b)[k], sc.sigma, abs);

  const index_t tiles = g.n * groups * g.p * qt;
#pragma omp parallel if (parallel_worth(count, n_terms))
  {
    std::vector<const double*> src(static_cast<std::size_t>(nt));
    std::vector<Raw> tile(static_cast<std::size_t>(mo * width));
#pragma omp for schedule(static)
    for (index_t tix = 0; tix < tiles; ++tix) {
      const index_t qi = tix % qt, p = (tix / qt) % g.p, grp = (tix / (qt * g.p)) % groups,
                    n = tix / (qt * g.p * groups), q0 = qi * width;
      for (index_t c = 0, t = 0; c < cg; ++c)
        for (index_t r = 0; r < g.r; ++r)
          for (index_t s = 0; s < g.s; ++s, ++t)
            src[t] = img.at(n * g.c + grp * cg + c, p * sh + r * dh, s * dw % sw) + q0 + s * dw / sw;
      for (index_t blk = 0; blk < kb; ++blk) {
        kk.row(nt, coef.data() + (grp * kb + blk) * nt * mo, src.data(), tile.data(), width);
        for (index_t o = 0; o < std::min(mo, kg - blk * mo); ++o) {
          const index_t k = grp * kg + blk * mo + o;
          for (index_t j = 0; j < std::min(width, g.q - q0); ++j) {
            Raw raw = tile[o * width + j];
            if (b) add_term(raw, bias[k]);
            sink.put(((n * g.k + k) * g.p + p) * g.q + q0 + j, raw);
          }
        }
      }
    }
  }
}

void backward_data_run(const Conv2dGeom& g, const Tensor<double>& dy, const Tensor<double>& w,
                       Sink& sink, bool abs) {
  const Kernels& kk = kernels();
  const index_t cg = g.c_per_group(), kg = g.k_per_group(), nt = kg * g.r * g.s;
  const index_t count = g.x_shape().numel();
  const Scale sc = choose_scale(range_of(dy.data(), dy.numel(), "dy"),
                                range_of(w.data(), w.numel(), "w"), Range{}, nt);
  if (!prepare(sink, sc, make_bound(nt, kk.lanes), nt, abs, count, backward_data_ref(g), &dy, &w))
    return;

  const index_t sh = g.prm.stride[0], sw = g.prm.stride[1];
  const index_t ph = g.prm.pad[0], pw = g.prm.pad[1];
  const index_t dh = g.prm.dilation[0], dw = g.prm.dilation[1];
  const index_t mo = kk.row_mo, width = kk.row_width, groups = g.groups();
  const index_t wt = ceil_div(g.w, width), cb = ceil_div(cg, mo);
  // dx[h][w] gathers dy spread out by the stride at row h + ph - r*dh (+ oh) and column
  // w + pw - s*dw (+ ow): contiguous in w.
  const index_t oh = (g.r - 1) * dh, ow = (g.s - 1) * dw;
  const SpreadImage img = spread_image(dy.data(), g.n * g.k, g.p, g.q, sh, sw, oh, ow,
                                       spread_rows(g), spread_cols(g, kk), sc.sa, abs);
  // coef of (group, c-block): term t = (k'*R + r)*S + s (k' within the group), row o = channel.
  const index_t rs = g.r * g.s;
  std::vector<double> coef(static_cast<std::size_t>(groups * cb * nt * mo), 0.0);
  for (index_t k = 0; k < g.k; ++k)
    for (index_t ci = 0; ci < cg; ++ci) {
      const index_t grp = k / kg, blk = ci / mo, o = ci % mo;
      double* cp = coef.data() + (grp * cb + blk) * nt * mo;
      for (index_t t = 0; t < rs; ++t)
        cp[((k % kg) * rs + t) * mo + o] = scaled(w.data()[(k * cg + ci) * rs + t], sc.sb, abs);
    }

  const index_t tiles = g.n * groups * g.h * wt;
#pragma omp parallel if (parallel_worth(count, nt))
  {
    std::vector<const double*> src(static_cast<std::size_t>(nt));
    std::vector<Raw> tile(static_cast<std::size_t>(mo * width));
#pragma omp for schedule(static)
    for (index_t tix = 0; tix < tiles; ++tix) {
      const index_t wi = tix % wt, h = (tix / wt) % g.h, grp = (tix / (wt * g.h)) % groups,
                    n = tix / (wt * g.h * groups), w0 = wi * width;
      for (index_t k = 0, t = 0; k < kg; ++k)
        for (index_t r = 0; r < g.r; ++r)
          for (index_t s = 0; s < g.s; ++s, ++t)
            src[t] = img.at(n * g.k + grp * kg + k, h + ph - r * dh + oh) + w0 + pw - s * dw + ow;
      for (index_t blk = 0; blk < cb; ++blk) {
        kk.row(nt, coef.data() + (grp * cb + blk) * nt * mo, src.data(), tile.data(), width);
        for (index_t o = 0; o < std::min(mo, cg - blk * mo); ++o) {
          const index_t c = grp * cg + blk * mo + o;
          for (index_t j = 0; j < std::min(width, g.w - w0); ++j)
            sink.put(((n * g.c + c) * g.h + h) * g.w + w0 + j, tile[o * width + j]);
        }
      }
    }
  }
}

void backward_weights_run(const Conv2dGeom& g, const Tensor<double>& x, const Tensor<double>& dy,
                          Sink& sink, bool abs) {
  const Kernels& kk = kernels();
  const index_t cg = g.c_per_group(), kg = g.k_per_group(), crs = cg * g.r * g.s;
  const index_t qp = run_len(g, kk), n_terms = g.n * g.p * qp;
  const index_t count = g.w_shape().numel();
  const Scale sc = choose_scale(range_of(dy.data(), dy.numel(), "dy"),
                                range_of(x.data(), x.numel(), "x"), Range{}, n_terms);
  if (!prepare(sink, sc, make_bound(n_terms, kk.lanes), n_terms, abs, count,
               backward_weights_ref(g), &x, &dy))
    return;

  const index_t sh = g.prm.stride[0], sw = g.prm.stride[1];
  const index_t ph = g.prm.pad[0], pw = g.prm.pad[1];
  const index_t dh = g.prm.dilation[0], dw = g.prm.dilation[1];
  const index_t mi = kk.dot_mi, nj = kk.dot_nj, groups = g.groups();
  // Runs: for each (n, p), the row q < Q of dy (zero-padded to qp) against the image row that
  // output row reads for (c, r, s).
  const std::vector<double> dyr = padded_rows(dy.data(), g.n * g.k * g.p, g.q, qp, sc.sa, abs);
  const PhaseImage img =
      phase_image(x.data(), g.n * g.c, g.h, g.w, ph, pw, sw, weights_cols(g, kk), sc.sb, abs);
  const index_t au = g.k * g.p * qp, av = qp;
  const index_t bu = g.c * img.plane_stride(), bv = sh * img.row_stride();
  const index_t kbn = ceil_div(kg, mi), jbn = ceil_div(crs, nj), tiles = groups * jbn * kbn;
#pragma omp parallel if (parallel_worth(count, n_terms))
  {
    std::vector<Raw> out(static_cast<std::size_t>(mi * nj));
    std::vector<const double*> a(static_cast<std::size_t>(mi)), bp(static_cast<std::size_t>(nj));
#pragma omp for schedule(static)
    for (index_t tix = 0; tix < tiles; ++tix) {
      const index_t kbl = tix % kbn, jbl = (tix / kbn) % jbn, grp = tix / (kbn * jbn);
      for (index_t i = 0; i < mi; ++i) {
        const index_t k = grp * kg + std::min(kbl * mi + i, kg - 1);  // repeats are ignored
        a[i] = dyr.data() + k * g.p * qp;
      }
      for (index_t j = 0; j < nj; ++j) {
        const index_t t = std::min(jbl * nj + j, crs - 1);
        const index_t c = t / (g.r * g.s), r = (t / g.s) % g.r, s = t % g.s;
        bp[j] = img.at(grp * cg + c, r * dh, s * dw % sw) + s * dw / sw;
      }
      kk.dot(a.data(), bp.data(), g.n, au, bu, g.p, av, bv, qp, out.data());
      for (index_t i = 0; i < std::min(mi, kg - kbl * mi); ++i)
        for (index_t j = 0; j < std::min(nj, crs - jbl * nj); ++j) {
          const index_t k = grp * kg + kbl * mi + i, t = jbl * nj + j;
          sink.put(k * crs + t, out[i * nj + j]);
        }
    }
  }
}

void backward_bias_run(const Conv2dGeom& g, const Tensor<double>& dy, Sink& sink, bool abs) {
  const Kernels& kk = kernels();
  const index_t qp = run_len(g, kk), n_terms = g.n * g.p * qp;
  const Scale sc = choose_scale_sum(range_of(dy.data(), dy.numel(), "dy"), n_terms);
  if (!prepare(sink, sc, make_bound(n_terms, kk.lanes), n_terms, abs, g.k, backward_bias_ref(g),
               &dy))
    return;

  const index_t mi = kk.dot_mi, nj = kk.dot_nj;
  const std::vector<double> dyr = padded_rows(dy.data(), g.n * g.k * g.p, g.q, qp, sc.sa, abs);
  const std::vector<double> ones(static_cast<std::size_t>(qp), 1.0);
  const index_t kbn = ceil_div(g.k, mi);
#pragma omp parallel if (parallel_worth(g.k, n_terms))
  {
    std::vector<Raw> out(static_cast<std::size_t>(mi * nj));
    std::vector<const double*> a(static_cast<std::size_t>(mi)),
        bp(static_cast<std::size_t>(nj), ones.data());
#pragma omp for schedule(static)
    for (index_t kbl = 0; kbl < kbn; ++kbl) {
      for (index_t i = 0; i < mi; ++i) a[i] = dyr.data() + std::min(kbl * mi + i, g.k - 1) * g.p * qp;
      kk.dot(a.data(), bp.data(), g.n, g.k * g.p * qp, 0, g.p, qp, 0, qp, out.data());
      for (index_t i = 0; i < std::min(mi, g.k - kbl * mi); ++i)
        sink.put(kbl * mi + i, out[i * nj]);
    }
  }
}

}  // namespace

std::uint64_t conv2d_workspace_bytes(const Conv2dGeom& g) {
  const Kernels& kk = kernels();
  const index_t rs = g.r * g.s, packed = g.groups() * (g.k_per_group() + kk.row_mo) *
                                           (g.c_per_group() + kk.row_mo) * rs;
  const index_t dy_rows = g.n * g.k * g.p * run_len(g, kk);
  const index_t elems = std::max({image_elems(g, forward_cols(g, kk)) + packed + g.k,
                                  g.n * g.k * spread_rows(g) * spread_cols(g, kk) + packed,
                                  dy_rows + image_elems(g, weights_cols(g, kk))});
  return static_cast<std::uint64_t>(elems) * sizeof(double);
}

template <class Tag>
Tensor<typename Tag::type> conv2d_forward(const Conv2dGeom& g, const Tensor<double>& x,
                                          const Tensor<double>& w, const Tensor<double>* b,
                                          Stats* stats) {
  assert(x.shape() == g.x_shape() && w.shape() == g.w_shape());
  assert((b != nullptr) == g.has_bias && (!b || b->shape() == g.b_shape()));
  return run_exact<Tag>(g.y_shape(), stats,
                        [&](Sink& sink, bool abs) { forward_run(g, x, w, b, sink, abs); });
}

template <class Tag>
Tensor<typename Tag::type> conv2d_backward_data(const Conv2dGeom& g, const Tensor<double>& dy,
                                                const Tensor<double>& w, Stats* stats) {
  assert(dy.shape() == g.y_shape() && w.shape() == g.w_shape());
  return run_exact<Tag>(g.x_shape(), stats,
                        [&](Sink& sink, bool abs) { backward_data_run(g, dy, w, sink, abs); });
}

template <class Tag>
Tensor<typename Tag::type> conv2d_backward_weights(const Conv2dGeom& g, const Tensor<double>& x,
                                                   const Tensor<double>& dy, Stats* stats) {
  assert(x.shape() == g.x_shape() && dy.shape() == g.y_shape());
  return run_exact<Tag>(g.w_shape(), stats,
                        [&](Sink& sink, bool abs) { backward_weights_run(g, x, dy, sink, abs); });
}

template <class Tag>
Tensor<typename Tag::type> conv2d_backward_bias(const Conv2dGeom& g, const Tensor<double>& dy,
                                                Stats* stats) {
  assert(dy.shape() == g.y_shape());
  return run_exact<Tag>(g.b_shape(), stats,
                        [&](Sink& sink, bool abs) { backward_bias_run(g, dy, sink, abs); });
}

#define TAPEGRAD_INSTANTIATE(Tag)                                                              \
  template Tensor<Tag::type> conv2d_forward<Tag>(const Conv2dGeom&, const Tensor<double>&,     \
                                                 const Tensor<double>&, const Tensor<double>*, \
                                                 Stats*);                                      \
  template Tensor<Tag::type> conv2d_backward_data<Tag>(                                        \
      const Conv2dGeom&, const Tensor<double>&, const Tensor<double>&, Stats*);                \
  template Tensor<Tag::type> conv2d_backward_weights<Tag>(                                     \
      const Conv2dGeom&, const Tensor<double>&, const Tensor<double>&, Stats*);                \
  template Tensor<Tag::type> conv2d_backward_bias<Tag>(const Conv2dGeom&,                      \
                                                       const Tensor<double>&, Stats*);
TAPEGRAD_INSTANTIATE(Nearest<float>)
TAPEGRAD_INSTANTIATE(Nearest<double>)
TAPEGRAD_INSTANTIATE(AbsSumUp)
TAPEGRAD_INSTANTIATE(Precise)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad::exact
