// Optimizers (train/optimizer.hpp) against values worked by hand.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "tapegrad/net/param_ranges.hpp"
#include "tapegrad/train/optimizer.hpp"

using namespace tapegrad;
using train::OptimConfig;
using train::Optimizer;

namespace {
ParamSet<double> one_param(double w) {
  ParamSet<double> ps;
  ps.add("w", Tensor<double>(Shape{1}, {w}));
  return ps;
}
}  // namespace

TEST(Sgd, MomentumAndWeightDecayFollowPyTorchsUpdate) {
  // lr 0.5, momentum 0.5, weight decay 0.25 (dyadic, so every step below is exact):
  //   step 1: w = 1, g = 2:  d = 2 + 0.25*1 = 2.25;  buf = d = 2.25;  w = 1 - 0.5*2.25 = -0.125
  //   step 2: g = 1:  d = 1 + 0.25*(-0.125) = 0.96875;  buf = 0.5*2.25 + 0.96875 = 2.09375;
  //           w = -0.125 - 0.5*2.09375 = -1.171875
  ParamSet<double> ps = one_param(1);
  Optimizer<double> opt(OptimConfig{"sgd", 0.5, 0.5, 0.25}, ps);
  ps[0].grad[0] = 2;
  opt.step(ps);
  EXPECT_EQ(ps[0].value[0], -0.125);
  ps[0].grad[0] = 1;
  opt.step(ps);
  EXPECT_EQ(ps[0].value[0], -1.171875);
  ASSERT_EQ(opt.state().size(), 1u);
  EXPECT_EQ(opt.state()[0].name, "sgd.momentum.w");
  EXPECT_EQ((*opt.state()[0].tensor)[0], 2.09375);
  EXPECT_EQ(opt.steps(), 2);
}

TEST(Sgd, PlainStepIsLrTimesGradient) {
  // No momentum, no decay: w = 3 - 0.25 * 4 = 2, and no state to save.
  ParamSet<double> ps = one_param(3);
  Optimizer<double> opt(OptimConfig{"sgd", 0.25}, ps);
  ps[0].grad[0] = 4;
  opt.step(ps);
  EXPECT_EQ(ps[0].value[0], 2.0);
  EXPECT_TRUE(opt.state().empty());
}

// Cosine over T = 4 steps of lr 0.5, by hand: step t uses 0.5 (1 + cos(pi (t-1) / 4)) / 2:
//   t = 1: 0.5;  t = 2: 0.25 (1 + sqrt(2)/2) = 0.4267766952966369;  t = 3: 0.25;
//   t = 4: 0.25 (1 - sqrt(2)/2) = 0.0732233047033631;  t = 5 and on: 0 (past T).
// With gradient 1 and no momentum each step moves w by exactly that rate (w = 0 + ..., the
// sums are single roundings of exactly representable rates or within one ulp of them).
TEST(Sgd, CosineScheduleFollowsTheClosedFormStepByStep) {
  OptimConfig cfg{"sgd", 0.5};
  cfg.schedule = "cosine";
  cfg.schedule_steps = 4;
  const double want[] = {0.5, 0.4267766952966369, 0.25, 0.0732233047033631, 0, 0};
  for (int t = 1; t <= 6; ++t) EXPECT_NEAR(cfg.lr_at(t), want[t - 1], 1e-16) << "t = " << t;
  ParamSet<double> ps = one_param(0);
  Optimizer<double> opt(cfg, ps);
  double w = 0;
  for (int t = 1; t <= 6; ++t) {
    ps[0].grad[0] = 1;
    opt.step(ps);
    w -= cfg.lr_at(t);
    EXPECT_EQ(ps[0].value[0], w) << "after step " << t;
    EXPECT_EQ(opt.lr(), cfg.lr_at(t));
  }
  // A constant schedule ignores its length; a cosine without one is refused.
  const OptimConfig constant{"sgd", 0.5};
  EXPECT_EQ(constant.lr_at(1000), 0.5);
  cfg.schedule_steps = 0;
  EXPECT_THROW(Optimizer<double>(cfg, ps), std::invalid_argument);
  cfg.schedule = "linear";
  EXPECT_THROW(cfg.validate(), std::invalid_argument);
}

TEST(Adam, FirstStepMovesEveryWeightByTheLearningRate) {
  // Step 1: m = (1-b1) g, v = (1-b2) g^2, so m / (1 - b1) = g and sqrt(v / (1 - b2)) = |g|:
  // w moves by lr * g / (|g| + eps) = lr * sign(g) up to eps/|g| (1e-8 relative here) and
  // rounding (a few ulps of lr), whatever the gradient's magnitude.
  ParamSet<double> ps;
  ps.add("w", Tensor<double>(Shape{3}, {1.0, -2.0, 0.5}));
  Optimizer<double> opt(OptimConfig{"adam", 0.01}, ps);
  ps[0].grad = Tensor<double>(Shape{3}, {3.0, -1e-3, 250.0});
  opt.step(ps);
  const double expect[3] = {1.0 - 0.01, -2.0 + 0.01, 0.5 - 0.01};
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(ps[0].value[i], expect[i], 0.01 * (1e-8 / 1e-3 + 1e-14)) << i;
  // Step 2 with the same gradient 3 on w[0]: m = 0.9*0.3 + 0.1*3 = 0.57, v = 0.999*0.009 + 0.001*9
  // = 0.017991; bias corrections 0.19 and 0.001999: m^ = 3, v^ = 9, so again exactly lr.
  ps[0].grad = Tensor<double>(Shape{3}, {3.0, -1e-3, 250.0});
  opt.step(ps);
  // eps shortens each step by lr * eps / (3 + eps) ~ 3.3e-11; two steps, plus rounding:
  EXPECT_NEAR(ps[0].value[0], 1.0 - 0.02, 1e-10);
  ASSERT_EQ(opt.state().size(), 2u);
  EXPECT_EQ(opt.state()[0].name, "adam.m.w");
  EXPECT_NEAR((*opt.state()[0].tensor)[0], 0.57, 1e-15);
  // 1 - 0.999 in double is 0.001 (1 + 8.9e-16), as in PyTorch (Python computes it in double):
  // v carries that relative error, about 1.6e-17 here; allowed 2e-15 relative.
  EXPECT_NEAR((*opt.state()[1].tensor)[0], 0.017991, 2e-15 * 0.017991);
}

TEST(Optimizer, BadHyperParametersAreRefused) {
  ParamSet<double> ps = one_param(1);
  EXPECT_THROW(Optimizer<double>(OptimConfig{"sgd", 0}, ps), std::invalid_argument);
  EXPECT_THROW(Optimizer<double>(OptimConfig{"sgd", 0.1, 1.0}, ps), std::invalid_argument);
  EXPECT_THROW(Optimizer<double>(OptimConfig{"sgd", 0.1, 0, -1}, ps), std::invalid_argument);
  EXPECT_THROW(Optimizer<double>(OptimConfig{"rmsprop", 0.1}, ps), std::invalid_argument);
  EXPECT_THROW(Optimizer<double>(OptimConfig{"adam", 0.1, 0.9}, ps), std::invalid_argument);
  EXPECT_THROW(Optimizer<double>(OptimConfig{"sgd", NAN}, ps), std::invalid_argument);
}

// The one parallel loop over a parameter set (net/param_ranges.hpp), which the optimizer's
// update and the combination's sum run on: every element of every tensor exactly once, each
// piece inside one tensor, each thread's pieces in tensor order, at any number of threads.
TEST(ParamRanges, CoverEveryElementOnceAtAnyThreadCount) {
  const std::vector<index_t> sizes{6, 0, 150, 48000, 1, 10080, 0};  // 58,237: over the threshold
  const int saved = omp_get_max_threads();
  for (int threads = 1; threads <= 4; ++threads) {
    omp_set_num_threads(threads);
    std::vector<std::vector<int>> seen;
    for (const index_t n : sizes) seen.emplace_back(static_cast<std::size_t>(n), 0);
    std::vector<std::vector<std::size_t>> order(8);  // tensor of each piece, per thread
    std::mutex mu;
    for_each_param_range(sizes, [&](std::size_t i, index_t b, index_t e) {
      const std::lock_guard<std::mutex> lock(mu);
      ASSERT_LT(i, sizes.size());
      ASSERT_TRUE(0 <= b && b < e && e <= sizes[i]) << i << " [" << b << ", " << e << ")";
      for (index_t j = b; j < e; ++j) ++seen[i][static_cast<std::size_t>(j)];
      order[static_cast<std::size_t>(omp_get_thread_num())].push_back(i);
    });
    for (std::size_t i = 0; i < sizes.size(); ++i)
      for (index_t j = 0; j < sizes[i]; ++j)
        ASSERT_EQ(seen[i][static_cast<std::size_t>(j)], 1)
            << threads << " threads: tensor " << i << " element " << j;
    std::size_t busy = 0;
    for (const auto& o : order) {
      busy += !o.empty();
      for (std::size_t k = 1; k < o.size(); ++k) EXPECT_LT(o[k - 1], o[k]) << threads << " threads";
    }
    EXPECT_EQ(busy, static_cast<std::size_t>(threads));  // the set is large enough to share
  }
  // Under 16,384 elements: the calling thread, one piece per non-empty tensor.
  omp_set_num_threads(4);
  std::vector<std::tuple<std::size_t, index_t, index_t>> pieces;
  for_each_param_range(std::vector<index_t>{3, 0, 5}, [&](std::size_t i, index_t b, index_t e) {
    EXPECT_EQ(omp_get_num_threads(), 1);
    pieces.emplace_back(i, b, e);
  });
  using P = std::tuple<std::size_t, index_t, index_t>;
  EXPECT_EQ(pieces, (std::vector<P>{P{0, 0, 3}, P{2, 0, 5}}));
  omp_set_num_threads(saved);
}

// A set large enough for the parallel loop, updated by sgd with momentum and weight decay and
// by adam at 1 and 3 threads: the same bits, and every element moved by the formula in
// optimizer.hpp evaluated here element by element in the same order (scalar code), so no
// element is skipped or updated twice and the vectorized loops round as the scalar ones do.
TEST(Optimizer, WholeSetUpdateIsTheSameBitsAtAnyThreadCount) {
  auto make = [] {
    ParamSet<float> ps;
    Rng rng(7);
    ps.add("a.w", uniform_tensor<float>(Shape{120, 200}, rng, -1, 1));
    ps.add("a.b", uniform_tensor<float>(Shape{7}, rng, -1, 1));
    ps.add("b.w", uniform_tensor<float>(Shape{33, 101}, rng, -1, 1));
    for (auto& p : ps) p.grad = uniform_tensor<float>(p.value.shape(), rng, -1, 1);
    return ps;
  };
  const int saved = omp_get_max_threads();
  for (const char* name : {"sgd", "adam"}) {
    std::vector<ParamSet<float>> after;
    for (int threads : {1, 3}) {
      omp_set_num_threads(threads);
      ParamSet<float> ps = make();
      OptimConfig cfg{name, 0.125, std::string(name) == "sgd" ? 0.5 : 0.0, 0.25};
      Optimizer<float> opt(cfg, ps);
      opt.step(ps);
      opt.step(ps);  // the momentum / moments of step 1 feed step 2
      after.push_back(std::move(ps));
    }
    const ParamSet<float> start = make();
    for (std::size_t i = 0; i < start.size(); ++i)
      for (index_t j = 0; j < start[i].value.numel(); ++j) {
        ASSERT_EQ(after[0][i].value[j], after[1][i].value[j]) << name << " " << start[i].name << " " << j;
        const float g = start[i].grad[j], w0 = start[i].value[j];
        const float lr = 0.125f, wd = 0.25f;
        float w = w0;
        if (std::string(name) == "sgd") {
          // two steps with the same gradient g: d1 = g + wd w0, buf = d1, w1 = w0 - lr buf;
          // d2 = g + wd w1, buf = mom buf + d2, w2 = w1 - lr buf (float, in this order)
          const float mom = 0.5f;
          float d = g + wd * w0, buf = d;
          w = w0 - lr * buf;
          d = g + wd * w;
          buf = mom * buf + d;
          w = w - lr * buf;
        } else {
          // adam, PyTorch's update as optimizer.hpp states it, steps t = 1, 2 (the bias
          // corrections in double, rounded once to float):
          //   d = g + wd w;  m = b1 m + (1 - b1) d;  v = b2 v + (1 - b2) d^2;
          //   w = w - (lr / (1 - b1^t)) * (m / (sqrt(v) / sqrt(1 - b2^t) + eps))
          const float b1 = 0.9f, b2 = 0.999f, one_b1 = float(1 - 0.9), one_b2 = float(1 - 0.999);
          float m = 0, v = 0;
          for (int t = 1; t <= 2; ++t) {
            const float step = float(0.125 / (1 - std::pow(0.9, t)));
            const float bc2_sqrt = float(std::sqrt(1 - std::pow(0.999, t)));
            const float d = g + wd * w;
            m = m * b1 + one_b1 * d;
            v = v * b2 + one_b2 * (d * d);
            const float denom = std::sqrt(v) / bc2_sqrt + 1e-8f;
            w = w - step * (m / denom);
          }
        }
        ASSERT_EQ(after[0][i].value[j], w) << start[i].name << " " << j;
      }
  }
  omp_set_num_threads(saved);
}
