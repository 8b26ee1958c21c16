// A spec's network on the op tape, as hand-written layers and as the reference forward
// (net/network.hpp, net/sequential.hpp, net/reference.hpp), random problems (net/problem.hpp)
// and the parameter set the tape reads without copying (net/params.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "tapegrad/net/network.hpp"
#include "tapegrad/net/params.hpp"
#include "tapegrad/net/problem.hpp"
#include "tapegrad/net/reference.hpp"
#include "tapegrad/net/sequential.hpp"
#include "tapegrad/net/spec.hpp"

using namespace tapegrad;

TEST(Network, ThreeWaysComputeTheSameLoss) {
  // The hand-written layers, the op tape and the reference forward all run the same network:
  // their losses agree to a few roundings (all three use the same forward kernels today, so
  // they are in fact equal; the tolerance allows a fast kernel with another summation order:
  // gamma(K) * |L| with K = reduction_depth).
  const NetSpec spec = load_spec("lenet5");
  const NetValues<double> v = random_problem(spec, 2, 3);
  auto net = build_sequential(spec, v.params);
  const double l_hand = net.forward_loss(v.x, v.targets);
  const double l_ref = reference_loss(spec, v.x, v.params, v.targets);
  Tape<double> tape;
  std::vector<TapeTensor<double>> ps;
  for (const auto& p : v.params) ps.push_back(tape.leaf(p));
  const double l_tape = record_network(spec, tape.leaf(v.x), ps, v.targets).value()[0];
  const double k = static_cast<double>(spec.reduction_depth(2));
  const double tol = k * 0x1.0p-53 / (1 - k * 0x1.0p-53) * std::abs(l_ref);
  EXPECT_NEAR(l_hand, l_ref, tol);
  EXPECT_NEAR(l_tape, l_ref, tol);
}

TEST(Network, RandomProblemIsDeterministicFromTheSeed) {
  const NetSpec spec = load_spec("seed");
  const auto a = random_problem(spec, 2, 42), b = random_problem(spec, 2, 42),
             c = random_problem(spec, 2, 43);
  EXPECT_EQ(a.x.vec(), b.x.vec());
  EXPECT_NE(a.x.vec(), c.x.vec());
  // The first draw of mt19937_64 (seed 42) is fixed by the standard, so is x[0]:
  std::mt19937_64 rng(42);
  EXPECT_EQ(a.x[0], -1 + 2 * (static_cast<double>(rng() >> 11) * 0x1.0p-53));
}

TEST(ParamSet, NamesAreUniqueAndShapesChecked) {
  const NetSpec spec = load_spec("seed");
  ParamSet<double> ps = make_params<double>(
      spec, {Tensor<double>(Shape{1, 1, 3, 3}), Tensor<double>(Shape{1, 1}), Tensor<double>(Shape{1})});
  ASSERT_EQ(ps.size(), 3u);
  EXPECT_EQ(ps[1].name, "fc1.w");
  EXPECT_EQ(ps.find("fc1.b"), std::optional<std::size_t>(2));
  EXPECT_FALSE(ps.find("fc2.w"));
  EXPECT_EQ(ps.numel(), 11);
  EXPECT_EQ(ps[0].grad.shape(), (Shape{1, 1, 3, 3}));
  EXPECT_THROW(ps.add("fc1.w", Tensor<double>(Shape{1})), std::invalid_argument);
  EXPECT_THROW(make_params<double>(spec, {Tensor<double>(Shape{1, 1, 3, 3}),
                                          Tensor<double>(Shape{2, 1}), Tensor<double>(Shape{1})}),
               std::invalid_argument);
}

TEST(ParamSet, InitIsPyTorchsDefaultBoundAndDeterministic) {
  // Every element of a layer with fan-in F lies in [-1/sqrt(F), 1/sqrt(F)): conv1 of lenet5 has
  // F = 25 (bound 0.2), fc1 F = 400 (bound 0.05). The same seed gives the same bits.
  const NetSpec spec = load_spec("lenet5");
  Rng a(7), b(7);
  const ParamSet<float> pa = init_params<float>(spec, a), pb = init_params<float>(spec, b);
  for (std::size_t i = 0; i < pa.size(); ++i) {
    const double bound = 1 / std::sqrt(static_cast<double>(spec.params[i].fan_in));
    double largest = 0;
    for (index_t j = 0; j < pa[i].value.numel(); ++j) {
      largest = std::max(largest, std::abs(static_cast<double>(pa[i].value[j])));
      ASSERT_EQ(pa[i].value[j], pb[i].value[j]);
    }
    EXPECT_LE(largest, bound) << pa[i].name;
    EXPECT_GT(largest, 0.5 * bound) << pa[i].name;  // not all squeezed near zero
  }
}

TEST(Network, ParametersAreReadWithoutCopiesAndGradientsMovedIntoTheSet) {
  const NetSpec spec = load_spec("seed");
  const NetValues<double> v = random_problem(spec, 2, 5);
  ParamSet<double> ps = make_params(spec, v.params);
  Tape<double> tape;
  const auto handles = record_params(tape, ps);
  // The leaf IS the set's tensor: same address, nothing copied.
  for (std::size_t i = 0; i < ps.size(); ++i) EXPECT_EQ(&handles[i].value(), &ps[i].value);
  tape.backward(record_network(spec, tape.view(v.x, false), handles, v.targets));
  const Tensor<double> expect_fc1b = tape.grad(handles[2]);
  take_grads(tape, handles, ps);
  EXPECT_EQ(ps[2].grad.vec(), expect_fc1b.vec());
  EXPECT_NE(ps[2].grad[0], 0.0);
  // Moved, not copied: the tape's slot is empty now and reads as zeros.
  EXPECT_EQ(tape.grad(handles[2])[0], 0.0);
}

TEST(Network, ShardGradientsWithTheGlobalCountAddUpToTheWholeBatch) {
  // input 3 -> linear 2 -> mse, batch 4 split into two shards of 2. Small integers and
  // count 8 (= 4 samples x 2 outputs, a power of two) keep every product, sum and division
  // exact in double, so the sum of the shards' gradients must equal the whole batch's bit for
  // bit when each shard divides by the global count, and be twice it when a shard divides by
  // its own count (the bug this catches).
  const NetSpec spec = parse_spec("input 3\nlinear out=2\nloss mse\n");
  const Tensor<double> w(Shape{2, 3}, {1, -2, 0, 3, 1, -1});
  const Tensor<double> b(Shape{2}, {1, 0});
  const Tensor<double> x(Shape{4, 3}, {1, 2, 0, -1, 0, 2, 3, 1, 1, 0, -2, 1});
  const Tensor<double> t(Shape{4, 2}, {0, 1, 2, 0, -1, 3, 1, 1});
  auto grads = [&](index_t from, index_t to, std::optional<index_t> count) {
    const index_t n = to - from;
    Tensor<double> xs(Shape{n, 3}), ts(Shape{n, 2});
    for (index_t i = 0; i < n * 3; ++i) xs[i] = x[from * 3 + i];
    for (index_t i = 0; i < n * 2; ++i) ts[i] = t[from * 2 + i];
    ParamSet<double> ps = make_params<double>(spec, {w, b});
    Tape<double> tape;
    const auto h = record_params(tape, ps);
    const Targets<double> tg{{}, ts};
    tape.backward(record_network(spec, tape.view(xs, false), h, tg, count));
    take_grads(tape, h, ps);
    return ps;
  };
  const ParamSet<double> whole = grads(0, 4, std::nullopt);
  EXPECT_EQ(spec.loss_count(4), 8);
  for (const std::optional<index_t> count : {std::optional<index_t>(8), std::optional<index_t>()}) {
    const ParamSet<double> s0 = grads(0, 2, count), s1 = grads(2, 4, count);
    const double factor = count ? 1.0 : 2.0;
    for (std::size_t p = 0; p < whole.size(); ++p)
      for (index_t i = 0; i < whole[p].grad.numel(); ++i)
        EXPECT_EQ(s0[p].grad[i] + s1[p].grad[i], factor * whole[p].grad[i]) << p << " " << i;
  }
}
