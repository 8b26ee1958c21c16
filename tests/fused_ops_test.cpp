// Fused ops: a conv2d or linear with its activation recorded as one op (ops.hpp) against the
// same two ops recorded apart, and networks recorded fused against unfused.
//
// The expected result is exact equality, derived rather than measured: the fused forward
// applies the activation's own element code (fast::activate, the code of relu_forward,
// sigmoid_forward and tanh_forward) to the same products, and an element-wise op gives the
// same bits wherever and in whichever order its elements are computed; the fused VJP is the
// activation's VJP from the output followed by the plain op's VJPs, the same kernels on the
// same tensors. relu's from the output, dy * [y > 0], equals dy * [z > 0] since y = relu(z) is
// positive exactly where z is (a NaN z: y = 0 and [NaN > 0] false, 0 both ways). So every
// output and gradient must be the same bits; any difference is a bug, not rounding.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fast_test_support.hpp"
#include "tapegrad/kernels/conv2d_fast.hpp"
#include "tapegrad/net/network.hpp"
#include "tapegrad/net/problem.hpp"
#include "tapegrad/ops/ops.hpp"
#include "tapegrad/random.hpp"
#include "tapegrad/tape/tape.hpp"

using namespace tapegrad;
using test::same_values;

namespace {

struct TierGuard {  // restores the shapes' own choice of conv2d layout
  ~TierGuard() { fast::set_conv2d_tier("auto"); }
};

const Activation activations[] = {Activation::relu, Activation::sigmoid, Activation::tanh};

// The activation as its own op on the tape.
template <class T>
TapeTensor<T> apart(Activation a, const TapeTensor<T>& z) {
  switch (a) {
    case Activation::relu: return ops::relu(z);
    case Activation::sigmoid: return ops::sigmoid(z);
    case Activation::tanh: return ops::tanh(z);
    case Activation::none: break;
  }
  return z;
}

// y, dx, dw, db of loss = sum(y * r) for y = act(op(x, w, b)), fused or as two ops. r is a
// fixed random weighting, so that dy differs per element.
template <class T, class Op>
std::vector<Tensor<T>> run(Op op, Activation a, bool fused, const Tensor<T>& x, const Tensor<T>& w,
                           const Tensor<T>& b, const Shape& y_shape) {
  Rng rng(99);
  const Tensor<T> r = uniform_tensor<T>(y_shape, rng, -1, 1);
  Tape<T> tape;
  const auto xt = tape.leaf(x), wt = tape.leaf(w), bt = tape.leaf(b);
  const auto y = fused ? op(xt, wt, bt, a) : apart(a, op(xt, wt, bt, Activation::none));
  tape.backward(ops::sum(ops::mul(y, tape.constant(r))));
  return {y.value(), tape.grad(xt), tape.grad(wt), tape.grad(bt)};
}

template <class T, class Op>
void expect_fused_equals_apart(Op op, const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b,
                               const Shape& y_shape) {
  for (const Activation a : activations) {
    SCOPED_TRACE(std::string(activation_name(a)));
    const auto f = run<T>(op, a, true, x, w, b, y_shape), s = run<T>(op, a, false, x, w, b, y_shape);
    const char* what[] = {"y", "dx", "dw", "db"};
    for (std::size_t i = 0; i < f.size(); ++i)
      EXPECT_TRUE(same_values(f[i], s[i])) << what[i] << " differs between fused and apart";
  }
}

struct ConvCase {
  Shape x, w;
  Conv2dParams prm;
};

template <class T>
void check_conv(const ConvCase& c, std::uint64_t seed) {
  Rng rng(seed);
  Tensor<T> x = uniform_tensor<T>(c.x, rng, -1, 1);
  const Tensor<T> w = uniform_tensor<T>(c.w, rng, -0.5, 0.5);
  const Tensor<T> b = uniform_tensor<T>(Shape{c.w[0]}, rng, -0.1, 0.1);
  x[x.numel() / 2] = std::numeric_limits<T>::quiet_NaN();  // some outputs NaN: relu gives 0
  const Conv2dGeom g = make_conv2d_geom(c.x, c.w, nullptr, c.prm, "test");
  auto op = [&](const TapeTensor<T>& xt, const TapeTensor<T>& wt, const TapeTensor<T>& bt,
                Activation a) { return ops::conv2d(xt, wt, bt, c.prm, a); };
  expect_fused_equals_apart<T>(op, x, w, b, g.y_shape());
}

// The direct loops (under 4096 flops), both layouts of the lowered convolution, LeNet's
// training shapes at a shard of 16, a strided and grouped case.
const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {Shape{1, 1, 4, 4}, Shape{2, 1, 2, 2}, {}},
      {Shape{2, 3, 12, 11}, Shape{8, 3, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 1}},
      {Shape{16, 1, 28, 28}, Shape{6, 1, 5, 5}, {{1, 1}, {2, 2}, {1, 1}, 1}},
      {Shape{16, 6, 14, 14}, Shape{16, 6, 5, 5}, {}},
      {Shape{3, 4, 9, 9}, Shape{6, 2, 3, 3}, {{2, 2}, {1, 0}, {1, 1}, 2}},
  };
  return cases;
}

}  // namespace

TEST(FusedOps, Conv2dWithActivationIsTheSameBitsAsTheTwoOpsApart) {
  TierGuard restore;
  for (const char* tier : {"auto", "pixels", "batch", "channels"}) {
    SCOPED_TRACE(tier);
    fast::set_conv2d_tier(tier);
    std::uint64_t seed = 1;
    for (const ConvCase& c : conv_cases()) {
      SCOPED_TRACE(make_conv2d_geom(c.x, c.w, nullptr, c.prm, "test").str());
      check_conv<float>(c, seed++);
      check_conv<double>(c, seed++);
    }
  }
}

TEST(FusedOps, LinearWithActivationIsTheSameBitsAsTheTwoOpsApart) {
  // lenet5's fc1 at a shard of 16 rows, and a small odd one
  for (const auto& [n, in, out] : std::vector<std::array<index_t, 3>>{{16, 400, 120}, {3, 5, 7}}) {
    SCOPED_TRACE(std::to_string(n) + "x" + std::to_string(in) + " -> " + std::to_string(out));
    auto check = [&](auto zero) {
      using T = decltype(zero);
      Rng rng(static_cast<std::uint64_t>(n * in + out));
      const Tensor<T> x = uniform_tensor<T>(Shape{n, in}, rng, -1, 1);
      const Tensor<T> w = uniform_tensor<T>(Shape{out, in}, rng, -0.2, 0.2);
      const Tensor<T> b = uniform_tensor<T>(Shape{out}, rng, -0.1, 0.1);
      auto op = [](const TapeTensor<T>& xt, const TapeTensor<T>& wt, const TapeTensor<T>& bt,
                   Activation a) { return ops::linear(xt, wt, bt, a); };
      expect_fused_equals_apart<T>(op, x, w, b, Shape{n, out});
    };
    check(0.0f);
    check(0.0);
  }
}

TEST(FusedOps, NetworksFuseEachConvOrLinearWithTheActivationAfterIt) {
  const NetSpec lenet = load_spec("lenet5");
  // conv relu pool conv relu pool flatten linear relu linear relu linear
  std::vector<Activation> plan;
  for (std::size_t i = 0; i < lenet.layers.size(); ++i)
    plan.push_back(fused_activation(lenet, i, Fusion::activations));
  const auto R = Activation::relu, N = Activation::none;
  EXPECT_EQ(plan, (std::vector<Activation>{R, N, N, R, N, N, N, R, N, R, N, N}));
  for (std::size_t i = 0; i < lenet.layers.size(); ++i)
    EXPECT_EQ(fused_activation(lenet, i, Fusion::none), N);
  // an activation after a pool, or first, or an activation after an activation: not fused
  const NetSpec odd = parse_spec(
      "input 1 6 6\nrelu\nconv2d out=2 kernel=3\nmax_pool2d kernel=2\ntanh\nflatten\n"
      "linear out=3\nsigmoid\nrelu\nloss mse\n");
  plan.clear();
  for (std::size_t i = 0; i < odd.layers.size(); ++i)
    plan.push_back(fused_activation(odd, i, Fusion::activations));
  EXPECT_EQ(plan, (std::vector<Activation>{N, N, N, N, N, Activation::sigmoid, N, N}));
}

// The whole network recorded fused and unfused: the loss and every parameter's gradient the same
// bits (lenet5 with relu, the seed network with sigmoid, a tanh network through linear).
TEST(FusedOps, NetworkFusedAndUnfusedGiveTheSameBits) {
  const std::vector<NetSpec> specs = {
      load_spec("lenet5"), load_spec("seed"),
      parse_spec("input 2 7 7\nconv2d out=3 kernel=3 pad=1\ntanh\nflatten\nlinear out=5\ntanh\n"
                 "linear out=4\nloss cross_entropy\n")};
  for (const NetSpec& spec : specs) {
    SCOPED_TRACE(spec.source);
    auto check = [&](auto zero) {
      using T = decltype(zero);
      const NetValues<T> v = random_problem(spec, 5, 17).template cast<T>();
      auto grads = [&](Fusion fusion) {
        Tape<T> tape;
        std::vector<TapeTensor<T>> ps;
        for (const auto& p : v.params) ps.push_back(tape.leaf(p));
        const auto loss = record_network(spec, tape.constant(v.x), ps, v.targets, std::nullopt, fusion);
        tape.backward(loss);
        std::vector<Tensor<T>> out{loss.value()};
        for (const auto& p : ps) out.push_back(tape.grad(p));
        return out;
      };
      const auto f = grads(Fusion::activations), s = grads(Fusion::none);
      ASSERT_EQ(f.size(), s.size());
      for (std::size_t i = 0; i < f.size(); ++i)
        EXPECT_TRUE(same_values(f[i], s[i])) << (i ? "gradient of parameter " : "loss ") << i;
    };
    check(0.0f);
    check(0.0);
  }
}
