// Exact linear (see kernels/linear_exact.hpp), built like conv2d_exact.cpp: scale from the
// ranges, scaled zero-padded rows, tiles of outputs in parallel, every element through the Sink.
//   forward          dot kernel: rows x[n] . w[o] in lanes along the features, + the bias
//   backward-data    row kernel: dx[n][i..] = sum_o dy[n,o] * w[o][i..]
//   backward-wts     row kernel: dw[o][i..] = sum_n dy[n,o] * x[n][i..]
//   backward-bias    row kernel: db[o..]    = sum_n 1 * dy[n][o..]
#include "tapegrad/kernels/linear_exact.hpp"

#include <algorithm>
#include <cassert>

#include "exact_layout.hpp"
#include "exact_sum.hpp"
#include "tapegrad/kernels/linear_ref.hpp"

namespace tapegrad::exact {

using namespace detail;

namespace {

// The reference element functions as Sink::reference (see conv2d_exact.cpp).
auto forward_ref(const LinearGeom& g) {
  return [&g](const Tensor<double>* x, const Tensor<double>* w, const Tensor<double>* b) {
    return [&g, x, w, b](index_t i) {
      return ref::linear_forward_at<f50>(g, *x, *w, b, i / g.out, i % g.out);
    };
  };
}
auto backward_data_ref(const LinearGeom& g) {
  return [&g](const Tensor<double>* dy, const Tensor<double>* w) {
    return [&g, dy, w](index_t i) {
      return ref::linear_backward_data_at<f50>(g, *dy, *w, i / g.in, i % g.in);
    };
  };
}
auto backward_weights_ref(const LinearGeom& g) {
  return [&g](const Tensor<double>* x, const Tensor<double>* dy) {
    return [&g, x, dy](index_t i) {
      return ref::linear_backward_weights_at<f50>(g, *x, *dy, i / g.in, i % g.in);
    };
  };
}
auto backward_bias_ref(const LinearGeom& g) {
  return [&g](const Tensor<double>* dy) {
    return [&g, dy](index_t o) { return ref::linear_backward_bias_at<f50>(g, *dy, o); };
  };
}

// The row kernel over output rows m < rows (blocks of row_mo) and columns j < cols (tiles of
// row_width) with nt terms: term t of row m has coefficient coef(m, t), of column j the source
// src_row(t) + j (rows zero-padded to whole tiles). emit(m, j, raw) for the valid outputs.
template <class Coef, class Src, class Emit>
void row_sweep(const Kernels& kk, index_t rows, index_t cols, index_t nt, Coef coef, Src src_row,
               Emit emit) {
  const index_t mo = kk.row_mo, width = kk.row_width;
  const index_t mb = ceil_div(rows, mo), ct = ceil_div(cols, width);
  std::vector<double> packed(static_cast<std::size_t>(mb * nt * mo), 0.0);
  for (index_t m = 0; m < rows; ++m)
    for (index_t t = 0; t < nt; ++t) packed[((m / mo) * nt + t) * mo + m % mo] = coef(m, t);
#pragma omp parallel if (parallel_worth(rows * cols, nt))
  {
    std::vector<const double*> src(static_cast<std::size_t>(nt));
    std::vector<Raw> tile(static_cast<std::size_t>(mo * width));
#pragma omp for schedule(static)
    for (index_t tix = 0; tix < mb * ct; ++tix) {
      const index_t blk = tix / ct, j0 = (tix % ct) * width;
      for (index_t t = 0; t < nt; ++t) src[t] = src_row(t) + j0;
      kk.row(nt, packed.data() + blk * nt * mo, src.data(), tile.data(), width);
      for (index_t o = 0; o < std::min(mo, rows - blk * mo); ++o)
        for (index_t j = 0; j < std::min(width, cols - j0); ++j)
          emit(blk * mo + o, j0 + j, tile[o * width + j]);
    }
  }
}

void forward_run(const LinearGeom& g, const Tensor<double>& x, const Tensor<double>& w,
                 const Tensor<double>* b, Sink& sink, bool abs) {
  const Kernels& kk = kernels();
  const index_t len = round_up(g.in, kk.lanes), n_terms = len + (b ? 1 : 0);
  const Range rb = b ? range_of(b->data(), b->numel(), "b") : Range{};
  const Scale sc = choose_scale(range_of(x.data(), x.numel(), "x"),
                                range_of(w.data(), w.numel(), "w"), rb, n_terms);
  if (!prepare(sink, sc, make_bound(n_terms, kk.lanes), n_terms, abs, g.n * g.out, forward_ref(g),
               &x, &w, b))
    return;
  const std::vector<double> xr = padded_rows(x.data(), g.n, g.in, len, sc.sa, abs);
  const std::vector<double> wr = padded_rows(w.data(), g.out, g.in, len, sc.sb, abs);
  const index_t mi = kk.dot_mi, nj = kk.dot_nj;
  const index_t nb = ceil_div(g.n, mi), ob = ceil_div(g.out, nj);
#pragma omp parallel if (parallel_worth(g.n * g.out, len))
  {
    std::vector<Raw> out(static_cast<std::size_t>(mi * nj));
    std::vector<const double*> a(static_cast<std::size_t>(mi)), bp(static_cast<std::size_t>(nj));
#pragma omp for schedule(static)
    for (index_t tix = 0; tix < nb * ob; ++tix) {
      const index_t n0 = (tix / ob) * mi, o0 = (tix % ob) * nj;
      for (index_t i = 0; i < mi; ++i) a[i] = xr.data() + std::min(n0 + i, g.n - 1) * len;
      for (index_t j = 0; j < nj; ++j) bp[j] = wr.data() + std::min(o0 + j, g.out - 1) * len;
      kk.dot(a.data(), bp.data(), 1, 0, 0, 1, 0, 0, len, out.data());
      for (index_t i = 0; i < std::min(mi, g.n - n0); ++i)
        for (index_t j = 0; j < std::min(nj, g.out - o0); ++j) {
          Raw raw = out[i * nj + j];
          if (b) add_term(raw, scaled((*b)[o0 + j], sc.sigma, abs));
          sink.put((n0 + i) * g.out + o0 + j, raw);
        }
    }
  }
}

void backward_data_run(const LinearGeom& g, const Tensor<double>& dy, const Tensor<double>& w,
                       Sink& sink, bool abs) {
  const Kernels& kk = kernels();
  const Scale sc = choose_scale(range_of(dy.data(), dy.numel(), "dy"),
                                range_of(w.data(), w.numel(), "w"), Range{}, g.out);
  if (!prepare(sink, sc, make_bound(g.out, kk.lanes), g.out, abs, g.n * g.in,
               backward_data_ref(g), &dy, &w))
    return;
  const index_t stride = round_up(g.in, kk.row_width);
  const std::vector<double> wr = padded_rows(w.data(), g.out, g.in, stride, sc.sb, abs);
  row_sweep(
      kk, g.n, g.in, g.out, [&](index_t n, index_t o) { return scaled(dy(n, o), sc.sa, abs); },
      [&](index_t o) { return wr.data() + o * stride; },
      [&](index_t n, index_t i, const Raw& raw) { sink.put(n * g.in + i, raw); });
}

void backward_weights_run(const LinearGeom& g, const Tensor<double>& x, const Tensor<double>& dy,
                          Sink& sink, bool abs) {
  const Kernels& kk = kernels();
  const Scale sc = choose_scale(range_of(dy.data(), dy.numel(), "dy"),
                                range_of(x.data(), x.numel(), "x"), Range{}, g.n);
  if (!prepare(sink, sc, make_bound(g.n, kk.lanes), g.n, abs, g.out * g.in,
               backward_weights_ref(g), &x, &dy))
    return;
  const index_t stride = round_up(g.in, kk.row_width);
  const std::vector<double> xr = padded_rows(x.data(), g.n, g.in, stride, sc.sb, abs);
  row_sweep(
      kk, g.out, g.in, g.n, [&](index_t o, index_t n) { return scaled(dy(n, o), sc.sa, abs); },
      [&](index_t n) { return xr.data() + n * stride; },
      [&](index_t o, index_t i, const Raw& raw) { sink.put(o * g.in + i, raw); });
}

void backward_bias_run(const LinearGeom& g, const Tensor<double>& dy, Sink& sink, bool abs) {
  const Kernels& kk = kernels();
  const Scale sc = choose_scale_sum(range_of(dy.data(), dy.numel(), "dy"), g.n);
  if (!prepare(sink, sc, make_bound(g.n, kk.lanes), g.n, abs, g.out, backward_bias_ref(g), &dy))
    return;
  const index_t stride = round_up(g.out, kk.row_width);
  const std::vector<double> dyr = padded_rows(dy.data(), g.n, g.out, stride, sc.sa, abs);
  row_sweep(
      kk, 1, g.out, g.n, [](index_t, index_t) { return 1.0; },
      [&](index_t n) { return dyr.data() + n * stride; },
      [&](index_t, index_t o, const Raw& raw) { sink.put(o, raw); });
}

}  // namespace

template <class Tag>
Tensor<typename Tag::type> linear_forward(const LinearGeom& g, const Tensor<double>& x,
                                          const Tensor<double>& w, const Tensor<double>* b,
                                          Stats* stats) {
  assert(x.shape() == g.x_shape() && w.shape() == g.w_shape());
  assert((b != nullptr) == g.has_bias && (!b || b->shape() == g.b_shape()));
  return run_exact<Tag>(g.y_shape(), stats,
                        [&](Sink& sink, bool abs) { forward_run(g, x, w, b, sink, abs); });
}

template <class Tag>
Tensor<typename Tag::type> linear_backward_data(const LinearGeom& g, const Tensor<double>& dy,
                                                const Tensor<double>& w, Stats* stats) {
  assert(dy.shape() == g.y_shape() && w.shape() == g.w_shape());
  return run_exact<Tag>(g.x_shape(), stats,
                        [&](Sink& sink, bool abs) { backward_data_run(g, dy, w, sink, abs); });
}

template <class Tag>
Tensor<typename Tag::type> linear_backward_weights(const LinearGeom& g, const Tensor<double>& x,
                                                   const Tensor<double>& dy, Stats* stats) {
  assert(x.shape() == g.x_shape() && dy.shape() == g.y_shape());
  return run_exact<Tag>(g.w_shape(), stats,
                        [&](Sink& sink, bool abs) { backward_weights_run(g, x, dy, sink, abs); });
}

template <class Tag>
Tensor<typename Tag::type> linear_backward_bias(const LinearGeom& g, const Tensor<double>& dy,
                                                Stats* stats) {
  assert(dy.shape() == g.y_shape());
  return run_exact<Tag>(g.b_shape(), stats,
                        [&](Sink& sink, bool abs) { backward_bias_run(g, dy, sink, abs); });
}

#define TAPEGRAD_INSTANTIATE(Tag)                                                              \
  template Tensor<Tag::type> linear_forward<Tag>(const LinearGeom&, const Tensor<double>&,     \
                                                 const Tensor<double>&, const Tensor<double>*, \
                                                 Stats*);                                      \
  template Tensor<Tag::type> linear_backward_data<Tag>(                                        \
      const LinearGeom&, const Tensor<double>&, const Tensor<double>&, Stats*);                \
  template Tensor<Tag::type> linear_backward_weights<Tag>(                                     \
      const LinearGeom&, const Tensor<double>&, const Tensor<double>&, Stats*);                \
  template Tensor<Tag::type> linear_backward_bias<Tag>(const LinearGeom&,                      \
                                                       const Tensor<double>&, Stats*);
TAPEGRAD_INSTANTIATE(Nearest<float>)
TAPEGRAD_INSTANTIATE(Nearest<double>)
TAPEGRAD_INSTANTIATE(AbsSumUp)
TAPEGRAD_INSTANTIATE(Precise)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad::exact
