// A user of an installed tapegrad checking a real third-party library: oneDNN (Debian's
// libdnnl-dev, oneDNN 2.6, CPU engine, float). Each oneDNN primitive is wrapped as the raw-buffer
// callback the oracle takes (PyTorch's logical shapes, NCHW / OIHW plain buffers; oneDNN picks
// its own memory formats, `any`, and the wrapper reorders in and out), then checked through
// oracle::check_* on fixed problems AND oracle::search_* on random ones:
//
//   convolution (forward with bias, backward data, backward weights, backward bias),
//   inner product (the same four), max and avg pooling (forward, backward),
//   eltwise relu / tanh / logistic (forward, backward), softmax and logsoftmax (forward, backward)
//
//   onednn_consumer good          every check and search: exit 0 when all pass, 1 otherwise
//   onednn_consumer wrong-<op>    one planted bug in that op's wrapper (see Bug below): prints
//                                 the failing check's report (with its pattern line) and the
//                                 search's shrunk case; exit 1 when both catch it, 3 when not
//   <op>: conv2d linear max_pool2d avg_pool2d relu tanh sigmoid softmax log_softmax
//   TAPEGRAD_SEARCH_CASES=N, TAPEGRAD_SEARCH_SEED=S   cases per search (default 50), seed (1)
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <unordered_map>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace {

using namespace tapegrad;
using namespace tapegrad::oracle;
using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

// The planted bugs, one per op (mode wrong-<op>), each a slip a wrapper author could make:
//   conv2d       the input is staged into oneDNN one image short (the last image reads zeros)
//   linear       the forward result is copied back one row short (the last row never written)
//   max_pool2d   the forward result is copied back one column short per row
//   avg_pool2d   pooling_avg_exclude_padding where PyTorch's count_include_pad is meant
//   relu         a vector loop's tail: only the first multiple of 16 elements are handed over
//   tanh         backward with eltwise_tanh (which takes x) fed the forward output y
//   sigmoid      backward with eltwise_logistic (which takes x) fed the forward output y
//   softmax      softmax over axis 0 instead of PyTorch's dim 1
//   log_softmax  logsoftmax over the last axis instead of dim 1
std::string g_bug;  // "" or the op whose wrapper is wrong
bool bug(const char* op) { return g_bug == op; }

dnnl::engine& eng() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& strm() {
  static dnnl::stream s(eng());
  return s;
}

tag plain(std::size_t rank) {
  switch (rank) {
    case 1: return tag::a;
    case 2: return tag::ab;
    case 3: return tag::abc;
    case 4: return tag::abcd;
    default: return tag::abcde;
  }
}
memory::dims dims_of(const Shape& s) { return memory::dims(s.dims().begin(), s.dims().end()); }
// A user buffer as oneDNN memory, row-major (oneDNN only reads the inputs: the oracle checks).
memory user(const memory::dims& d, const float* p) {
  return memory({d, dt::f32, plain(d.size())}, eng(), const_cast<float*>(p));
}
memory user(const memory::dims& d, tag t, const float* p) {
  return memory({d, dt::f32, t}, eng(), const_cast<float*>(p));
}
// m in the format the primitive wants (a reorder when it differs).
memory as(const memory& m, const memory::desc& want) {
  if (m.get_desc() == want) return m;
  memory out(want, eng());
  dnnl::reorder(m, out).execute(strm(), const_cast<memory&>(m), out);
  return out;
}
// The primitive's output into the user's buffer (a reorder: oneDNN's format to plain).
void give(memory got, memory dst) {
  if (got.get_data_handle() != dst.get_data_handle())
    dnnl::reorder(got, dst).execute(strm(), got, dst);
  strm().wait();
}
memory::desc any(const memory::dims& d) { return {d, dt::f32, tag::any}; }
memory::desc plain_md(const memory::dims& d) { return {d, dt::f32, plain(d.size())}; }

// ---------------------------------------------------------------- convolution
struct ConvDims {
  memory::dims x, w, b, y, strides, dil, pl, pr;
  tag wtag;
};
ConvDims conv_dims(const Conv2dProblem& p) {
  const Conv2dGeom g = make_conv2d_geom(p.x, p.w, nullptr, p.params);
  ConvDims d;
  d.x = {g.n, g.c, g.h, g.w};
  d.y = {g.n, g.k, g.p, g.q};
  d.b = {g.k};
  const index_t G = g.groups();
  d.w = G > 1 ? memory::dims{G, g.k / G, g.c / G, g.r, g.s} : memory::dims{g.k, g.c, g.r, g.s};
  d.wtag = G > 1 ? tag::goihw : tag::oihw;  // the same bytes as PyTorch's (K, C/g, R, S)
  const index_t in[2] = {g.h, g.w}, out[2] = {g.p, g.q}, ker[2] = {g.r, g.s};
  for (int a = 0; a < 2; ++a) {
    d.strides.push_back(g.prm.stride[a]);
    d.dil.push_back(g.prm.dilation[a] - 1);  // oneDNN counts the gaps: 0 = no dilation
    d.pl.push_back(g.prm.pad[a]);
    // The right padding that makes oneDNN's output size PyTorch's (floor mode); may be < 0.
    d.pr.push_back((out[a] - 1) * g.prm.stride[a] + g.prm.dilation[a] * (ker[a] - 1) + 1 -
                   in[a] - g.prm.pad[a]);
  }
  return d;
}
dnnl::convolution_forward::primitive_desc conv_fwd_pd(const ConvDims& d, bool bias) {
  using F = dnnl::convolution_forward;
  const auto alg = dnnl::algorithm::convolution_direct;
  const auto pk = dnnl::prop_kind::forward_training;
  return bias ? F::primitive_desc(F::desc(pk, alg, any(d.x), any(d.w), any(d.b), any(d.y),
                                          d.strides, d.dil, d.pl, d.pr), eng())
              : F::primitive_desc(F::desc(pk, alg, any(d.x), any(d.w), any(d.y), d.strides,
                                          d.dil, d.pl, d.pr), eng());
}
void conv_forward(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                  float* y) {
  const ConvDims d = conv_dims(p);
  std::vector<float> staged(x, x + p.x.numel());
  if (bug("conv2d"))  // the planted bug: one image short
    std::fill(staged.end() - p.x.numel() / p.x[0], staged.end(), 0.0f);
  const auto pd = conv_fwd_pd(d, b != nullptr);
  memory ym(pd.dst_desc(), eng());
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, as(user(d.x, staged.data()), pd.src_desc())},
      {DNNL_ARG_WEIGHTS, as(user(d.w, d.wtag, w), pd.weights_desc())},
      {DNNL_ARG_DST, ym}};
  if (b) args[DNNL_ARG_BIAS] = as(user(d.b, b), pd.bias_desc());
  dnnl::convolution_forward(pd).execute(strm(), args);
  give(ym, user(d.y, y));
}
void conv_backward_data(const Conv2dProblem& p, const float* dy, const float* w, float* dx) {
  using B = dnnl::convolution_backward_data;
  const ConvDims d = conv_dims(p);
  const B::primitive_desc pd(B::desc(dnnl::algorithm::convolution_direct, any(d.x), any(d.w),
                                     any(d.y), d.strides, d.dil, d.pl, d.pr),
                             eng(), conv_fwd_pd(d, false));
  memory dxm(pd.diff_src_desc(), eng());
  B(pd).execute(strm(), {{DNNL_ARG_DIFF_DST, as(user(d.y, dy), pd.diff_dst_desc())},
                         {DNNL_ARG_WEIGHTS, as(user(d.w, d.wtag, w), pd.weights_desc())},
                         {DNNL_ARG_DIFF_SRC, dxm}});
  give(dxm, user(d.x, dx));
}
// Backward weights and bias in one primitive; each check takes its half.
void conv_backward_weights_bias(const Conv2dProblem& p, const float* x, const float* dy,
                                float* dw, float* db) {
  using B = dnnl::convolution_backward_weights;
  const ConvDims d = conv_dims(p);
  const B::primitive_desc pd(B::desc(dnnl::algorithm::convolution_direct, any(d.x), any(d.w),
                                     any(d.b), any(d.y), d.strides, d.dil, d.pl, d.pr),
                             eng(), conv_fwd_pd(d, true));
  memory dwm(pd.diff_weights_desc(), eng()), dbm(pd.diff_bias_desc(), eng());
  B(pd).execute(strm(), {{DNNL_ARG_SRC, as(user(d.x, x), pd.src_desc())},
                         {DNNL_ARG_DIFF_DST, as(user(d.y, dy), pd.diff_dst_desc())},
                         {DNNL_ARG_DIFF_WEIGHTS, dwm},
                         {DNNL_ARG_DIFF_BIAS, dbm}});
  std::vector<float> scratch_w, scratch_b;
  if (!dw) scratch_w.resize(static_cast<std::size_t>(p.w.numel()));
  if (!db) scratch_b.resize(static_cast<std::size_t>(p.w[0]));
  give(dwm, user(d.w, d.wtag, dw ? dw : scratch_w.data()));
  give(dbm, user(d.b, db ? db : scratch_b.data()));
}

// ---------------------------------------------------------------- inner product
dnnl::inner_product_forward::primitive_desc ip_fwd_pd(const LinearProblem& p, bool bias) {
  using F = dnnl::inner_product_forward;
  const memory::dims x = dims_of(p.x), w = dims_of(p.w), b{p.w[0]}, y{p.x[0], p.w[0]};
  const auto pk = dnnl::prop_kind::forward_training;
  return bias ? F::primitive_desc(F::desc(pk, any(x), any(w), any(b), any(y)), eng())
              : F::primitive_desc(F::desc(pk, any(x), any(w), any(y)), eng());
}
void ip_forward(const LinearProblem& p, const float* x, const float* w, const float* b,
                float* y) {
  const auto pd = ip_fwd_pd(p, b != nullptr);
  const memory::dims yd{p.x[0], p.w[0]};
  memory ym(pd.dst_desc(), eng());
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, as(user(dims_of(p.x), x), pd.src_desc())},
      {DNNL_ARG_WEIGHTS, as(user(dims_of(p.w), w), pd.weights_desc())},
      {DNNL_ARG_DST, ym}};
  if (b) args[DNNL_ARG_BIAS] = as(user({p.w[0]}, b), pd.bias_desc());
  dnnl::inner_product_forward(pd).execute(strm(), args);
  if (bug("linear")) {  // the planted bug: the copy back stops one row short
    std::vector<float> all(static_cast<std::size_t>(p.x[0] * p.w[0]));
    give(ym, user(yd, all.data()));
    std::copy(all.begin(), all.end() - p.w[0], y);
    return;
  }
  give(ym, user(yd, y));
}
void ip_backward_data(const LinearProblem& p, const float* dy, const float* w, float* dx) {
  using B = dnnl::inner_product_backward_data;
  const memory::dims y{p.x[0], p.w[0]};
  const B::primitive_desc pd(B::desc(any(dims_of(p.x)), any(dims_of(p.w)), any(y)), eng(),
                             ip_fwd_pd(p, false));
  memory dxm(pd.diff_src_desc(), eng());
  B(pd).execute(strm(), {{DNNL_ARG_DIFF_DST, as(user(y, dy), pd.diff_dst_desc())},
                         {DNNL_ARG_WEIGHTS, as(user(dims_of(p.w), w), pd.weights_desc())},
                         {DNNL_ARG_DIFF_SRC, dxm}});
  give(dxm, user(dims_of(p.x), dx));
}
void ip_backward_weights_bias(const LinearProblem& p, const float* x, const float* dy, float* dw,
                              float* db) {
  using B = dnnl::inner_product_backward_weights;
  const memory::dims y{p.x[0], p.w[0]}, b{p.w[0]};
  const B::primitive_desc pd(B::desc(any(dims_of(p.x)), any(dims_of(p.w)), any(b), any(y)),
                             eng(), ip_fwd_pd(p, true));
  memory dwm(pd.diff_weights_desc(), eng()), dbm(pd.diff_bias_desc(), eng());
  B(pd).execute(strm(), {{DNNL_ARG_SRC, as(user(dims_of(p.x), x), pd.src_desc())},
                         {DNNL_ARG_DIFF_DST, as(user(y, dy), pd.diff_dst_desc())},
                         {DNNL_ARG_DIFF_WEIGHTS, dwm},
                         {DNNL_ARG_DIFF_BIAS, dbm}});
  std::vector<float> sw, sb;
  if (!dw) sw.resize(static_cast<std::size_t>(p.w.numel()));
  if (!db) sb.resize(static_cast<std::size_t>(p.w[0]));
  give(dwm, user(dims_of(p.w), dw ? dw : sw.data()));
  give(dbm, user(b, db ? db : sb.data()));
}

// ---------------------------------------------------------------- pooling
struct PoolDims {
  memory::dims x, y, strides, kernel, pl, pr;
};
PoolDims pool_dims(const Pool2dProblem& p) {
  const Pool2dGeom g = make_pool2d_geom(p.x, p.params, "onednn");
  PoolDims d{{g.n, g.c, g.h, g.w}, {g.n, g.c, g.p, g.q}, {}, {}, {}, {}};
  const index_t in[2] = {g.h, g.w}, out[2] = {g.p, g.q};
  for (int a = 0; a < 2; ++a) {
    d.strides.push_back(g.prm.stride[a]);
    d.kernel.push_back(g.prm.kernel[a]);
    d.pl.push_back(g.prm.pad[a]);
    d.pr.push_back((out[a] - 1) * g.prm.stride[a] + g.prm.kernel[a] - in[a] - g.prm.pad[a]);
  }
  return d;
}
dnnl::algorithm pool_alg(bool max) {
  if (max) return dnnl::algorithm::pooling_max;
  return bug("avg_pool2d") ? dnnl::algorithm::pooling_avg_exclude_padding  // the planted bug
                           : dnnl::algorithm::pooling_avg_include_padding;  // PyTorch's default
}
dnnl::pooling_forward::primitive_desc pool_fwd_pd(const PoolDims& d, bool max) {
  using F = dnnl::pooling_forward;
  // Pooling takes defined formats (no `any`): plain NCHW, as the user's buffers are.
  return F::primitive_desc(F::desc(dnnl::prop_kind::forward_training, pool_alg(max),
                                   plain_md(d.x), plain_md(d.y), d.strides, d.kernel, d.pl, d.pr),
                           eng());
}
void pool_forward(bool max, const Pool2dProblem& p, const float* x, float* y) {
  const PoolDims d = pool_dims(p);
  const auto pd = pool_fwd_pd(d, max);
  memory ym(pd.dst_desc(), eng());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, as(user(d.x, x), pd.src_desc())},
                                       {DNNL_ARG_DST, ym}};
  if (max) args[DNNL_ARG_WORKSPACE] = memory(pd.workspace_desc(), eng());
  dnnl::pooling_forward(pd).execute(strm(), args);
  if (max && bug("max_pool2d")) {  // the planted bug: one column short on the way back
    std::vector<float> all(static_cast<std::size_t>(p.x[0] * p.x[1] * d.y[2] * d.y[3]));
    give(ym, user(d.y, all.data()));
    for (std::size_t i = 0; i < all.size(); ++i)
      if (static_cast<index_t>(i % static_cast<std::size_t>(d.y[3])) != d.y[3] - 1) y[i] = all[i];
    return;
  }
  give(ym, user(d.y, y));
}
// Max pooling's backward needs the forward's workspace (which input won): run the forward on x.
void pool_backward(bool max, const Pool2dProblem& p, const float* x, const float* dy, float* dx) {
  using B = dnnl::pooling_backward;
  const PoolDims d = pool_dims(p);
  const auto fpd = pool_fwd_pd(d, max);
  const B::primitive_desc pd(B::desc(pool_alg(max), plain_md(d.x), plain_md(d.y), d.strides,
                                     d.kernel, d.pl, d.pr),
                             eng(), fpd);
  std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, as(user(d.y, dy), pd.diff_dst_desc())}};
  if (max) {
    memory ws(fpd.workspace_desc(), eng()), ym(fpd.dst_desc(), eng());
    dnnl::pooling_forward(fpd).execute(
        strm(), {{DNNL_ARG_SRC, as(user(d.x, x), fpd.src_desc())}, {DNNL_ARG_DST, ym},
                 {DNNL_ARG_WORKSPACE, ws}});
    args[DNNL_ARG_WORKSPACE] = ws;
  }
  memory dxm(pd.diff_src_desc(), eng());
  args[DNNL_ARG_DIFF_SRC] = dxm;
  B(pd).execute(strm(), args);
  give(dxm, user(d.x, dx));
}

// ---------------------------------------------------------------- eltwise, softmax
void eltwise_forward(dnnl::algorithm alg, const Shape& s, const float* x, float* y) {
  using F = dnnl::eltwise_forward;
  index_t n = s.numel();
  if (bug("relu") && alg == dnnl::algorithm::eltwise_relu) n -= n % 16;  // the planted bug
  const memory::dims flat{n};
  if (n == 0) return;
  const F::primitive_desc pd(F::desc(dnnl::prop_kind::forward_training, alg,
                                     memory::desc(flat, dt::f32, tag::a), 0.0f, 0.0f),
                             eng());
  F(pd).execute(strm(), {{DNNL_ARG_SRC, user(flat, x)}, {DNNL_ARG_DST, user(flat, y)}});
  strm().wait();
}
// relu's backward takes x (DNNL_ARG_SRC); tanh's and logistic's the output y (*_use_dst_for_bwd,
// DNNL_ARG_DST), as the oracle hands them.
void eltwise_backward(dnnl::algorithm alg, bool takes_dst,
                      const Shape& s, const float* xy, const float* dy, float* dx) {
  using F = dnnl::eltwise_forward;
  using B = dnnl::eltwise_backward;
  const memory::dims d{s.numel()};
  const memory::desc md(d, dt::f32, tag::a);
  // The hint is the forward of the backward's algorithm (oneDNN wants them to agree).
  const F::primitive_desc hint(F::desc(dnnl::prop_kind::forward_training, alg, md, 0.0f, 0.0f),
                               eng());
  const B::primitive_desc pd(B::desc(alg, md, md, 0.0f, 0.0f), eng(), hint);
  B(pd).execute(strm(), {{takes_dst ? DNNL_ARG_DST : DNNL_ARG_SRC, user(d, xy)},
                         {DNNL_ARG_DIFF_DST, user(d, dy)},
                         {DNNL_ARG_DIFF_SRC, user(d, dx)}});
  strm().wait();
}
template <class F, class B>
void softmax_like_forward(bool log, const Shape& s, const float* x, float* y) {
  const memory::dims d = dims_of(s);
  int axis = 1;
  if (!log && bug("softmax")) axis = 0;                                    // the planted bug
  if (log && bug("log_softmax")) axis = static_cast<int>(s.rank()) - 1;   // the planted bug
  const memory::desc md(d, dt::f32, plain(d.size()));
  const typename F::primitive_desc pd(typename F::desc(dnnl::prop_kind::forward_training, md, axis),
                                      eng());
  F(pd).execute(strm(), {{DNNL_ARG_SRC, user(d, x)}, {DNNL_ARG_DST, user(d, y)}});
  strm().wait();
}
template <class F, class B>
void softmax_like_backward(const Shape& s, const float* y, const float* dy, float* dx) {
  const memory::dims d = dims_of(s);
  const memory::desc md(d, dt::f32, plain(d.size()));
  const typename F::primitive_desc hint(typename F::desc(dnnl::prop_kind::forward_training, md, 1),
                                        eng());
  const typename B::primitive_desc pd(typename B::desc(md, md, 1), eng(), hint);
  B(pd).execute(strm(), {{DNNL_ARG_DST, user(d, y)},
                         {DNNL_ARG_DIFF_DST, user(d, dy)},
                         {DNNL_ARG_DIFF_SRC, user(d, dx)}});
  strm().wait();
}

// ---------------------------------------------------------------- the checks and searches
struct Tally {
  int run = 0, failed = 0, known = 0;
  bool verbose = false;
  // A search expected to fail on a documented property of oneDNN (not a wrapper bug): printed,
  // not counted as a failure; said when it no longer reproduces.
  void known_deviation(const SearchResult& r, const char* what) {
    ++run;
    if (r.passed()) {
      r.print(std::cout);
      std::cout << "onednn_consumer: the known deviation (" << what << ") did not reproduce\n";
      return;
    }
    ++known;
    std::cout << "KNOWN DEVIATION of oneDNN, not a wrapper bug: " << what << "\n";
    r.print(std::cout);
  }
  void check(const OracleReport& r) {
    ++run;
    if (!r.passed()) ++failed;
    if (!r.passed() || verbose) r.print(std::cout);
  }
  void search(const SearchResult& r) {
    ++run;
    if (!r.passed()) ++failed;
    r.print(std::cout);
  }
};

using A = dnnl::algorithm;

void conv_checks(Tally& t, const SearchOptions& so) {
  // Stride, padding, dilation and groups together; depthwise; 1x1 strided.
  std::vector<Conv2dProblem> probs(3);
  probs[0].x = {2, 4, 9, 8};
  probs[0].w = {6, 2, 3, 2};
  probs[0].params = {.stride = {2, 1}, .pad = {2, 1}, .dilation = {2, 3}, .groups = 2};
  probs[1].x = {1, 3, 7, 7};
  probs[1].w = {3, 1, 3, 3};
  probs[1].params = {.stride = {1, 1}, .pad = {1, 1}, .dilation = {1, 1}, .groups = 3};
  probs[2].x = {2, 5, 6, 5};
  probs[2].w = {4, 5, 1, 1};
  probs[2].params = {.stride = {2, 2}, .pad = {0, 0}, .dilation = {1, 1}, .groups = 1};
  for (Conv2dProblem p : probs) {
    p.bias = true;  // the forward callback gets a bias buffer only with prob.bias = true
    t.check(check_conv2d_forward(
        p, [&](const float* x, const float* w, const float* b, float* y) {
          conv_forward(p, x, w, b, y);
        }));
    p.bias = false;
    t.check(check_conv2d_backward_data(
        p, [&](const float* dy, const float* w, float* dx) { conv_backward_data(p, dy, w, dx); }));
    t.check(check_conv2d_backward_weights(p, [&](const float* x, const float* dy, float* dw) {
      conv_backward_weights_bias(p, x, dy, dw, nullptr);
    }));
    t.check(check_conv2d_backward_bias(p, [&](const float* dy, float* db) {
      std::vector<float> x(static_cast<std::size_t>(p.x.numel()), 0.0f);
      conv_backward_weights_bias(p, x.data(), dy, nullptr, db);
    }));
  }
  t.search(search_conv2d_forward(conv_forward, so));
  t.search(search_conv2d_backward_data(conv_backward_data, so));
  t.search(search_conv2d_backward_weights(
      [](const Conv2dProblem& p, const float* x, const float* dy, float* dw) {
        conv_backward_weights_bias(p, x, dy, dw, nullptr);
      }, so));
  t.search(search_conv2d_backward_bias([](const Conv2dProblem& p, const float* dy, float* db) {
    std::vector<float> x(static_cast<std::size_t>(p.x.numel()), 0.0f);
    conv_backward_weights_bias(p, x.data(), dy, nullptr, db);
  }, so));
}

void linear_checks(Tally& t, const SearchOptions& so) {
  LinearProblem p{.x = {4, 20}, .w = {5, 20}, .bias = true};
  t.check(check_linear_forward(p, [&](const float* x, const float* w, const float* b, float* y) {
    ip_forward(p, x, w, b, y);
  }));
  p.bias = false;
  t.check(check_linear_backward_data(
      p, [&](const float* dy, const float* w, float* dx) { ip_backward_data(p, dy, w, dx); }));
  t.check(check_linear_backward_weights(p, [&](const float* x, const float* dy, float* dw) {
    ip_backward_weights_bias(p, x, dy, dw, nullptr);
  }));
  t.check(check_linear_backward_bias(p, [&](const float* dy, float* db) {
    std::vector<float> x(static_cast<std::size_t>(p.x.numel()), 0.0f);
    ip_backward_weights_bias(p, x.data(), dy, nullptr, db);
  }));
  t.search(search_linear_forward(ip_forward, so));
  t.search(search_linear_backward_data(ip_backward_data, so));
  t.search(search_linear_backward_weights(
      [](const LinearProblem& p, const float* x, const float* dy, float* dw) {
        ip_backward_weights_bias(p, x, dy, dw, nullptr);
      }, so));
  t.search(search_linear_backward_bias([](const LinearProblem& p, const float* dy, float* db) {
    std::vector<float> x(static_cast<std::size_t>(p.x.numel()), 0.0f);
    ip_backward_weights_bias(p, x.data(), dy, nullptr, db);
  }, so));
}

void pool_checks(bool max, Tally& t, const SearchOptions& so) {
  Pool2dProblem p{.x = {2, 3, 9, 8}, .params = {.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}}};
  auto fwd = [max](const Pool2dProblem& q, const float* x, float* y) { pool_forward(max, q, x, y); };
  if (max) {
    t.check(check_max_pool2d_forward(p, [&](const float* x, float* y) { fwd(p, x, y); }));
    t.check(check_max_pool2d_backward(p, [&](const float* x, const float* dy, float* dx) {
      pool_backward(true, p, x, dy, dx);
    }));
    t.search(search_max_pool2d_forward(fwd, so));
    t.search(search_max_pool2d_backward(
        [](const Pool2dProblem& q, const float* x, const float* dy, float* dx) {
          pool_backward(true, q, x, dy, dx);
        }, so));
  } else {
    t.check(check_avg_pool2d_forward(p, [&](const float* x, float* y) { fwd(p, x, y); }));
    t.check(check_avg_pool2d_backward(p, [&](const float* dy, float* dx) {
      pool_backward(false, p, nullptr, dy, dx);
    }));
    t.search(search_avg_pool2d_forward(fwd, so));
    t.search(search_avg_pool2d_backward([](const Pool2dProblem& q, const float* dy, float* dx) {
      pool_backward(false, q, nullptr, dy, dx);
    }, so));
  }
}

struct Eltwise {
  const char* name;
  A fwd, bwd;
  bool bwd_takes_dst;
};

void eltwise_checks(const Eltwise& e, Tally& t, const SearchOptions& so) {
  auto fwd = [e](const ActivationProblem& p, const float* x, float* y) {
    eltwise_forward(e.fwd, p.x, x, y);
  };
  auto bwd = [e](const ActivationProblem& p, const float* xy, const float* dy, float* dx) {
    eltwise_backward(e.bwd, e.bwd_takes_dst, p.x, xy, dy, dx);
  };
  for (const Shape& s : {Shape{4, 10}, Shape{2, 3, 4, 5}}) {
    const ActivationProblem p{s};
    auto f = [&](const float* x, float* y) { fwd(p, x, y); };
    auto b = [&](const float* xy, const float* dy, float* dx) { bwd(p, xy, dy, dx); };
    const std::string n = e.name;
    if (n == "relu") {
      t.check(check_relu_forward(p, f));
      t.check(check_relu_backward(p, b));
    } else if (n == "tanh") {
      t.check(check_tanh_forward(p, f));
      t.check(check_tanh_backward(p, b));
    } else {
      t.check(check_sigmoid_forward(p, f));
      t.check(check_sigmoid_backward(p, b));
    }
  }
  const std::string n = e.name;
  if (n == "relu") {
    t.search(search_relu_forward(fwd, so));
    t.search(search_relu_backward(bwd, so));
  } else if (n == "tanh") {
    t.search(search_tanh_forward(fwd, so));
    t.search(search_tanh_backward(bwd, so));
  } else {
    t.search(search_sigmoid_forward(fwd, so));
    t.search(search_sigmoid_backward(bwd, so));
  }
}

void softmax_checks(bool log, Tally& t, const SearchOptions& so) {
  using SF = dnnl::softmax_forward;
  using SB = dnnl::softmax_backward;
  using LF = dnnl::logsoftmax_forward;
  using LB = dnnl::logsoftmax_backward;
  auto fwd = [log](const ActivationProblem& p, const float* x, float* y) {
    if (log) softmax_like_forward<LF, LB>(true, p.x, x, y);
    else softmax_like_forward<SF, SB>(false, p.x, x, y);
  };
  auto bwd = [log](const ActivationProblem& p, const float* y, const float* dy, float* dx) {
    if (log) softmax_like_backward<LF, LB>(p.x, y, dy, dx);
    else softmax_like_backward<SF, SB>(p.x, y, dy, dx);
  };
  // softmax and log_softmax run over dim 1: the classes of (N,C), the channels of (N,C,H,W).
  for (const Shape& s : {Shape{4, 10}, Shape{2, 5, 3, 3}}) {
    const ActivationProblem p{s};
    auto f = [&](const float* x, float* y) { fwd(p, x, y); };
    auto b = [&](const float* y, const float* dy, float* dx) { bwd(p, y, dy, dx); };
    t.check(log ? check_log_softmax_forward(p, f) : check_softmax_forward(p, f));
    t.check(log ? check_log_softmax_backward(p, b) : check_softmax_backward(p, b));
  }
  if (log && g_bug.empty())
    // Found by this search (the fixed checks above pass): oneDNN 2.6.3's logsoftmax forward
    // is up to 2.2x outside the bound when a row has one or two classes -- for one class the
    // exact result is 0 (x - m - log(exp(0))) and oneDNN gives ~1.4e-6 = 24 ulp(1), so its
    // exp/log are not within the 2-ulp libm budget the bound allows (oracle/activation.hpp).
    t.known_deviation(search_log_softmax_forward(fwd, so),
                      "logsoftmax forward with 1 or 2 classes per row: its exp/log are less "
                      "accurate than the 2-ulp libm budget");
  else
    t.search(log ? search_log_softmax_forward(fwd, so) : search_softmax_forward(fwd, so));
  t.search(log ? search_log_softmax_backward(bwd, so) : search_softmax_backward(bwd, so));
}

const std::vector<std::string> kOps = {"conv2d", "linear", "max_pool2d", "avg_pool2d", "relu",
                                       "tanh", "sigmoid", "softmax", "log_softmax"};

void run_op(const std::string& op, Tally& t, const SearchOptions& so) {
  if (op == "conv2d") conv_checks(t, so);
  if (op == "linear") linear_checks(t, so);
  if (op == "max_pool2d") pool_checks(true, t, so);
  if (op == "avg_pool2d") pool_checks(false, t, so);
  if (op == "relu") eltwise_checks({"relu", A::eltwise_relu, A::eltwise_relu, false}, t, so);
  // The bugs: the x-taking backward algorithm handed y as its x (DNNL_ARG_SRC).
  if (op == "tanh")
    eltwise_checks({"tanh", A::eltwise_tanh_use_dst_for_bwd,
                    bug("tanh") ? A::eltwise_tanh : A::eltwise_tanh_use_dst_for_bwd,
                    !bug("tanh")},
                   t, so);
  if (op == "sigmoid")
    eltwise_checks({"sigmoid", A::eltwise_logistic_use_dst_for_bwd,
                    bug("sigmoid") ? A::eltwise_logistic : A::eltwise_logistic_use_dst_for_bwd,
                    !bug("sigmoid")},
                   t, so);
  if (op == "softmax") softmax_checks(false, t, so);
  if (op == "log_softmax") softmax_checks(true, t, so);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "good";
  SearchOptions so;
  so.cases = 50;  // per search; TAPEGRAD_SEARCH_CASES overrides (and TAPEGRAD_SEARCH_SEED)
  if (const char* c = std::getenv("TAPEGRAD_SEARCH_CASES")) so.cases = std::atoi(c);
  if (const char* c = std::getenv("TAPEGRAD_SEARCH_SEED")) so.seed = std::strtoull(c, nullptr, 10);
  try {
    if (mode == "good") {
      Tally t;
      for (const std::string& op : kOps) run_op(op, t, so);
      std::printf("onednn_consumer: oneDNN %d.%d.%d, %d checks and searches, %d failed, %d "
                  "known deviation%s\n",
                  dnnl::version()->major, dnnl::version()->minor, dnnl::version()->patch, t.run,
                  t.failed, t.known, t.known == 1 ? "" : "s");
      return t.failed == 0 ? 0 : 1;
    }
    if (mode.rfind("wrong-", 0) == 0) {
      g_bug = mode.substr(6);
      if (std::find(kOps.begin(), kOps.end(), g_bug) == kOps.end()) {
        std::fprintf(stderr, "onednn_consumer: unknown op in %s\n", mode.c_str());
        return 2;
      }
      Tally t;
      run_op(g_bug, t, so);
      std::printf("onednn_consumer: planted bug in %s: %d of %d checks and searches failed\n",
                  g_bug.c_str(), t.failed, t.run);
      return t.failed > 0 ? 1 : 3;
    }
  } catch (const dnnl::error& e) {  // outside a search: a check's callback threw
    std::fprintf(stderr, "onednn_consumer: oneDNN error: %s\n", e.what());
    return 4;
  }
  std::fprintf(stderr, "usage: onednn_consumer [good | wrong-<op>]\n");
  return 2;
}
