// oracle::search_<op> as a user calls it from GoogleTest: tapegrad's own kernels (the fast
// kernels, through raw buffers) must pass every op's search; kernels with planted bugs must
// fail, shrink to the smallest case the bug shows in (derived per bug below), print one
// descriptor line, replay from it, and survive a throwing callback. Case counts come from
// TAPEGRAD_PROPERTY_CASES (the ctest environment), a quarter of it per op in the all-ops sweep.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tapegrad/tapegrad.hpp"

namespace tapegrad {
namespace {

using namespace oracle;

int cases(int divisor = 1) {
  const char* env = std::getenv("TAPEGRAD_PROPERTY_CASES");
  const int n = env ? std::atoi(env) : 100;
  return std::max(1, n / divisor);
}

template <class T>
Tensor<T> in(const Shape& s, const T* p) {
  return Tensor<T>(s, std::vector<T>(p, p + s.numel()));
}
template <class T>
void out(const Tensor<T>& t, T* p) {
  for (index_t i = 0; i < t.numel(); ++i) p[i] = t[i];
}
Conv2dGeom geom(const Conv2dProblem& p) {
  const Shape b{p.w[0]};
  return make_conv2d_geom(p.x, p.w, p.bias ? &b : nullptr, p.params);
}
LinearGeom geom(const LinearProblem& p) {
  const Shape b{p.w[0]};
  return make_linear_geom(p.x, p.w, p.bias ? &b : nullptr);
}
Pool2dGeom geom(const Pool2dProblem& p) { return make_pool2d_geom(p.x, p.params, "test"); }
std::vector<index_t> targets(const CrossEntropyProblem& p, const std::int64_t* t) {
  return std::vector<index_t>(t, t + p.n);
}

// tapegrad's kernels as raw-buffer user kernels (NCHW, overwrite).
template <class T>
void conv_fwd(const Conv2dProblem& p, const T* x, const T* w, const T* b, T* y) {
  const Conv2dGeom g = geom(p);
  const Tensor<T> bt = b ? in(g.b_shape(), b) : Tensor<T>();
  out(kernels::conv2d_forward(g, in(g.x_shape(), x), in(g.w_shape(), w), b ? &bt : nullptr), y);
}
template <class T>
void conv_bwd_data(const Conv2dProblem& p, const T* dy, const T* w, T* dx) {
  const Conv2dGeom g = geom(p);
  out(kernels::conv2d_backward_data(g, in(g.y_shape(), dy), in(g.w_shape(), w)), dx);
}

template <class T>
void expect_every_op_passes(int n) {
  SearchOptions o;
  o.cases = n;
  auto ok = [](const SearchResult& r) {
    std::ostringstream os;
    r.print(os);
    EXPECT_TRUE(r.passed()) << os.str();
  };
  ok(search_conv2d_forward<T>(conv_fwd<T>, o));
  ok(search_conv2d_backward_data<T>(conv_bwd_data<T>, o));
  ok(search_conv2d_backward_weights<T>(
      [](const Conv2dProblem& p, const T* x, const T* dy, T* dw) {
        const Conv2dGeom g = geom(p);
        out(kernels::conv2d_backward_weights(g, in(g.x_shape(), x), in(g.y_shape(), dy)), dw);
      }, o));
  ok(search_conv2d_backward_bias<T>([](const Conv2dProblem& p, const T* dy, T* db) {
    const Conv2dGeom g = geom(p);
    out(kernels::conv2d_backward_bias(g, in(g.y_shape(), dy)), db);
  }, o));
  ok(search_linear_forward<T>([](const LinearProblem& p, const T* x, const T* w, const T* b, T* y) {
    const LinearGeom g = geom(p);
    const Tensor<T> bt = b ? in(g.b_shape(), b) : Tensor<T>();
    out(kernels::linear_forward(g, in(g.x_shape(), x), in(g.w_shape(), w), b ? &bt : nullptr), y);
  }, o));
  ok(search_linear_backward_data<T>([](const LinearProblem& p, const T* dy, const T* w, T* dx) {
    const LinearGeom g = geom(p);
    out(kernels::linear_backward_data(g, in(g.y_shape(), dy), in(g.w_shape(), w)), dx);
  }, o));
  ok(search_linear_backward_weights<T>([](const LinearProblem& p, const T* x, const T* dy, T* dw) {
    const LinearGeom g = geom(p);
    out(kernels::linear_backward_weights(g, in(g.x_shape(), x), in(g.y_shape(), dy)), dw);
  }, o));
  ok(search_linear_backward_bias<T>([](const LinearProblem& p, const T* dy, T* db) {
    const LinearGeom g = geom(p);
    out(kernels::linear_backward_bias(g, in(g.y_shape(), dy)), db);
  }, o));
  ok(search_max_pool2d_forward<T>([](const Pool2dProblem& p, const T* x, T* y) {
    const Pool2dGeom g = geom(p);
    out(kernels::max_pool2d_forward(g, in(g.x_shape(), x)), y);
  }, o));
  ok(search_max_pool2d_backward<T>([](const Pool2dProblem& p, const T* x, const T* dy, T* dx) {
    const Pool2dGeom g = geom(p);
    out(kernels::max_pool2d_backward(g, in(g.x_shape(), x), in(g.y_shape(), dy)), dx);
  }, o));
  ok(search_avg_pool2d_forward<T>([](const Pool2dProblem& p, const T* x, T* y) {
    const Pool2dGeom g = geom(p);
    out(kernels::avg_pool2d_forward(g, in(g.x_shape(), x)), y);
  }, o));
  ok(search_avg_pool2d_backward<T>([](const Pool2dProblem& p, const T* dy, T* dx) {
    const Pool2dGeom g = geom(p);
    out(kernels::avg_pool2d_backward(g, in(g.y_shape(), dy)), dx);
  }, o));
#define TAPEGRAD_TEST_ACTIVATION(name)                                                        \
  ok(search_##name##_forward<T>([](const ActivationProblem& p, const T* x, T* y) {           \
    out(kernels::name##_forward(in(p.x, x)), y);                                             \
  }, o));                                                                                    \
  ok(search_##name##_backward<T>([](const ActivationProblem& p, const T* xy, const T* dy,    \
                                    T* dx) {                                                 \
    out(kernels::name##_backward(in(p.x, xy), in(p.x, dy)), dx);                             \
  }, o));
  TAPEGRAD_TEST_ACTIVATION(relu)
  TAPEGRAD_TEST_ACTIVATION(sigmoid)
  TAPEGRAD_TEST_ACTIVATION(tanh)
  TAPEGRAD_TEST_ACTIVATION(softmax)
  TAPEGRAD_TEST_ACTIVATION(log_softmax)
#undef TAPEGRAD_TEST_ACTIVATION
  ok(search_mse_loss_forward<T>([](const MseLossProblem& p, const T* x, const T* t, T* loss) {
    out(kernels::mse_loss_forward(in(p.x, x), in(p.x, t), p.x.numel()), loss);
  }, o));
  ok(search_mse_loss_backward<T>(
      [](const MseLossProblem& p, const T* x, const T* t, const T* dl, T* dx) {
        out(kernels::mse_loss_backward(in(p.x, x), in(p.x, t), *dl, p.x.numel()), dx);
      }, o));
  ok(search_cross_entropy_forward<T>(
      [](const CrossEntropyProblem& p, const T* x, const std::int64_t* t, T* loss) {
        out(kernels::cross_entropy_forward(in(Shape{p.n, p.c}, x), targets(p, t), p.n), loss);
      }, o));
  ok(search_cross_entropy_backward<T>(
      [](const CrossEntropyProblem& p, const T* x, const std::int64_t* t, const T* dl, T* dx) {
        out(kernels::cross_entropy_backward(in(Shape{p.n, p.c}, x), targets(p, t), *dl, p.n),
            dx);
      }, o));
}

TEST(OracleSearch, TapegradKernelsPassEverySearchInFloat) { expect_every_op_passes<float>(cases(4)); }
TEST(OracleSearch, TapegradKernelsPassEverySearchInDouble) {
  expect_every_op_passes<double>(cases(8));
}

std::string printed(const SearchResult& r) {
  std::ostringstream os;
  r.print(os);
  return os.str();
}

// conv2d forward that indexes with dilation 1 (the bug of the user): wrong exactly
// when some dilation > 1 with a kernel of 2 or more taps that way. The smallest such case:
// batch 1, one group of one channel in and out, a 2-tap kernel one way with dilation 2 (so the
// input is 3 = the dilated kernel), 1 tap the other way, stride 1, no padding, no bias.
TEST(OracleSearch, DilationBugShrinksToTheSmallestDilatedCase) {
  const auto bug = [](const Conv2dProblem& p, const float* x, const float* w, const float* b,
                      float* y) {
    Conv2dProblem q = p;
    q.params.dilation = {1, 1};
    q.x = Shape{p.x[0], p.x[1], p.x[2] + 8, p.x[3] + 8};  // room for the undilated window
    const Conv2dGeom g = geom(p), gq = geom(q);
    std::vector<float> xb(static_cast<std::size_t>(gq.x_shape().numel()), 0.0f);
    for (index_t a = 0; a < g.n * g.c; ++a)
      for (index_t i = 0; i < g.h; ++i)
        for (index_t j = 0; j < g.w; ++j)
          xb[static_cast<std::size_t>((a * gq.h + i) * gq.w + j)] = x[(a * g.h + i) * g.w + j];
    std::vector<float> yq(static_cast<std::size_t>(gq.y_shape().numel()));
    conv_fwd<float>(q, xb.data(), w, b, yq.data());
    for (index_t a = 0; a < g.n * g.k; ++a)
      for (index_t i = 0; i < g.p; ++i)
        for (index_t j = 0; j < g.q; ++j)
          y[(a * g.p + i) * g.q + j] = yq[static_cast<std::size_t>((a * gq.p + i) * gq.q + j)];
  };
  SearchOptions o;
  o.cases = 200;
  const SearchResult r = search_conv2d_forward(bug, o);
  ASSERT_FALSE(r.passed());
  const SearchFailure& f = *r.failure;
  const std::string geo = f.descriptor.geometry;
  EXPECT_TRUE(geo == "mb1ic1ih3iw1oc1kh2kw1sh1sw1ph0pw0dh2dw1g1b0" ||
              geo == "mb1ic1ih1iw3oc1kh1kw2sh1sw1ph0pw0dh1dw2g1b0")
      << printed(r);
  EXPECT_EQ(f.descriptor.values, CaseValues::exact) << printed(r);  // the first value kind
  EXPECT_GT(f.shrinks, 0);
  // One descriptor line, then the replay hint, then the check's report ending in FAIL.
  const std::string text = printed(r);
  EXPECT_NE(text.find("\n" + f.descriptor.str() + "\n"), std::string::npos) << text;
  EXPECT_NE(text.find("oracle: conv2d_forward"), std::string::npos) << text;
  EXPECT_EQ(text.substr(text.size() - 5), "FAIL\n");

  // Replaying the line runs exactly that case: it fails again with the same report.
  SearchOptions rep;
  rep.replay = f.descriptor.str();
  const SearchResult again = search_conv2d_forward(bug, rep);
  ASSERT_FALSE(again.passed());
  EXPECT_EQ(again.cases, 1);
  EXPECT_EQ(again.failure->descriptor.str(), f.descriptor.str());
  EXPECT_EQ(again.failure->report.worst_ratio_index, f.report.worst_ratio_index);
  EXPECT_EQ(again.failure->report.failing, f.report.failing);
  // The correct kernel passes the replayed case.
  EXPECT_TRUE(search_conv2d_forward(conv_fwd<float>, rep).passed());
  // The same seed gives the same search.
  EXPECT_EQ(search_conv2d_forward(bug, o).failure->descriptor.str(), f.descriptor.str());
}

TEST(OracleSearch, ThrowingCallbackIsAFailingCaseNotACrash) {
  // Throws for groups > 1 only: the smallest such case has groups 2 (else as small as can be).
  const auto picky = [](const Conv2dProblem& p, const float* dy, const float* w, float* dx) {
    if (p.params.groups > 1) throw std::runtime_error("groups are not implemented");
    conv_bwd_data<float>(p, dy, w, dx);
  };
  SearchOptions o;
  o.cases = cases();
  const SearchResult r = search_conv2d_backward_data(picky, o);
  ASSERT_FALSE(r.passed());
  EXPECT_EQ(r.failure->descriptor.geometry, "mb1ic2ih1iw1oc2kh1kw1sh1sw1ph0pw0dh1dw1g2b0")
      << printed(r);
  EXPECT_NE(r.failure->exception.find("groups are not implemented"), std::string::npos);
  EXPECT_NE(printed(r).find("the kernel threw: groups are not implemented"), std::string::npos)
      << printed(r);
  // Something that is not a std::exception is caught too.
  const SearchResult odd = search_relu_forward(
      [](const ActivationProblem&, const float*, float*) { throw 42; }, o);
  ASSERT_FALSE(odd.passed());
  EXPECT_NE(odd.failure->exception.find("not a std::exception"), std::string::npos);
}

TEST(OracleSearch, ExactInputsCatchATinyIndexingBugTheToleranceMisses) {
  // linear forward that adds 2^-30 x[n, 0] * w[o, in-1] (a stray product of the wrong pair,
  // scaled far below the gamma(K) * S tolerance of uniform inputs, ~ K 2^-24). With exact
  // inputs the check is equality and the integer product's stray part shows; shrinking keeps
  // values=exact (the first value kind) and needs in >= 1, out 1, batch 1.
  const auto bug = [](const LinearProblem& p, const float* x, const float* w, const float* b,
                      float* y) {
    const LinearGeom g = geom(p);
    const Tensor<float> bt = b ? in(g.b_shape(), b) : Tensor<float>();
    out(kernels::linear_forward(g, in(g.x_shape(), x), in(g.w_shape(), w), b ? &bt : nullptr), y);
    for (index_t a = 0; a < g.n; ++a)
      for (index_t o = 0; o < g.out; ++o)
        y[a * g.out + o] += std::ldexp(1.0f, -30) * x[a * g.in] * w[o * g.in + g.in - 1] *
                            std::fabs(y[a * g.out + o]);
  };
  SearchOptions uniform_only;
  uniform_only.values = {CaseValues::uniform};
  uniform_only.cases = cases(2);
  EXPECT_TRUE(search_linear_forward(bug, uniform_only).passed());
  SearchOptions o;
  o.cases = cases();
  const SearchResult r = search_linear_forward(bug, o);
  ASSERT_FALSE(r.passed());
  EXPECT_EQ(r.failure->descriptor.values, CaseValues::exact) << printed(r);
  EXPECT_EQ(r.failure->descriptor.geometry.substr(0, 3), "mb1") << printed(r);
}

TEST(OracleSearch, AccumulatingKernelPassesWhenTheSearchDeclaresAccumulate) {
  const auto acc = [](const Conv2dProblem& p, const double* dy, const double* w, double* dx) {
    std::vector<double> g(static_cast<std::size_t>(p.x.numel()));
    conv_bwd_data<double>(p, dy, w, g.data());
    for (std::size_t i = 0; i < g.size(); ++i) dx[i] += g[i];
  };
  SearchOptions o;
  o.cases = cases(4);
  o.grad_mode = GradMode::accumulate;
  const SearchResult good = search_conv2d_backward_data(acc, o);
  EXPECT_TRUE(good.passed()) << printed(good);
  o.grad_mode = GradMode::overwrite;
  const SearchResult r = search_conv2d_backward_data(acc, o);
  ASSERT_FALSE(r.passed());
  EXPECT_EQ(r.failure->descriptor.geometry, "mb1ic1ih1iw1oc1kh1kw1sh1sw1ph0pw0dh1dw1g1b0")
      << printed(r);
  EXPECT_FALSE(r.failure->report.accumulated.empty());
}

TEST(OracleSearch, BatchFileRunsEveryLineAndCountsTheFailures) {
  const std::string path = std::string(TAPEGRAD_BINARY_DIR) + "/oracle_search_test_batch.txt";
  {
    std::ofstream f(path);
    f << "# conv2d forward cases\n"
      << "conv2d_forward mb2ic4ih9iw8oc6kh3kw2sh2sw1ph2pw1dh2dw3g2b1 values=exact seed=3\n"
      << "\n"
      << "mb1ic3ih5oc3kh3ph1g3  # depthwise, defaults for the rest\n"
      << "mb1ic1ih4oc2kh1 values=wide seed=9\n";
  }
  SearchOptions o;
  o.batch_file = path;
  const SearchResult ok = search_conv2d_forward(conv_fwd<float>, o);
  EXPECT_TRUE(ok.passed()) << printed(ok);
  EXPECT_EQ(ok.cases, 3);
  // A kernel wrong only with padding: the two padded lines fail, the first is reported.
  const auto nopad = [](const Conv2dProblem& p, const float* x, const float* w, const float* b,
                        float* y) {
    conv_fwd<float>(p, x, w, b, y);
    if (p.params.pad[0] || p.params.pad[1]) y[0] += 1.0f;
  };
  const SearchResult bad = search_conv2d_forward(nopad, o);
  ASSERT_FALSE(bad.passed());
  EXPECT_EQ(bad.failed_cases, 2);
  EXPECT_EQ(bad.failure->descriptor.geometry, "mb2ic4ih9iw8oc6kh3kw2sh2sw1ph2pw1dh2dw3g2b1");
  EXPECT_NE(printed(bad).find("2 of 3 cases fail; the first:"), std::string::npos)
      << printed(bad);
  // A line for another op, or a bad geometry, is an error naming the line.
  {
    std::ofstream f(path);
    f << "mb1ic1ih4oc2kh1\nlinear_forward mb1ic2oc3\n";
  }
  try {
    (void)search_conv2d_forward(conv_fwd<float>, o);
    ADD_FAILURE() << "no error for a line of another op";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  {
    std::ofstream f(path);
    f << "mb1ic3ih4oc2kh1g2\n";
  }
  EXPECT_THROW((void)search_conv2d_forward(conv_fwd<float>, o), std::invalid_argument);
  std::remove(path.c_str());
  o.batch_file = path;
  EXPECT_THROW((void)search_conv2d_forward(conv_fwd<float>, o), std::invalid_argument);
}

TEST(OracleSearch, DescriptorsRoundTrip) {
  const std::string conv = "mb2ic4ih9iw8oc6kh3kw2sh2sw1ph2pw1dh2dw3g2b1";
  EXPECT_EQ(geometry_of(conv2d_problem(conv)), conv);
  EXPECT_EQ(geometry_of(conv2d_problem("ic3ih5oc2kh3")),
            "mb1ic3ih5iw5oc2kh3kw3sh1sw1ph0pw0dh1dw1g1b0");
  EXPECT_EQ(geometry_of(pool2d_problem("mb1ic2ih7kh3")), "mb1ic2ih7iw7kh3kw3sh3sw3ph0pw0");
  EXPECT_EQ(geometry_of(linear_problem("mb4ic20oc5b1")), "mb4ic20oc5b1");
  EXPECT_EQ(geometry_of(shape_problem("2x3x4")), "2x3x4");
  const CaseDescriptor d = parse_descriptor("  softmax_forward 4x10 values=ties seed=12 ");
  EXPECT_EQ(d.op, "softmax_forward");
  EXPECT_EQ(d.geometry, "4x10");
  EXPECT_EQ(d.values, CaseValues::ties);
  EXPECT_EQ(d.seed, 12u);
  EXPECT_EQ(parse_descriptor(d.str()).str(), d.str());
  EXPECT_THROW(parse_descriptor("mb1ic2 values=odd"), std::invalid_argument);
  EXPECT_THROW(conv2d_problem("mb1ic2ih3oc1kh2zz3"), std::invalid_argument);
  EXPECT_THROW(conv2d_problem("mb1ih3oc1kh2"), std::invalid_argument);  // ic missing
  EXPECT_THROW(shape_problem("2x0"), std::invalid_argument);
}

TEST(OracleSearch, CaseMixCoversTheAdvertisedCorners) {
  SearchOptions o;
  o.cases = std::max(cases(), 100);
  const SearchResult r = search_conv2d_forward(conv_fwd<float>, o);
  ASSERT_TRUE(r.passed()) << printed(r);
  std::map<std::string, int> mix(r.mix.begin(), r.mix.end());
  for (const char* tag : {"values exact", "values uniform", "values ties", "values wide",
                          "groups > 1", "stride > 1", "padding", "dilation > 1", "batch 1",
                          "one channel", "kernel = padded input", "bias"})
    EXPECT_GT(mix[tag], 0) << tag << "\n" << printed(r);
  EXPECT_NE(printed(r).find("  case mix        "), std::string::npos);
}

}  // namespace
}  // namespace tapegrad
