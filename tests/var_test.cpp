// Var<T>, the scalar tape: derivatives worked by hand, the tape rules, and scale.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tapegrad/gradcheck/tolerance.hpp"
#include "tapegrad/kernels/activation_ref.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/kernels/linear_ref.hpp"
#include "tapegrad/kernels/loss_ref.hpp"
#include "tapegrad/kernels/pool_ref.hpp"
#include "tapegrad/var/var.hpp"

using namespace tapegrad;
using gradcheck::gamma;
using gradcheck::reduction_tolerance;

namespace {
constexpr double u = 0x1p-53;  // double unit roundoff
}

TEST(Var, SquareAtThreeHasDerivativeSix) {
  // d/dx x*x = 2x = 6 at x = 3; x is used twice, so the two partials (3 and 3) must add up.
  // All values are small integers: exact in double.
  VarTape<double> tape;
  Var<double> x = tape.variable(3.0);
  Var<double> y = x * x;
  tape.backward(y);
  EXPECT_EQ(y.value(), 9.0);
  EXPECT_EQ(tape.adjoint(x), 6.0);
}

TEST(Var, ValueUsedThreeTimesAccumulatesAllUses) {
  // y = x*x*x + x = x^3 + x:  dy/dx = 3x^2 + 1 = 13 at x = 2 (exact).
  VarTape<double> tape;
  Var<double> x = tape.variable(2.0);
  tape.backward(x * x * x + x);
  EXPECT_EQ(tape.adjoint(x), 13.0);
}

TEST(Var, ProductRuleForExpTimesSin) {
  // d/dx e^x sin x = e^x (sin x + cos x). The tape gets e*s' + s*e' = e*c + s*e; the formula
  // e*(s + c). Each side: 2 products/sums over terms with two libm roundings each (< 1 ulp =
  // 2u each, so 4 extra ops): |err| <= gamma(2 + 4) * (|e s| + |e c|); two sides: twice that.
  const double x0 = 0.7;
  VarTape<double> tape;
  Var<double> x = tape.variable(x0);
  tape.backward(exp(x) * sin(x));
  const double e = std::exp(x0), s = std::sin(x0), c = std::cos(x0);
  const double tol = 2 * reduction_tolerance<double>(2, std::fabs(e * s) + std::fabs(e * c), 4);
  EXPECT_NEAR(tape.adjoint(x), e * (s + c), tol);
}

TEST(Var, QuotientRuleGivesBothPartials) {
  // q = a / b at a = 3, b = 4:  dq/da = 1/b = 0.25, dq/db = -a/b^2 = -3/16 = -0.1875 (exact
  // binary fractions; the tape computes -q/b = -0.75/4, also exact).
  VarTape<double> tape;
  Var<double> a = tape.variable(3.0), b = tape.variable(4.0);
  tape.backward(a / b);
  EXPECT_EQ(tape.adjoint(a), 0.25);
  EXPECT_EQ(tape.adjoint(b), -0.1875);
}

TEST(Var, TanhDerivativeIsOneMinusTanhSquared) {
  // tanh'(x) = 1 - tanh(x)^2; the tape computes exactly that expression from the rounded y, so
  // the two agree bitwise.
  VarTape<double> tape;
  Var<double> x = tape.variable(0.3);
  Var<double> y = tanh(x);
  tape.backward(y);
  EXPECT_EQ(tape.adjoint(x), 1.0 - y.value() * y.value());
  // and against cosh: 1 - tanh^2 = 1 / cosh^2 (~0.917). Tape side: y within 2u (libm), y*y
  // and 1 - y^2 one rounding each: <= (2*2u + u) y^2 + u < 1.5u. Formula side: cosh within
  // 2u, c*c and 1/. one rounding each: <= 6u * 0.917 < 5.5u. Sum < 7u <= gamma(8).
  const double c = std::cosh(0.3);
  EXPECT_NEAR(tape.adjoint(x), 1.0 / (c * c), gamma<double>(8));
}

TEST(Var, LogDerivativeIsReciprocal) {
  // d/dx log(x) = 1/x = 0.125 at x = 8 (exact).  d/dx log(x*x) = 2/x = 0.25.
  VarTape<double> tape;
  Var<double> x = tape.variable(8.0);
  tape.backward(log(x));
  EXPECT_EQ(tape.adjoint(x), 0.125);
  tape.backward(log(x * x));
  EXPECT_EQ(tape.adjoint(x), 0.25);
}

TEST(Var, SqrtDerivativeIsHalfOverRoot) {
  // sqrt'(x) = 1/(2 sqrt x) = 1/6 at x = 9: 1/(3+3) rounded once, the same as 1.0/6.0.
  VarTape<double> tape;
  Var<double> x = tape.variable(9.0);
  tape.backward(sqrt(x));
  EXPECT_EQ(tape.adjoint(x), 1.0 / 6.0);
}

TEST(Var, AbsDerivativeIsSignAndZeroAtZero) {
  // NOTE convention: abs'(0) = 0.
  VarTape<double> tape;
  Var<double> a = tape.variable(-2.0), b = tape.variable(0.0), c = tape.variable(5.0);
  tape.backward(abs(a) + abs(b) + abs(c));
  EXPECT_EQ(tape.adjoint(a), -1.0);
  EXPECT_EQ(tape.adjoint(b), 0.0);
  EXPECT_EQ(tape.adjoint(c), 1.0);
}

TEST(Var, ProductOfFiftyTwosHasExactPartials) {
  // y = prod_{i<50} x_i with every x_i = 2: dy/dx_j = prod_{i != j} x_i = 2^49, exact in double
  // (powers of two multiply exactly), for every j.
  VarTape<double> tape;
  std::vector<Var<double>> xs;
  for (int i = 0; i < 50; ++i) xs.push_back(tape.variable(2.0));
  Var<double> y = 1.0;
  for (const auto& x : xs) y *= x;
  tape.backward(y);
  for (const auto& x : xs) EXPECT_EQ(tape.adjoint(x), std::ldexp(1.0, 49));
}

TEST(Var, PlainOperandsWorkOnEitherSide) {
  // f = 2x + x*3 - 1 + (1 - x) + 6/x - x/2 + 5 at x = 2 (int and double operands):
  // df/dx = 2 + 3 - 1 - 6/x^2 - 1/2 = 4 - 1.5 - 0.5 = 2 (exact).
  VarTape<double> tape;
  Var<double> x = tape.variable(2.0);
  Var<double> f = 2 * x + x * 3.0 - 1 + (1.0 - x) + 6 / x - x / 2.0 + 5;
  tape.backward(f);
  // value: 4 + 6 - 1 - 1 + 3 - 1 + 5 = 15
  EXPECT_EQ(f.value(), 15.0);
  EXPECT_EQ(tape.adjoint(x), 2.0);
}

TEST(Var, CompoundAssignmentAndUnaryMinus) {
  // y = -x; y += x*x; y -= 3; y *= x; y /= 2  ->  y = (x^2 - x - 3) x / 2
  // dy/dx = (3x^2 - 2x - 3) / 2 = (27 - 6 - 3)/2 = 9 at x = 3.
  VarTape<double> tape;
  Var<double> x = tape.variable(3.0);
  Var<double> y = -x;
  y += x * x;
  y -= 3;
  y *= x;
  y /= 2;
  tape.backward(y);
  EXPECT_EQ(y.value(), 4.5);  // (9 - 3 - 3) * 3 / 2
  EXPECT_EQ(tape.adjoint(x), 9.0);
}

TEST(Var, ConstantsRecordNoNodes) {
  // Kernels make many T(0)s: constants and constant-only arithmetic must cost no nodes.
  VarTape<double> tape;
  Var<double> a(0), b(1.5), c = Var<double>(2) * b + exp(b) - a / 4.0;
  EXPECT_EQ(tape.size(), 0);
  EXPECT_TRUE(c.is_constant());
  Var<double> x = tape.variable(1.0);  // 1 node
  Var<double> y = x * 2.0;             // 1 node: the constant operand adds none
  EXPECT_EQ(tape.size(), 2);
  tape.backward(y);
  EXPECT_EQ(tape.adjoint(x), 2.0);
  EXPECT_EQ(tape.adjoint(b), 0.0);  // a constant has no gradient
}

TEST(Var, ComparisonsSeeValuesAndRecordNothing) {
  VarTape<double> tape;
  Var<double> x = tape.variable(1.0), y = tape.variable(2.0);
  const index_t before = tape.size();
  EXPECT_TRUE(x < y);
  EXPECT_TRUE(x <= 1.0);
  EXPECT_TRUE(y > 1);
  EXPECT_TRUE(y >= y);
  EXPECT_TRUE(x == 1.0);
  EXPECT_TRUE(0.5 != x);
  EXPECT_EQ(tape.size(), before);
}

TEST(Var, ReluByComparisonRecordsOnlyTheTakenBranch) {
  // relu(v) = v > 0 ? v : 0 as the reference kernels write it: relu'(0) = 0 by convention.
  VarTape<double> tape;
  Var<double> pos = tape.variable(2.0), zero = tape.variable(0.0);
  auto relu = [](const Var<double>& v) { return v > Var<double>(0) ? v : Var<double>(0); };
  tape.backward(relu(pos) * 3.0 + relu(zero) * 5.0);
  EXPECT_EQ(tape.adjoint(pos), 3.0);
  EXPECT_EQ(tape.adjoint(zero), 0.0);
}

TEST(Var, UnusedInfinitePartialDoesNotPoisonTheGradient) {
  // sqrt(0) has partial +inf; computed but not used in y it must not turn dy/dx into NaN
  // (0 * inf). backward skips nodes whose adjoint is exactly zero.
  VarTape<double> tape;
  Var<double> x = tape.variable(0.0);
  Var<double> unused = sqrt(x);
  Var<double> y = x * 4.0;
  (void)unused;
  tape.backward(y);
  EXPECT_EQ(tape.adjoint(x), 4.0);
}

TEST(Var, VectorJacobianProductSeedsEveryOutput) {
  // y = (x0*x1, x0 + x1), seeds (2, 3): x0: 2*x1 + 3 = 2*5 + 3 = 13; x1: 2*x0 + 3 = 7.
  VarTape<double> tape;
  Tensor<Var<double>> x = make_variables(tape, Tensor<double>(Shape{2}, {2.0, 5.0}));
  Tensor<Var<double>> y(Shape{2});
  y[0] = x[0] * x[1];
  y[1] = x[0] + x[1];
  tape.backward(y, Tensor<double>(Shape{2}, {2.0, 3.0}));
  Tensor<double> dx = adjoints(tape, x);
  EXPECT_EQ(dx[0], 13.0);
  EXPECT_EQ(dx[1], 7.0);
  EXPECT_THROW(tape.backward(y, Tensor<double>(Shape{3})), std::invalid_argument);
}

// A kernel-shaped generic function: T(0) accumulator, +=, products, a comparison, ADL exp.
template <class T>
T generic_dot_relu_exp(const Tensor<T>& a, const Tensor<T>& b) {
  using std::exp;
  T acc = T(0);
  for (index_t i = 0; i < a.numel(); ++i) {
    const T prod = a[i] * b[i];
    acc += prod > T(0) ? prod : T(0);
  }
  return exp(acc / T(double(a.numel())));
}

TEST(Var, TensorOfVarsRunsAGenericKernel) {
  // f = exp(mean(relu(a .* b))) with a = (1, 2, -1), b = (3, 0.5, 4): products (3, 1, -4),
  // relu -> (3, 1, 0), mean = 4/3, f = e^(4/3).
  // df/da_i = f/3 * b_i where a_i b_i > 0, else 0: (f, f/6, 0); df/db = (f/3, 2f/3, 0).
  // Tolerance (relative): tape side: acc = 4 exact, acc/3 rounds (u, which exp turns into
  // 4/3 u), exp within 2u, then the partial 1/3 (u) and one product (u): < 5.4u. Reference:
  // exp(4/3) < 3.4u, then /6 or *2/3: < 4.4u. Sum < 10u <= gamma(12).
  VarTape<double> tape;
  Tensor<double> av(Shape{3}, {1.0, 2.0, -1.0}), bv(Shape{3}, {3.0, 0.5, 4.0});
  Tensor<Var<double>> a = make_variables(tape, av), b = make_variables(tape, bv);
  Var<double> f = generic_dot_relu_exp(a, b);
  tape.backward(f);
  Tensor<double> da = adjoints(tape, a), db = adjoints(tape, b);
  const double fe = std::exp(4.0 / 3.0);
  const double want_a[] = {fe, fe / 6, 0}, want_b[] = {fe / 3, 2 * fe / 3, 0};
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(da[i], want_a[i], gamma<double>(12) * std::fabs(want_a[i])) << i;
    EXPECT_NEAR(db[i], want_b[i], gamma<double>(12) * std::fabs(want_b[i])) << i;
  }
  EXPECT_EQ(values(a)[1], 2.0);
  Tensor<Var<double>> zeros(Shape{2, 2});  // default-constructible elements: constant 0
  EXPECT_TRUE(zeros[3].is_constant());
  EXPECT_EQ(value_of(zeros[3]), 0.0);
}

TEST(Var, FiftyDigitDerivativeAgreesWithFormulaTo1em45) {
  // d/dx [x^2 log(x) + tanh(x) / sqrt(x)] = 2x log x + x + (1 - tanh^2 x)/sqrt x
  //                                         - tanh(x) / (2 x sqrt x),  at x = 1.25.
  // Both sides are ~10 f50 operations on O(1) values: error ~ gamma(20) in f50 ~ 1e-49;
  // 1e-45 leaves 4 digits of slack and still rejects any wrong rule (wrong by O(1)).
  using std::log;
  using std::sqrt;
  using std::tanh;
  const f50 x0 = f50(5) / 4;
  VarTape<f50> tape;
  Var<f50> x = tape.variable(x0);
  tape.backward(x * x * log(x) + tanh(x) / sqrt(x));
  const f50 t = tanh(x0), r = sqrt(x0);
  const f50 want = 2 * x0 * log(x0) + x0 + (1 - t * t) / r - t / (2 * x0 * r);
  EXPECT_LT(static_cast<double>(abs(tape.adjoint(x) - want)), 1e-45);
}

TEST(VarTape, VariableFromAnotherTapeThrows) {
  VarTape<double> outer;
  Var<double> a = outer.variable(1.0);
  {
    VarTape<double> inner;  // now current: `a` belongs to outer
    Var<double> b = inner.variable(2.0);
    EXPECT_THROW(a * b, std::logic_error);
    EXPECT_THROW(inner.adjoint(a), std::logic_error);
    EXPECT_NO_THROW(b * b);
  }
  // inner destroyed: outer is current again, a works.
  EXPECT_EQ(VarTape<double>::current(), &outer);
  Var<double> y = a * 3.0;
  outer.backward(y);
  EXPECT_EQ(outer.adjoint(a), 3.0);
}

TEST(VarTape, ClearInvalidatesOldVariablesAndKeepsCapacity) {
  VarTape<double> tape;
  Var<double> x = tape.variable(1.0);
  for (int i = 0; i < 1000; ++i) x = x * 1.0;
  const std::size_t cap = tape.capacity();
  tape.clear();
  EXPECT_EQ(tape.size(), 0);
  EXPECT_EQ(tape.capacity(), cap);
  EXPECT_THROW(x + 1.0, std::logic_error);
  Var<double> z = tape.variable(4.0);
  tape.backward(z * z);
  EXPECT_EQ(tape.adjoint(z), 8.0);
}

TEST(VarTape, VariableWithNoCurrentTapeThrows) {
  Var<double> x;
  {
    VarTape<double> tape;
    x = tape.variable(1.0);
  }
  EXPECT_EQ(VarTape<double>::current(), nullptr);
  EXPECT_THROW(x * 2.0, std::logic_error);
}

TEST(VarTape, ThreadsRecordOnTheirOwnTapesInParallel) {
  // Each thread differentiates x^2 at x = its id + 1 on its own tape, many times over, while
  // the others do the same: d/dx = 2 (id + 1), exact.
  constexpr int threads = 4;
  std::vector<double> result(threads, -1);
  std::vector<std::thread> pool;
  for (int id = 0; id < threads; ++id) {
    pool.emplace_back([id, &result] {
      VarTape<double> tape;
      double d = 0;
      for (int rep = 0; rep < 2000; ++rep) {
        tape.clear();
        Var<double> x = tape.variable(id + 1.0);
        Var<double> y = x;
        for (int k = 0; k < 10; ++k) y = y + 0.0;  // lengthen the tape
        tape.backward(y * y);
        d = tape.adjoint(x);
      }
      result[static_cast<std::size_t>(id)] = d;
    });
  }
  for (auto& t : pool) t.join();
  for (int id = 0; id < threads; ++id)
    EXPECT_EQ(result[static_cast<std::size_t>(id)], 2.0 * (id + 1));
}

TEST(VarTape, MillionNodeChainRecordsAndSweeps) {
  // y_0 = x, y_{k+1} = y_k * 0.5 + x: two nodes per step, 500000 steps = 1e6 nodes (+1 leaf).
  // dy_n/dx = sum_{k<=n} 0.5^k = 2 - 2^-n. The sweep adds 1 + 0.5 + 0.25 + ... exactly until
  // the terms drop below half an ulp of 2, where it rounds to 2: within 2 ulps (4u * 2) of 2.
  constexpr int steps = 500000;
  VarTape<double> tape;
  const auto t0 = std::chrono::steady_clock::now();
  Var<double> x = tape.variable(1.0);
  Var<double> y = x;
  for (int k = 0; k < steps; ++k) y = y * 0.5 + x;
  const auto t1 = std::chrono::steady_clock::now();
  tape.backward(y);
  const auto t2 = std::chrono::steady_clock::now();
  EXPECT_EQ(tape.size(), 2 * steps + 1);
  EXPECT_NEAR(tape.adjoint(x), 2.0, 4 * u * 2);
  // Memory per node: one 32-byte record for double (two parent indices, two partials, the
  // adjoint); no closure, no heap allocation per node.
  EXPECT_LE(VarTape<double>::bytes_per_node(), 32u);
  EXPECT_LE(sizeof(Var<double>), 16u);
  using ms = std::chrono::duration<double, std::milli>;
  std::printf("[ info ] 1e6-node chain: record %.1f ms, sweep %.1f ms, %zu bytes/node\n",
              ms(t1 - t0).count(), ms(t2 - t1).count(), VarTape<double>::bytes_per_node());
  // Reuse after clear records without growing (the first recording's time is mostly the
  // operating system handing out 32 MB of fresh pages; the second one shows the tape's own
  // cost).
  const std::size_t cap = tape.capacity();
  tape.clear();
  const auto t3 = std::chrono::steady_clock::now();
  Var<double> x2 = tape.variable(1.0);
  Var<double> y2 = x2;
  for (int k = 0; k < steps; ++k) y2 = y2 * 0.5 + x2;
  const auto t4 = std::chrono::steady_clock::now();
  tape.backward(y2);
  const auto t5 = std::chrono::steady_clock::now();
  EXPECT_EQ(tape.capacity(), cap);
  EXPECT_NEAR(tape.adjoint(x2), 2.0, 4 * u * 2);
  std::printf("[ info ] same after clear(): record %.1f ms, sweep %.1f ms\n", ms(t4 - t3).count(),
              ms(t5 - t4).count());
}

TEST(Var, FloatTapeWorks) {
  // d/dx x^3 at x = 1.5f = 3 * 2.25 = 6.75 (exact in float).
  VarTape<float> tape;
  Var<float> x = tape.variable(1.5f);
  tape.backward(x * x * x);
  EXPECT_EQ(tape.adjoint(x), 6.75f);
}

// ------------------------------------------------------------------ the reference kernels

namespace {
// Deterministic values with no zeros and no ties (sin of an irrational-step sequence).
Tensor<f50> pseudo(const Shape& s, int seed) {
  Tensor<f50> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = f50(std::sin(0.7 * double(i) + seed) * 1.3);
  return t;
}
// The scalar tape's vector-Jacobian product: adjoint of x under seeds dy, for y = f(x).
template <class F>
Tensor<f50> tape_vjp(const Tensor<f50>& x, const Tensor<f50>& dy, F f) {
  VarTape<f50> tape;
  Tensor<Var<f50>> xv = make_variables(tape, x);
  tape.backward(f(xv), dy);
  return adjoints(tape, xv);
}
double max_abs_diff(const Tensor<f50>& a, const Tensor<f50>& b) {
  EXPECT_EQ(a.shape(), b.shape());
  f50 m = 0;
  for (index_t i = 0; i < a.numel(); ++i)
    if (abs(a[i] - b[i]) > m) m = abs(a[i] - b[i]);
  return static_cast<double>(m);
}
}  // namespace

TEST(Var, ScalarTapeReproducesEveryReferenceVjpInFiftyDigits) {
  // Path #2 = the hand-derived VJPs of the reference kernels, in f50: running each forward on
  // Var<f50> and sweeping with seeds dy must give what *_backward_* gives. Every element on
  // either side is a sum of at most 27 terms (conv: C*R*S = 27) of magnitude <= 1.3^2 * 27,
  // each through at most ~6 roundings (exp, log, divisions): error <= 2 gamma_f50(27 + 6) S
  // with S <= 50, i.e. < 2e-46. Bound 1e-44 (measured: <= 3e-50); a wrong VJP is off by O(1).
  using V = Var<f50>;
  const double tol = 1e-44;
  Conv2dParams prm;
  prm.stride = {2, 1};
  prm.pad = {1, 1};
  const Shape xs{2, 3, 5, 5}, ws{4, 3, 3, 3}, bs{4};
  const Conv2dGeom g = make_conv2d_geom(xs, ws, &bs, prm);
  const Tensor<f50> x = pseudo(xs, 1), w = pseudo(ws, 2), b = pseudo(bs, 3);
  const Tensor<f50> dy = pseudo(g.y_shape(), 4);
  const Tensor<V> xc = make_constants(x), wc = make_constants(w), bc = make_constants(b);
  EXPECT_LT(max_abs_diff(tape_vjp(x, dy, [&](const Tensor<V>& v) {
                           return ref::conv2d_forward<V>(g, v, wc, &bc);
                         }),
                         ref::conv2d_backward_data(g, dy, w)),
            tol);
  EXPECT_LT(max_abs_diff(tape_vjp(w, dy, [&](const Tensor<V>& v) {
                           return ref::conv2d_forward<V>(g, xc, v, &bc);
                         }),
                         ref::conv2d_backward_weights(g, x, dy)),
            tol);
  EXPECT_LT(max_abs_diff(tape_vjp(b, dy, [&](const Tensor<V>& v) {
                           return ref::conv2d_forward<V>(g, xc, wc, &v);
                         }),
                         ref::conv2d_backward_bias(g, dy)),
            tol);

  const Shape ls{3, 5}, lw{4, 5}, lb{4};
  const LinearGeom lg = make_linear_geom(ls, lw, &lb);
  const Tensor<f50> lx = pseudo(ls, 5), lwv = pseudo(lw, 6), lbv = pseudo(lb, 7);
  const Tensor<f50> ldy = pseudo(Shape{3, 4}, 8);
  const Tensor<V> lxc = make_constants(lx), lwc = make_constants(lwv), lbc = make_constants(lbv);
  EXPECT_LT(max_abs_diff(tape_vjp(lx, ldy, [&](const Tensor<V>& v) {
                           return ref::linear_forward<V>(lg, v, lwc, &lbc);
                         }),
                         ref::linear_backward_data(lg, ldy, lwv)),
            tol);
  EXPECT_LT(max_abs_diff(tape_vjp(lwv, ldy, [&](const Tensor<V>& v) {
                           return ref::linear_forward<V>(lg, lxc, v, &lbc);
                         }),
                         ref::linear_backward_weights(lg, lx, ldy)),
            tol);

  const Tensor<f50> a = pseudo(ls, 9), da = pseudo(ls, 10);
  auto elementwise = [&](auto fwd, const Tensor<f50>& expected) {
    return max_abs_diff(tape_vjp(a, da, fwd), expected);
  };
  EXPECT_LT(elementwise([](const Tensor<V>& v) { return ref::relu_forward(v); },
                        ref::relu_backward(a, da)),
            tol);
  EXPECT_LT(elementwise([](const Tensor<V>& v) { return ref::sigmoid_forward(v); },
                        ref::sigmoid_backward(ref::sigmoid_forward(a), da)),
            tol);
  EXPECT_LT(elementwise([](const Tensor<V>& v) { return ref::tanh_forward(v); },
                        ref::tanh_backward(ref::tanh_forward(a), da)),
            tol);
  EXPECT_LT(elementwise([](const Tensor<V>& v) { return ref::softmax_forward(v); },
                        ref::softmax_backward(ref::softmax_forward(a), da)),
            tol);
  EXPECT_LT(elementwise([](const Tensor<V>& v) { return ref::log_softmax_forward(v); },
                        ref::log_softmax_backward(ref::log_softmax_forward(a), da)),
            tol);

  const Tensor<f50> one = Tensor<f50>::scalar(1);
  const std::vector<index_t> targets = {1, 4, 0};
  EXPECT_LT(max_abs_diff(tape_vjp(a, one, [&](const Tensor<V>& v) {
                           return ref::cross_entropy_forward(v, targets);
                         }),
                         ref::cross_entropy_backward(a, targets, f50(1))),
            tol);
  const Tensor<f50> target = pseudo(ls, 11);
  const Tensor<V> target_c = make_constants(target);
  EXPECT_LT(max_abs_diff(tape_vjp(a, one, [&](const Tensor<V>& v) {
                           return ref::mse_loss_forward(v, target_c);
                         }),
                         ref::mse_loss_backward(a, target, f50(1))),
            tol);

  Pool2dParams pp;
  pp.kernel = {2, 2};
  pp.stride = {2, 2};
  pp.pad = {1, 1};
  const Pool2dGeom pg = make_pool2d_geom(xs, pp, "max_pool2d");
  const Tensor<f50> pdy = pseudo(pg.y_shape(), 12);
  EXPECT_LT(max_abs_diff(tape_vjp(x, pdy, [&](const Tensor<V>& v) {
                           return ref::max_pool2d_forward(pg, v);
                         }),
                         ref::max_pool2d_backward(pg, x, pdy)),
            tol);
  EXPECT_LT(max_abs_diff(tape_vjp(x, pdy, [&](const Tensor<V>& v) {
                           return ref::avg_pool2d_forward(pg, v);
                         }),
                         ref::avg_pool2d_backward(pg, pdy)),
            tol);
}

// Every function the README offers for generic user code, and the four operators with two
// distinct variables, against derivatives worked by hand. Where the value is transcendental
// the expected number is written out (sin 1 = 0.8414709848078965..., cos 1 = 0.5403023058681398...,
// e = 2.718281828459045...) and the tape's partial is one libm call, within 2u of it.
TEST(Var, EveryFunctionHasItsDerivativeAtAPointWorkedByHand) {
  const double two_u = 2 * u;
  auto derivative = [](auto f, double x0) {
    VarTape<double> tape;
    const Var<double> x = tape.variable(x0);
    tape.backward(f(x));
    return tape.adjoint(x);
  };
  using V = Var<double>;
  // exp' = exp: 1 at 0 (exact), e at 1
  EXPECT_EQ(derivative([](const V& x) { return exp(x); }, 0.0), 1.0);
  EXPECT_NEAR(derivative([](const V& x) { return exp(x); }, 1.0), 2.718281828459045, two_u * 2.72);
  // log' = 1/x: 2 at 0.5, -0.25 never (log of a negative is NaN); 1/3 at 3 (one rounding)
  EXPECT_EQ(derivative([](const V& x) { return log(x); }, 0.5), 2.0);
  EXPECT_EQ(derivative([](const V& x) { return log(x); }, 3.0), 1.0 / 3.0);
  // tanh' = 1 - tanh^2: 1 at 0 (exact); at 1: 1 - 0.7615941559557649^2 = 0.41997434161402614
  EXPECT_EQ(derivative([](const V& x) { return tanh(x); }, 0.0), 1.0);
  EXPECT_NEAR(derivative([](const V& x) { return tanh(x); }, 1.0), 0.41997434161402614, 8 * u);
  // sqrt' = 1/(2 sqrt x): 1 at 0.25, 0.25 at 4 (exact)
  EXPECT_EQ(derivative([](const V& x) { return sqrt(x); }, 0.25), 1.0);
  EXPECT_EQ(derivative([](const V& x) { return sqrt(x); }, 4.0), 0.25);
  // abs' = sign (0 at 0, the convention)
  EXPECT_EQ(derivative([](const V& x) { return abs(x); }, -0.5), -1.0);
  EXPECT_EQ(derivative([](const V& x) { return abs(x); }, 0.0), 0.0);
  EXPECT_EQ(derivative([](const V& x) { return abs(x); }, 7.0), 1.0);
  // sin' = cos: 1 at 0, cos 1 = 0.5403023058681398 at 1
  EXPECT_EQ(derivative([](const V& x) { return sin(x); }, 0.0), 1.0);
  EXPECT_NEAR(derivative([](const V& x) { return sin(x); }, 1.0), 0.5403023058681398, two_u);
  // cos' = -sin: -sin 1 = -0.8414709848078965 at 1, +sin 1 at -1
  EXPECT_NEAR(derivative([](const V& x) { return cos(x); }, 1.0), -0.8414709848078965, two_u);
  EXPECT_NEAR(derivative([](const V& x) { return cos(x); }, -1.0), 0.8414709848078965, two_u);
  // unary minus
  EXPECT_EQ(derivative([](const V& x) { return -x; }, 2.0), -1.0);
}

TEST(Var, EveryOperatorGivesBothDistinctOperandsTheirPartials) {
  // a = 3, b = 4 (both variables):  d(a+b) = (1, 1), d(a-b) = (1, -1), d(a*b) = (b, a) =
  // (4, 3), d(a/b) = (1/b, -a/b^2) = (0.25, -0.1875); all exact.
  struct Expect {
    double da, db;
  };
  auto partials = [](auto f) {
    VarTape<double> tape;
    const Var<double> a = tape.variable(3.0), b = tape.variable(4.0);
    tape.backward(f(a, b));
    return Expect{tape.adjoint(a), tape.adjoint(b)};
  };
  using V = Var<double>;
  const Expect add = partials([](const V& a, const V& b) { return a + b; });
  const Expect sub = partials([](const V& a, const V& b) { return a - b; });
  const Expect mul = partials([](const V& a, const V& b) { return a * b; });
  const Expect div = partials([](const V& a, const V& b) { return a / b; });
  EXPECT_EQ(add.da, 1.0);
  EXPECT_EQ(add.db, 1.0);
  EXPECT_EQ(sub.da, 1.0);
  EXPECT_EQ(sub.db, -1.0);
  EXPECT_EQ(mul.da, 4.0);
  EXPECT_EQ(mul.db, 3.0);
  EXPECT_EQ(div.da, 0.25);
  EXPECT_EQ(div.db, -0.1875);
  // and a chain through every function at once: f = sin(a) cos(b) + exp(a - b) + log(b) *
  // sqrt(a) + tanh(a * b) + abs(a - 2 b) at a = 0.5, b = 0.25:
  //   df/da = cos a cos b + e^(a-b) + log(b) / (2 sqrt a) + b (1 - tanh^2(ab)) + sign(a-2b)
  //   df/db = -sin a sin b - e^(a-b) + sqrt(a) / b + a (1 - tanh^2(ab)) - 2 sign(a-2b)
  // with a - 2b = 0: sign 0 by the convention.
  VarTape<double> tape;
  const Var<double> a = tape.variable(0.5), b = tape.variable(0.25);
  tape.backward(sin(a) * cos(b) + exp(a - b) + log(b) * sqrt(a) + tanh(a * b) + abs(a - 2 * b));
  const double A = 0.5, B = 0.25, t = std::tanh(A * B);
  const double da = std::cos(A) * std::cos(B) + std::exp(A - B) + std::log(B) / (2 * std::sqrt(A)) +
                    B * (1 - t * t);
  const double db = -std::sin(A) * std::sin(B) - std::exp(A - B) + std::sqrt(A) / B +
                    A * (1 - t * t);
  // ~20 roundings (libm calls count 2) on terms of size < 2 on each side
  EXPECT_NEAR(tape.adjoint(a), da, 2 * gamma<double>(20) * 4);
  EXPECT_NEAR(tape.adjoint(b), db, 2 * gamma<double>(20) * 6);
}
