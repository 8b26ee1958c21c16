// The op tape: accumulation, branches, validation before recording, clear-and-reuse, and the
// seed network's gradient worked by hand.
#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

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
  // The lenet5 tape: 12 layers, 4 of them relus fused into the conv2d or linear before them,
  // + the loss, oldest first.
  const std::vector<std::string> names = tape.record_names();
  ASSERT_EQ(names.size(), 9u);
  EXPECT_EQ(names.front(), "conv2d+relu");
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

// ---------------------------------------------------------------- requires_grad gating
// Every op, every input position, each input one of:
//   leaf      tape.leaf(v): requires a gradient
//   constant  tape.constant(v)
//   frozen    tape.view(v, false): the trainer's view of a batch
//   nonleaf   mul(leaf(v / 2), constant(2)): the op sees v, its gradient reaches the leaf times 2
//   dead      mul(constant(v / 2), constant(2)): an op output that needs no gradient
// (v / 2 and 2 (v / 2) are exact). The output requires a gradient iff some input does; every
// input that requires one gets, bit for bit, the gradient it gets when all inputs are leaves
// (nonleaf: twice it, exactly), and every other input reads zeros. Catches a VJP gated on the
// wrong operand (a conv bias gradient only computed when x requires one: the training case,
// constant images with a trainable bias), a missing gate (a gradient stored for a constant),
// an op output that requires a gradient when none of its inputs does.
namespace gating {

enum Mode { leaf, constant, frozen, nonleaf, dead };
constexpr Mode all_modes[] = {leaf, constant, frozen, nonleaf, dead};
const char* mode_name(Mode m) {
  static const char* n[] = {"leaf", "constant", "frozen", "nonleaf", "dead"};
  return n[m];
}

using Build = std::function<TapeTensor<double>(const std::vector<TapeTensor<double>>&)>;

struct OpCase {
  std::string name;
  std::vector<Tensor<double>> inputs;
  Build build;
};

Tensor<double> values(const Shape& s, std::uint64_t seed) {
  Rng rng(seed);
  return uniform_tensor<double>(s, rng, -1, 1);
}

// The gradients of <op(inputs), gy> w.r.t. each input's leaf (the leaf behind a nonleaf),
// and whether the output required a gradient.
struct Run {
  std::vector<Tensor<double>> grad;
  bool output_requires_grad = false;
};

Run run(const OpCase& c, const std::vector<Mode>& modes, const Tensor<double>* gy) {
  Tape<double> tape;
  std::vector<TapeTensor<double>> in, handle;
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    const Tensor<double>& v = c.inputs[i];
    const Tensor<double> half = map(v, [](double e) { return e / 2; });
    switch (modes[i]) {
      case leaf: handle.push_back(tape.leaf(v)); in.push_back(handle.back()); break;
      case constant: handle.push_back(tape.constant(v)); in.push_back(handle.back()); break;
      case frozen: handle.push_back(tape.view(v, false)); in.push_back(handle.back()); break;
      case nonleaf:
        handle.push_back(tape.leaf(half));
        in.push_back(ops::mul(handle.back(), tape.constant(Tensor<double>(v.shape(), 2.0))));
        break;
      case dead:
        handle.push_back(tape.constant(half));
        in.push_back(ops::mul(handle.back(), tape.constant(Tensor<double>(v.shape(), 2.0))));
        break;
    }
  }
  const TapeTensor<double> y = c.build(in);
  Run r;
  r.output_requires_grad = y.requires_grad();
  const Tensor<double> seed = gy ? *gy : values(y.shape(), 99);
  tape.backward(ops::sum(ops::mul(y, tape.constant(seed))));
  for (const auto& h : handle) r.grad.push_back(tape.grad(h));
  return r;
}

bool needs(Mode m) { return m == leaf || m == nonleaf; }

void check_every_combination(const OpCase& c) {
  const std::size_t n = c.inputs.size();
  const Run full = run(c, std::vector<Mode>(n, leaf), nullptr);
  ASSERT_TRUE(full.output_requires_grad) << c.name;
  for (std::size_t i = 0; i < n; ++i) {
    bool nonzero = false;
    for (double g : full.grad[i]) nonzero = nonzero || g != 0;
    ASSERT_TRUE(nonzero) << c.name << ": input " << i << " has an all-zero gradient";
  }
  std::size_t combos = 1;
  for (std::size_t i = 0; i < n; ++i) combos *= 5;
  for (std::size_t k = 0; k < combos; ++k) {
    std::vector<Mode> modes;
    bool any = false;
    for (std::size_t i = 0, kk = k; i < n; ++i, kk /= 5) {
      modes.push_back(all_modes[kk % 5]);
      any = any || needs(modes.back());
    }
    std::string what = c.name + "(";
    for (std::size_t i = 0; i < n; ++i) what += std::string(i ? ", " : "") + mode_name(modes[i]);
    what += ")";
    const Run r = run(c, modes, nullptr);
    EXPECT_EQ(r.output_requires_grad, any) << what;
    for (std::size_t i = 0; i < n; ++i) {
      const Tensor<double>& g = r.grad[i];
      ASSERT_EQ(g.shape(), c.inputs[i].shape()) << what;
      for (index_t e = 0; e < g.numel(); ++e) {
        const double want = modes[i] == leaf ? full.grad[i][e]
                            : modes[i] == nonleaf ? 2 * full.grad[i][e]
                                                  : 0.0;
        if (g[e] != want) {
          ADD_FAILURE() << what << ": input " << i << " element " << e << " gradient " << g[e]
                        << ", expected " << want;
          break;
        }
      }
    }
  }
}

std::vector<OpCase> op_cases() {
  const Conv2dParams prm{{1, 2}, {1, 0}, {2, 1}, 2};
  const Pool2dParams pool{{2, 2}, {1, 2}, {1, 1}};
  std::vector<OpCase> c;
  c.push_back({"conv2d",
               {values(Shape{2, 4, 6, 5}, 1), values(Shape{4, 2, 2, 3}, 2), values(Shape{4}, 3)},
               [prm](const auto& v) { return ops::conv2d(v[0], v[1], v[2], prm); }});
  c.push_back({"linear", {values(Shape{3, 5}, 4), values(Shape{2, 5}, 5), values(Shape{2}, 6)},
               [](const auto& v) { return ops::linear(v[0], v[1], v[2]); }});
  c.push_back({"conv2d without bias", {values(Shape{1, 2, 4, 4}, 7), values(Shape{3, 2, 3, 3}, 8)},
               [](const auto& v) { return ops::conv2d(v[0], v[1], std::nullopt); }});
  c.push_back({"relu", {values(Shape{2, 7}, 9)}, [](const auto& v) { return ops::relu(v[0]); }});
  c.push_back(
      {"sigmoid", {values(Shape{2, 7}, 10)}, [](const auto& v) { return ops::sigmoid(v[0]); }});
  c.push_back({"tanh", {values(Shape{2, 7}, 11)}, [](const auto& v) { return ops::tanh(v[0]); }});
  c.push_back(
      {"softmax", {values(Shape{2, 7}, 12)}, [](const auto& v) { return ops::softmax(v[0]); }});
  c.push_back({"log_softmax", {values(Shape{2, 7}, 13)},
               [](const auto& v) { return ops::log_softmax(v[0]); }});
  c.push_back({"max_pool2d", {values(Shape{2, 2, 5, 6}, 14)},
               [pool](const auto& v) { return ops::max_pool2d(v[0], pool); }});
  c.push_back({"avg_pool2d", {values(Shape{2, 2, 5, 6}, 15)},
               [pool](const auto& v) { return ops::avg_pool2d(v[0], pool); }});
  c.push_back(
      {"flatten", {values(Shape{2, 3, 2, 2}, 16)}, [](const auto& v) { return ops::flatten(v[0]); }});
  c.push_back({"mse_loss", {values(Shape{3, 4}, 17), values(Shape{3, 4}, 18)},
               [](const auto& v) { return ops::mse_loss(v[0], v[1]); }});
  c.push_back({"cross_entropy", {values(Shape{3, 4}, 19)},
               [](const auto& v) { return ops::cross_entropy(v[0], {3, 0, 1}); }});
  c.push_back({"add", {values(Shape{2, 3}, 20), values(Shape{2, 3}, 21)},
               [](const auto& v) { return ops::add(v[0], v[1]); }});
  c.push_back({"mul", {values(Shape{2, 3}, 22), values(Shape{2, 3}, 23)},
               [](const auto& v) { return ops::mul(v[0], v[1]); }});
  c.push_back({"sum", {values(Shape{2, 3}, 24)}, [](const auto& v) { return ops::sum(v[0]); }});
  return c;
}

}  // namespace gating

TEST(OpTapeGating, EveryOpGivesGradientsExactlyToTheInputsThatRequireThem) {
  for (const auto& c : gating::op_cases()) gating::check_every_combination(c);
}

// The training case by hand: y = conv2d(x, w, b) over constant images, 1x1 kernel, w frozen,
// only b trainable. L = <y, gy>: db[k] = sum_{n,p,q} gy[n,k,p,q].
//   gy[., 0] = (1, 2, 3, 4) and (0.5, 0.5, 0.5, 0.5) over 2 images -> db[0] = 12
//   gy[., 1] = (-1, 0, 0, 1) and (2, 0, 0, 0)                      -> db[1] = 2
TEST(OpTapeGating, ConvolutionOverConstantImagesGivesTheTrainableBiasItsGradient) {
  Tape<double> tape;
  const Tensor<double> images(Shape{2, 1, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  const auto x = tape.view(images, false);
  const auto w = tape.constant(Tensor<double>(Shape{2, 1, 1, 1}, {0.5, -1.0}));
  const auto b = tape.leaf(Tensor<double>(Shape{2}, {0.25, 0.75}));
  const auto y = ops::conv2d(x, w, b);
  const Tensor<double> gy(Shape{2, 2, 2, 2},
                          {1, 2, 3, 4, -1, 0, 0, 1, 0.5, 0.5, 0.5, 0.5, 2, 0, 0, 0});
  tape.backward(ops::sum(ops::mul(y, tape.constant(gy))));
  EXPECT_EQ(tape.grad(b)[0], 12.0);
  EXPECT_EQ(tape.grad(b)[1], 2.0);
  for (double g : tape.grad(w)) EXPECT_EQ(g, 0.0);
  for (double g : tape.grad(x)) EXPECT_EQ(g, 0.0);
}

// Binary ops with two distinct differentiated operands, by hand:
//   a = (1, -2, 3), b = (4, 0.5, -1), gy = (1, 2, 3)
//   add: da = db = gy = (1, 2, 3)
//   mul: da = gy * b = (4, 1, -3), db = gy * a = (1, -4, 9)
//   mse_loss(a, b) (count 3): d = 2 (a - b) / 3 * gL with gL = 1.5: (a - b) = (-3, -2.5, 4),
//     da = (-3, -2.5, 4), db = -da
TEST(OpTape, BinaryOpsGiveEachOfTwoDistinctOperandsItsOwnGradient) {
  const Tensor<double> av(Shape{3}, {1, -2, 3}), bv(Shape{3}, {4, 0.5, -1}), gy(Shape{3}, {1, 2, 3});
  {
    Tape<double> tape;
    const auto a = tape.leaf(av), b = tape.leaf(bv);
    tape.backward(ops::sum(ops::mul(ops::add(a, b), tape.constant(gy))));
    for (index_t i = 0; i < 3; ++i) {
      EXPECT_EQ(tape.grad(a)[i], gy[i]);
      EXPECT_EQ(tape.grad(b)[i], gy[i]);
    }
  }
  {
    Tape<double> tape;
    const auto a = tape.leaf(av), b = tape.leaf(bv);
    tape.backward(ops::sum(ops::mul(ops::mul(a, b), tape.constant(gy))));
    const double da[] = {4, 1, -3}, db[] = {1, -4, 9};
    for (index_t i = 0; i < 3; ++i) {
      EXPECT_EQ(tape.grad(a)[i], da[i]) << i;
      EXPECT_EQ(tape.grad(b)[i], db[i]) << i;
    }
  }
  {
    Tape<double> tape;
    const auto a = tape.leaf(av), b = tape.leaf(bv);
    tape.backward(ops::mul(ops::mse_loss(a, b), tape.constant(Tensor<double>::scalar(1.5))));
    const double da[] = {-3, -2.5, 4};
    for (index_t i = 0; i < 3; ++i) {
      EXPECT_DOUBLE_EQ(tape.grad(a)[i], da[i]) << i;
      EXPECT_DOUBLE_EQ(tape.grad(b)[i], -da[i]) << i;
    }
  }
}
