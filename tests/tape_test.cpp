// The op tape: accumulation, branches, validation before recording, clear-and-reuse, and the
// seed network's gradient worked by hand.
#include <gtest/gtest.h>

#include <stdexcept>

#include "tapegrad/net/network.hpp"
#include "tapegrad/net/problem.hpp"
#include "tapegrad/net/reference.hpp"
#include "tapegrad/net/sequential.hpp"
#include "tapegrad/ops/ops.hpp"
#include "tapegrad/tape/tape.hpp"
#include "tapegrad/var/var.hpp"

using namespace tapegrad;

TEST(OpTape, TensorUsedTwiceAccumulates) {
  // L = sum(x * x) => dL/dx = 2x; every product and sum is exact for these small integers.
  Tape<double> tape;
  auto x = tape.leaf(Tensor<double>(Shape{3}, {1.0, -2.0, 3.0}));
  auto loss = ops::sum(ops::mul(x, x));
  EXPECT_EQ(loss.value()[0], 14.0);
  tape.backward(loss);
  const Tensor<double> g = tape.grad(x);
  EXPECT_EQ(g[0], 2.0);
  EXPECT_EQ(g[1], -4.0);
  EXPECT_EQ(g[2], 6.0);
}

TEST(OpTape, ResidualAddSumsBothBranches) {
  // L = sum(relu(x) + x) => dL/dx = [x > 0] + 1: x = (-1, 2) gives (1, 2).
  Tape<float> tape;
  auto x = tape.leaf(Tensor<float>(Shape{1, 2}, {-1.0f, 2.0f}));
  auto loss = ops::sum(ops::add(ops::relu(x), x));
  tape.backward(loss);
  const Tensor<float> g = tape.grad(x);
  EXPECT_EQ(g[0], 1.0f);
  EXPECT_EQ(g[1], 2.0f);
}

TEST(OpTape, SharedWeightGetsBothUses) {
  // y = linear(linear(x, w), w) with x = (1, 0), w = [[0, 1], [2, 0]] (w v = (v1, 2 v0)):
  // y = w w x = w (0, 2) = (2, 0); L = sum(y) = (1, 1) w w x.  dL/dw = sum of the two uses:
  // outer use: dy = (1,1), input h = w x = (0, 2): dw += dy^T h = [[0,2],[0,2]];
  // inner use: dh = dy w = (2, 1), input x = (1, 0): dw += dh^T x = [[2,0],[1,0]].
  // Total [[2,2],[1,2]].
  Tape<double> tape;
  auto x = tape.constant(Tensor<double>(Shape{1, 2}, {1.0, 0.0}));
  auto w = tape.leaf(Tensor<double>(Shape{2, 2}, {0.0, 1.0, 2.0, 0.0}));
  auto loss = ops::sum(ops::linear(ops::linear(x, w, std::nullopt), w, std::nullopt));
  EXPECT_EQ(loss.value()[0], 2.0);
  tape.backward(loss);
  const Tensor<double> g = tape.grad(w);
  EXPECT_EQ(g[0], 2.0);
  EXPECT_EQ(g[1], 2.0);
  EXPECT_EQ(g[2], 1.0);
  EXPECT_EQ(g[3], 2.0);
  EXPECT_EQ(tape.grad(x)[0], 0.0);  // a constant gets no gradient
}

TEST(OpTape, ShapeErrorThrowsBeforeRecording) {
  Tape<double> tape;
  auto x = tape.leaf(Tensor<double>(Shape{2, 3, 8, 8}));
  auto w = tape.leaf(Tensor<double>(Shape{4, 2, 3, 3}));  // in-channels 2, expected 3
  const std::size_t before = tape.num_values();
  try {
    ops::conv2d(x, w, std::nullopt);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("conv2d: w in-channels is 2, expected 3"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(tape.num_values(), before);
  EXPECT_EQ(tape.num_records(), 0u);
  EXPECT_THROW(ops::add(x, tape.leaf(Tensor<double>(Shape{2}))), std::invalid_argument);
  EXPECT_THROW(ops::cross_entropy(ops::flatten(x), {0, 999}), std::out_of_range);
}

TEST(OpTape, BackwardNeedsOneElementLoss) {
  Tape<double> tape;
  auto x = tape.leaf(Tensor<double>(Shape{2}, {1.0, 2.0}));
  EXPECT_THROW(tape.backward(ops::mul(x, x)), std::invalid_argument);
}

TEST(OpTape, OpsWithoutGradientInputsRecordNoVjp) {
  Tape<double> tape;
  auto x = tape.constant(Tensor<double>(Shape{1, 2}, {1.0, 2.0}));
  auto y = ops::sigmoid(ops::relu(x));
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(tape.num_records(), 0u);
  EXPECT_EQ(tape.num_values(), 3u);
}

namespace {
// The seed network (conv 3x3 no bias -> sigmoid -> flatten -> linear 1->1 -> sigmoid -> MSE)
// at a point where everything is exact in binary:
//   w = 0 => z1 = 0, a1 = sigmoid(0) = 1/2, a1(1 - a1) = 1/4;
//   v = 2, c = -1 => z2 = 2 * 1/2 - 1 = 0, a2 = 1/2, a2(1 - a2) = 1/4;  target t = 1.
//   L = (a2 - t)^2 = 1/4;  dL/da2 = 2 (a2 - t) = -1;  dL/dz2 = -1/4;
//   dL/dv = dL/dz2 * a1 = -1/8;  dL/dc = -1/4;  dL/da1 = dL/dz2 * v = -1/2;
//   dL/dz1 = -1/2 * 1/4 = -1/8;  dL/dw_ij = -1/8 x_ij;  dL/dx_ij = -1/8 w_ij = 0.
// Every step multiplies by a power of two, so the results are exact in float and double.
template <class T>
void expect_seed_gradients(const Tensor<T>& x, const Tensor<T>& dx, const Tensor<T>& dw,
                           const Tensor<T>& dv, const Tensor<T>& dc) {
  for (index_t i = 0; i < 9; ++i) {
    EXPECT_EQ(dw[i], T(-0.125) * x[i]) << i;
    EXPECT_EQ(dx[i], T(0)) << i;
  }
  EXPECT_EQ(dv[0], T(-0.125));
  EXPECT_EQ(dc[0], T(-0.25));
}
}  // namespace

template <class T>
void seed_by_hand_on_tape() {
  const NetSpec spec = load_spec("seed");
  Tensor<T> x(Shape{1, 1, 3, 3});
  for (index_t i = 0; i < 9; ++i) x[i] = T(i + 1) / T(10);
  Tape<T> tape;
  auto xt = tape.leaf(x);
  std::vector<TapeTensor<T>> ps{tape.leaf(Tensor<T>(Shape{1, 1, 3, 3})),
                                tape.leaf(Tensor<T>(Shape{1, 1}, {T(2)})),
                                tape.leaf(Tensor<T>(Shape{1}, {T(-1)}))};
  Targets<T> t{{}, Tensor<T>(Shape{1, 1}, {T(1)})};
  auto loss = record_network(spec, xt, ps, t);
  EXPECT_EQ(loss.value()[0], T(0.25));
  tape.backward(loss);
  expect_seed_gradients(x, tape.grad(xt), tape.grad(ps[0]), tape.grad(ps[1]), tape.grad(ps[2]));
}

TEST(OpTape, SeedNetworkGradientMatchesHandDerivationDouble) { seed_by_hand_on_tape<double>(); }
TEST(OpTape, SeedNetworkGradientMatchesHandDerivationFloat) { seed_by_hand_on_tape<float>(); }

TEST(OpTape, ClearAndReuseGivesIdenticalGradients) {
  const NetSpec spec = load_spec("lenet5");
  const NetValues<double> v = random_problem(spec, 1, 7);
  Tape<double> tape;
  std::vector<Tensor<double>> first;
  std::size_t values_first = 0;
  for (int iter = 0; iter < 2; ++iter) {
    tape.clear();
    EXPECT_EQ(tape.num_values(), 0u);
    auto x = tape.leaf(v.x);
    std::vector<TapeTensor<double>> ps;
    for (const auto& p : v.params) ps.push_back(tape.leaf(p));
    tape.backward(record_network(spec, x, ps, v.targets));
    std::vector<Tensor<double>> g{tape.grad(x)};
    for (const auto& p : ps) g.push_back(tape.grad(p));
    if (iter == 0) {
      first = g;
      values_first = tape.num_values();
      continue;
    }
    EXPECT_EQ(tape.num_values(), values_first);
    ASSERT_EQ(g.size(), first.size());
    for (std::size_t k = 0; k < g.size(); ++k)
      for (index_t i = 0; i < g[k].numel(); ++i) ASSERT_EQ(g[k][i], first[k][i]) << k << " " << i;
  }
  // The lenet5 tape: 12 layer ops + the loss, oldest first.
  const std::vector<std::string> names = tape.record_names();
  ASSERT_EQ(names.size(), 13u);
  EXPECT_EQ(names.front(), "conv2d");
  EXPECT_EQ(names.back(), "cross_entropy");
}

TEST(OpTape, MseLossGradientFlowsToTargetLeafToo) {
  // L = mean((x - t)^2) over 2 elements: dL/dx = (x - t), dL/dt = (t - x).
  // x = (3, 1), t = (1, 1): L = 2, dx = (2, 0), dt = (-2, 0).
  Tape<double> tape;
  auto x = tape.leaf(Tensor<double>(Shape{2}, {3.0, 1.0}));
  auto t = tape.leaf(Tensor<double>(Shape{2}, {1.0, 1.0}));
  auto loss = ops::mse_loss(x, t);
  EXPECT_EQ(loss.value()[0], 2.0);
  tape.backward(loss);
  EXPECT_EQ(tape.grad(x)[0], 2.0);
  EXPECT_EQ(tape.grad(x)[1], 0.0);
  EXPECT_EQ(tape.grad(t)[0], -2.0);
  EXPECT_EQ(tape.grad(t)[1], 0.0);
}

namespace {
// L = sum(op(x) * c) for op = softmax or log_softmax over dim 1 of x (2, 4): the op tape's
// VJP against the scalar tape (Var<double> through ref::softmax_forward / log_softmax_forward,
// no hand-derived derivative). Tolerance: each dx element is y_i (c_i - sum_j y_j c_j) or
// c_i - exp(y_i) sum_j c_j, about 2C + 8 = 16 roundings (exp counted 2) on terms of size
// <= max|c| = 1 with y <= 1, so gamma(16) * 2 * C bounds |dx error| (C = 4 terms of size <= 1,
// times 2 for the two evaluations compared).
template <class F, class G>
void expect_tape_matches_scalar_tape(F tape_op, G ref_op) {
  const Tensor<double> x(Shape{2, 4}, {0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 0.0, -2.0});
  const Tensor<double> c(Shape{2, 4}, {1.0, -0.5, 0.25, 0.0, -1.0, 0.75, 0.5, -0.25});
  Tape<double> tape;
  auto xt = tape.leaf(x);
  tape.backward(ops::sum(ops::mul(tape_op(xt), tape.constant(c))));
  const Tensor<double> g_tape = tape.grad(xt);

  VarTape<double> vt;
  const Tensor<Var<double>> xv = make_variables(vt, x);
  const Tensor<Var<double>> y = ref_op(xv);
  Var<double> loss(0.0);
  for (index_t i = 0; i < y.numel(); ++i) loss += y[i] * Var<double>(c[i]);
  vt.backward(loss);
  const Tensor<double> g_var = adjoints(vt, xv);
  const double u = 0x1.0p-53, tol = 16 * u / (1 - 16 * u) * 2 * 4;
  for (index_t i = 0; i < x.numel(); ++i) EXPECT_NEAR(g_tape[i], g_var[i], tol) << i;
}
}  // namespace

TEST(OpTape, SoftmaxVjpMatchesScalarTape) {
  expect_tape_matches_scalar_tape([](const auto& x) { return ops::softmax(x); },
                                  [](const auto& x) { return ref::softmax_forward(x); });
}

TEST(OpTape, LogSoftmaxVjpMatchesScalarTape) {
  expect_tape_matches_scalar_tape([](const auto& x) { return ops::log_softmax(x); },
                                  [](const auto& x) { return ref::log_softmax_forward(x); });
}

TEST(OpTape, CrossEntropyDividesByTheGivenCount) {
  // A count of 2N halves the loss and its gradient exactly (dividing by 2N = dividing by N,
  // then by 2, and halving commutes with rounding to nearest when nothing underflows).
  const Tensor<double> z(Shape{2, 3}, {0.5, -1.0, 2.0, 0.25, -0.75, 1.5});
  const std::vector<index_t> t{2, 0};
  Tape<double> tape;
  const auto a = tape.leaf(z), b = tape.leaf(z);
  const auto l_default = ops::cross_entropy(a, t), l_global = ops::cross_entropy(b, t, 4);
  EXPECT_EQ(l_global.value()[0], l_default.value()[0] / 2);
  tape.backward(ops::add(l_default, l_global));
  const Tensor<double> ga = tape.grad(a), gb = tape.grad(b);
  for (index_t i = 0; i < z.numel(); ++i) EXPECT_EQ(gb[i], ga[i] / 2) << i;
  EXPECT_THROW(ops::cross_entropy(a, t, 0), std::invalid_argument);
}
