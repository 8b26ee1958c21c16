// The four-way gradient check: the presets pass in float and double, and the judge attributes
// a disagreement to the way that stands apart and mistrusts mostly-zero gradients.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <sstream>
#include <utility>

#include "tapegrad/gradcheck/fourway.hpp"

using namespace tapegrad;
using namespace tapegrad::gradcheck;

namespace {
template <class T>
void expect_passes(const std::string& model, index_t batch, std::uint64_t seed) {
  FourWayOptions opt;
  opt.batch = batch;
  opt.seed = seed;
  const FourWayReport rep = four_way_check<T>(load_spec(model), opt);
  std::ostringstream os;
  rep.print(os);
  EXPECT_TRUE(rep.passed()) << os.str();
  EXPECT_FALSE(rep.mistrusted) << os.str();
  for (const TensorRow& r : rep.rows) {
    // FD in f50 agrees with the Var<f50> reference far below double rounding: the two 50-digit
    // ways are consistent, so the reference is not the suspect.
    EXPECT_GT(r.way[way_finite_diff].checked, 0) << r.name;
    EXPECT_LT(r.way[way_finite_diff].max_rel, 1e-24) << r.name;
  }
}
}  // namespace

TEST(FourWay, SeedNetworkPassesInDouble) { expect_passes<double>("seed", 2, 1); }
TEST(FourWay, SeedNetworkPassesInFloat) { expect_passes<float>("seed", 2, 1); }
TEST(FourWay, Lenet5PassesInDouble) { expect_passes<double>("lenet5", 2, 1); }
TEST(FourWay, Lenet5PassesInFloat) { expect_passes<float>("lenet5", 2, 1); }

TEST(FourWay, SmallSpecWithEveryLayerKindPasses) {
  const NetSpec spec = parse_spec(
      "input 2 6 6\n"
      "conv2d out=4 kernel=3 pad=1 stride=2 groups=2\n"
      "tanh\n"
      "avg_pool2d kernel=2 stride=1 pad=1\n"
      "conv2d out=3 kernel=2 dilation=2\n"
      "sigmoid\n"
      "max_pool2d kernel=2 stride=1\n"
      "flatten\n"
      "linear out=3\n"
      "relu\n"
      "linear out=2 bias=false\n"
      "loss mse\n", "every-layer");
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    FourWayOptions opt;
    opt.batch = 3;
    opt.seed = seed;
    opt.fd_max_per_tensor = 1000;  // small tensors: every element
    const FourWayReport rep = four_way_check<double>(spec, opt);
    std::ostringstream os;
    rep.print(os);
    EXPECT_TRUE(rep.passed()) << os.str();
    // Small tensors: finite differences cover every element.
    EXPECT_EQ(rep.rows[0].way[way_finite_diff].checked + rep.rows[0].kinks, 2 * 3 * 6 * 6);
  }
}

namespace {
// A reference gradient and three copies of it, exactly representable in double.
struct Fixture {
  Tensor<f50> ref{Shape{4}, std::vector<f50>{f50(1), f50(-2), f50(0.5), f50(4)}};
  Tensor<double> a{Shape{4}, {1.0, -2.0, 0.5, 4.0}};
  Tensor<double> b = a, c = a;
  std::vector<index_t> fd_index{0, 1, 2, 3};
  std::vector<f50> fd_value{f50(1), f50(-2), f50(0.5), f50(4)};
  std::vector<bool> fd_kink{false, false, false, false};
};
}  // namespace

TEST(FourWayJudge, ExactAgreementPasses) {
  Fixture f;
  const TensorRow r = judge_tensor<double>("w", f.ref, {&f.a, &f.b, &f.c}, f.fd_index,
                                           f.fd_value, f.fd_kink, 10);
  EXPECT_TRUE(r.pass());
  EXPECT_EQ(r.scale, 4.0);
  EXPECT_EQ(r.way[way_op_tape].max_abs, 0.0);
  EXPECT_EQ(r.attribution, "");
}

TEST(FourWayJudge, OneWrongWayStandsApart) {
  // Scalar tape off by 1e-3 at element 2: far above gamma_double(10) * 4 ~ 4.4e-15.
  Fixture f;
  f.b[2] += 1e-3;
  const TensorRow r = judge_tensor<double>("w", f.ref, {&f.a, &f.b, &f.c}, f.fd_index,
                                           f.fd_value, f.fd_kink, 10);
  EXPECT_FALSE(r.pass());
  EXPECT_FALSE(r.way[way_scalar_tape].pass);
  EXPECT_EQ(r.way[way_scalar_tape].worst, 2);
  EXPECT_TRUE(r.way[way_op_tape].pass);
  EXPECT_EQ(r.attribution, "scalar tape stands apart from the other three");
}

TEST(FourWayJudge, OneUlpIsWithinTolerance) {
  // One ulp at 4 is 2^-50 = 8.9e-16 < gamma_double(10) * 4 = 4.4e-15.
  Fixture f;
  f.a[3] = std::nextafter(4.0, 5.0);
  const TensorRow r = judge_tensor<double>("w", f.ref, {&f.a, &f.b, &f.c}, f.fd_index,
                                           f.fd_value, f.fd_kink, 10);
  EXPECT_TRUE(r.pass());
  EXPECT_EQ(r.way[way_op_tape].max_ulp, 1u);
}

TEST(FourWayJudge, KinksAreExcludedAndCounted) {
  // A wrong FD value at a flagged kink does not fail the check; it is counted.
  Fixture f;
  f.fd_value[1] = f50(7);
  f.fd_kink[1] = true;
  const TensorRow r = judge_tensor<double>("w", f.ref, {&f.a, &f.b, &f.c}, f.fd_index,
                                           f.fd_value, f.fd_kink, 10);
  EXPECT_TRUE(r.pass());
  EXPECT_EQ(r.kinks, 1);
  EXPECT_EQ(r.way[way_finite_diff].checked, 3);
  f.fd_kink[1] = false;
  const TensorRow r2 = judge_tensor<double>("w", f.ref, {&f.a, &f.b, &f.c}, f.fd_index,
                                            f.fd_value, f.fd_kink, 10);
  EXPECT_EQ(r2.attribution, "finite diff stands apart from the other three");
}

TEST(FourWayJudge, MostlyZeroGradientIsMistrusted) {
  Tensor<f50> ref(Shape{4});
  ref[0] = f50(1);
  Tensor<double> a(Shape{4});
  a[0] = 1.0;
  const TensorRow r = judge_tensor<double>("w", ref, {&a, &a, &a}, {0}, {f50(1)}, {false}, 10);
  EXPECT_TRUE(r.pass());
  EXPECT_EQ(r.zeros, 3);
  EXPECT_TRUE(r.mistrusted);
}

// input 1 3 3 -> conv2d(1x1, bias) -> flatten -> linear(1) -> mse. random_problem centres each
// linear row (sum_j fw_j = 0 up to rounding), so the bias gradient
//   db = sum_{n,j} dy(n,j) = sum_n dout_n * sum_j fw_j
// cancels to ~1e-16 of its terms |dout_n fw_j|: every way (computing in T) is off by about one
// ulp of the terms, i.e. ~1e-16 |dout| |fw| in double, while max |db| itself is ~1e-17 and
// gamma(K) * max |db| ~ 1e-30 (K ~ 20) would call that a failure. The check judges at
// gamma(K) * G_abs[i], G_abs = sum of |terms| (here sum_{n,j} |dout_n| |fw_j| + forward
// error), which admits it. The test also asserts that the old per-tensor tolerance
// gamma(K) * max |g| is exceeded for the bias on some seed, i.e. this case is a real
// regression test for the cancellation-aware scale, not a vacuous one.
TEST(FourWay, BiasGradientThatCancelsIsNotAFalseFailure) {
  const NetSpec spec = parse_spec(
      "input 1 3 3\n"
      "conv2d out=1 kernel=1 bias=true\n"
      "flatten\n"
      "linear out=1\n"
      "loss mse\n", "cancelling-bias");
  auto run = [&](auto zero, index_t batch) {
    using T = decltype(zero);
    int old_tolerance_would_fail = 0;
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
      FourWayOptions opt;
      opt.batch = batch;
      opt.seed = seed;
      const FourWayReport rep = four_way_check<T>(spec, opt);
      std::ostringstream os;
      rep.print(os);
      EXPECT_TRUE(rep.passed()) << os.str();
      ASSERT_EQ(rep.rows.size(), 5u) << os.str();  // x, conv w, conv b, linear w, linear b
      const TensorRow& db = rep.rows[2];
      // The cancellation is real: the terms' magnitudes dwarf the sum they cancel to.
      EXPECT_GT(db.abs_scale, 1e6 * db.scale) << os.str();
      const double old_tol = gamma<T>(static_cast<double>(rep.depth)) * db.scale;
      bool exceeded = false;
      for (int w = 0; w < 3; ++w)
        if (db.way[static_cast<std::size_t>(w)].max_abs > old_tol) exceeded = true;
      old_tolerance_would_fail += exceeded ? 1 : 0;
      EXPECT_EQ(db.strict, !exceeded) << os.str();  // flagged "ok*" exactly then
      // A genuinely wrong bias gradient (off by 1e-3 of its terms) still fails: the bound is
      // ~K u of the terms, nowhere near their size.
      EXPECT_LT(db.tol, 1e-3 * db.abs_scale) << os.str();
    }
    EXPECT_GT(old_tolerance_would_fail, 0) << ScalarTraits<T>::name << " batch " << batch;
  };
  run(0.0, 1);
  run(0.0, 2);
  run(0.0f, 1);
  run(0.0f, 2);
}

TEST(FourWayJudge, PerElementBoundJudgesEachElementAtItsOwnTolerance) {
  // Element 0 has a big bound, element 1 a tiny one: the same error 1e-10 passes at 0
  // (gamma_double(10) * 1e6 ~ 1.1e-9) and fails at 1 (gamma_double(10) * 1 ~ 1.1e-15).
  Tensor<f50> ref{Shape{2}, std::vector<f50>{f50(1), f50(1)}};
  Tensor<f50> g_abs{Shape{2}, std::vector<f50>{f50(1e6), f50(1)}};
  Tensor<double> ok{Shape{2}, {1.0 + 1e-10, 1.0}};
  Tensor<double> bad{Shape{2}, {1.0, 1.0 + 1e-10}};
  const TensorRow r = judge_tensor<double>("b", ref, g_abs, {&ok, &ok, &bad}, {}, {}, {}, 10);
  EXPECT_TRUE(r.way[way_op_tape].pass);
  EXPECT_LT(r.way[way_op_tape].max_tol_frac, 1.0);
  EXPECT_FALSE(r.way[way_hand_written].pass);
  EXPECT_GT(r.way[way_hand_written].max_tol_frac, 1.0);
  EXPECT_EQ(r.abs_scale, 1e6);
  EXPECT_EQ(r.attribution, "hand-written stands apart from the other three");
}

// ---------------------------------------------------------------- decisions (decisions.hpp)
namespace {
Tensor<f50> f50s(const Shape& s, std::vector<double> v) {
  std::vector<f50> out;
  for (double d : v) out.push_back(f50(d));
  return Tensor<f50>(s, std::move(out));
}
}  // namespace

TEST(Decisions, ReluChoosesItsInputOnlyAboveZeroAndTheZeroWinsTheTie) {
  // relu = max(0, x) with the zero first: x = 0 takes the 0 (relu'(0) = 0).
  const NetSpec spec = parse_spec("input 4\nrelu\nflatten\nlinear out=1\nloss mse\n", "relu");
  const Decisions d = *layer_decisions(spec.layers[0], f50s(Shape{1, 4}, {-1, 0, 2, 1e-30}));
  EXPECT_EQ(d.chosen[0], -1);
  EXPECT_EQ(d.runner_up[0], 0);
  EXPECT_EQ(d.chosen[1], -1);
  EXPECT_EQ(d.runner_up[1], 1);
  EXPECT_EQ(d.chosen[2], 2);
  EXPECT_EQ(d.runner_up[2], -1);
  EXPECT_EQ(d.chosen[3], 3);
  EXPECT_FALSE(layer_decisions(spec.layers[1], f50s(Shape{1, 4}, {1, 2, 3, 4})));  // flatten
}

TEST(Decisions, MaxPoolChoosesTheFirstMaximumAndNamesItsRunnerUp) {
  // 1x1x2x3 input, kernel 2 stride 1: windows {0,1,3,4} and {1,2,4,5} (row-major flat
  // indices).  x = [1 5 5 / 2 4 -1]: window 0 max 5 at 1, runner-up 4 at 4; window 1 ties
  // 5 at 1 and 2: the first (1) wins, the runner-up is the other 5 (margin 0).
  const NetSpec spec =
      parse_spec("input 1 2 3\nmax_pool2d kernel=2 stride=1\nflatten\nlinear out=1\nloss mse\n",
                 "pool");
  const Decisions d = *layer_decisions(spec.layers[0], f50s(Shape{1, 1, 2, 3}, {1, 5, 5, 2, 4, -1}));
  ASSERT_EQ(d.chosen.shape(), (Shape{1, 1, 1, 2}));
  EXPECT_EQ(d.chosen[0], 1);
  EXPECT_EQ(d.runner_up[0], 4);
  EXPECT_EQ(d.chosen[1], 1);
  EXPECT_EQ(d.runner_up[1], 2);
  // A one-element window has no rival.
  const NetSpec one = parse_spec("input 1 1 2\nmax_pool2d kernel=1\nflatten\nlinear out=1\nloss mse\n", "one");
  EXPECT_EQ(layer_decisions(one.layers[0], f50s(Shape{1, 1, 1, 2}, {3, 4})).value().runner_up[0], -2);
}

// A flip is excused (and the branch follows the tested choice) iff its margin is within
// gamma(K) * (A_ref + A_tested); the bound is recomputed here from its definition.
TEST(Decisions, FlipIsExcusedJustBelowTheForwardErrorBoundAndNotJustAbove) {
  const NetSpec spec =
      parse_spec("input 1 1 2\nmax_pool2d kernel=1,2\nflatten\nlinear out=1\nloss mse\n", "tie");
  const double gam = gamma<float>(10.0);
  const double A0 = 3.0, A1 = 5.0;  // the magnitudes behind the two inputs
  const double bound = gam * (A0 + A1);
  for (double f : {0.99, 1.01}) {
    const double margin = f * bound;
    // reference: x0 = 1 + margin wins; the tested precision saw x1 ahead.
    const std::vector<Tensor<f50>> acts{f50s(Shape{1, 1, 1, 2}, {1.0 + margin, 1.0}),
                                        f50s(Shape{1, 1, 1, 1}, {1.0 + margin})};
    const std::vector<Tensor<f50>> acts_abs{f50s(Shape{1, 1, 1, 2}, {A0, A1}),
                                            f50s(Shape{1, 1, 1, 1}, {A1})};
    const std::vector<Tensor<f50>> tested{f50s(Shape{1, 1, 1, 2}, {1.0, 1.0 + 2 * margin}),
                                          f50s(Shape{1, 1, 1, 1}, {1.0})};
    // (the layers after the pool take no decisions; their activations are placeholders)
    std::vector<Tensor<f50>> a = acts, aa = acts_abs, t = tested;
    a.resize(spec.layers.size() + 1, Tensor<f50>(Shape{1, 1}));
    aa.resize(spec.layers.size() + 1, Tensor<f50>(Shape{1, 1}));
    t.resize(spec.layers.size() + 1, Tensor<f50>(Shape{1, 1}));
    const std::vector<std::optional<Decisions>> ref_dec = reference_decisions(spec, a);
    const DecisionAudit audit = audit_decisions(spec, ref_dec, a, aa, &t, gam);
    ASSERT_EQ(audit.flips.size(), 1u) << f;
    const Flip& fl = audit.flips[0];
    EXPECT_EQ(fl.reference_choice, 0);
    EXPECT_EQ(fl.tested_choice, 1);
    EXPECT_NEAR(fl.margin, margin, 1e-3 * margin);
    EXPECT_NEAR(fl.bound, bound, 1e-12 * bound);
    EXPECT_EQ(fl.within_bound, f < 1) << f;
    EXPECT_EQ(audit.follows_reference(), f > 1) << f;
    if (f < 1) {
      EXPECT_EQ(audit.branch[0][0], 1);  // the branch takes the tested precision's choice
    } else {
      EXPECT_EQ(audit.branch[0].numel(), 0);  // a forward bug is not excused
    }
    EXPECT_EQ(audit.near_ties, f < 1 ? 1 : 0);  // the reference's own margin is the same one
  }
}

// The reference along a branch is the exact gradient of that branch. input [a, b] ->
// max_pool kernel 1x2 -> linear (w, no bias) -> mse against t (count 1):
//   L = (w y - t)^2,  y = the chosen input;  dL/dy = 2 (w y - t) w,  dL/dw = 2 (w y - t) y.
// a = 0.75 > b = 0.5, w = 2, t = 0.25. Along the reference's branch (y = a): dL/dy =
// 2 (1.5 - 0.25) 2 = 5, dL/dw = 2 * 1.25 * 0.75 = 1.875. Forced onto b: dL/dy = 2 (1 - 0.25) 2
// = 3 at element 1, dL/dw = 2 * 0.75 * 0.5 = 0.75.
TEST(Decisions, ReferenceAlongABranchIsThatBranchsExactGradient) {
  const NetSpec spec = parse_spec(
      "input 1 1 2\nmax_pool2d kernel=1,2\nflatten\nlinear out=1 bias=false\nloss mse\n", "br");
  NetValues<f50> v;
  v.x = f50s(Shape{1, 1, 1, 2}, {0.75, 0.5});
  v.params = {f50s(Shape{1, 1}, {2.0})};
  v.targets.values = f50s(Shape{1, 1}, {0.25});
  const WayResult<f50> plain = scalar_tape_way(spec, v);
  EXPECT_EQ(plain.grad[0][0], f50(5));
  EXPECT_EQ(plain.grad[0][1], f50(0));
  EXPECT_EQ(plain.grad[1][0], f50(1.875));
  std::vector<Tensor<index_t>> branch(spec.layers.size(), Tensor<index_t>(Shape{0}));
  branch[0] = Tensor<index_t>(Shape{1, 1, 1, 1}, index_t{1});
  const WayResult<f50> forced = scalar_tape_way(spec, v, &branch);
  EXPECT_EQ(forced.grad[0][0], f50(0));
  EXPECT_EQ(forced.grad[0][1], f50(3));
  EXPECT_EQ(forced.grad[1][0], f50(0.75));
  // The magnitude bound routes along the same branch: nothing reaches element 0.
  const auto gabs = abs_gradient_scales(spec, v, &branch);
  EXPECT_EQ(gabs[0][0], f50(0));
  EXPECT_GT(gabs[0][1], f50(3));
}

// Regression case found by the deep property pass (issue 16): a max-pool window whose two
// largest inputs are 2.5e-10 apart, well inside float's forward error (~2e-7 here): all three
// float ways take the other element than the 50-digit reference, so against the reference
// conv2.w was off by 1.2e3 x its tolerance although nothing is wrong. The check must name the
// flips and judge those ways along their branch: a pass.
TEST(FourWay, MaxPoolNearTieTakenDifferentlyByFloatIsNotAFalseFailure) {
  const NetSpec spec = parse_spec(
      "input 1 4 5\n"
      "conv2d out=1 kernel=3,1 stride=1,1 pad=1,1 dilation=1,2 groups=1 bias=true\n"
      "avg_pool2d kernel=1 stride=1\n"
      "conv2d out=1 kernel=3,1 stride=1,1 pad=0,1 dilation=1,1 groups=1 bias=false\n"
      "max_pool2d kernel=2 stride=1\n"
      "flatten\n"
      "linear out=1 bias=false\n"
      "loss mse\n", "issue16-seed49");
  FourWayOptions opt;
  opt.batch = 2;
  opt.seed = 49;
  const FourWayReport rep = four_way_check<float>(spec, opt);
  std::ostringstream os;
  rep.print(os);
  EXPECT_TRUE(rep.passed()) << os.str();
  ASSERT_FALSE(rep.flips.empty()) << os.str();
  for (const DecisionNote& d : rep.flips) {
    EXPECT_TRUE(d.within_bound) << os.str();
    EXPECT_EQ(d.layer, "max_pool2d2 (spec line 5)");
    EXPECT_EQ(d.ways, "op tape, hand-written, scalar tape");
  }
  EXPECT_NE(os.str().find("max_pool2d2 (spec line 5) output [0,0,0,7]: reference takes input "
                          "[0,0,0,8]"),
            std::string::npos)
      << os.str();
  // Not vacuous: judged against the reference itself (the old check), conv2.w fails.
  const NetValues<float> vt = random_problem(spec, 2, 49).cast<float>();
  const NetValues<f50> v50 = vt.cast<f50>();
  const WayResult<float> w1 = op_tape_way(spec, vt);
  const WayResult<f50> ref = scalar_tape_way(spec, v50);
  const auto gabs = abs_gradient_scales(spec, v50);
  const std::size_t conv2w = 3;  // x, conv1.w, conv1.b, conv2.w
  ASSERT_EQ(spec.params[conv2w - 1].name, "conv2.w");
  const TensorRow old = judge_tensor<float>("conv2.w", ref.grad[conv2w], gabs[conv2w],
                                            {&w1.grad[conv2w], &w1.grad[conv2w], &w1.grad[conv2w]},
                                            {}, {}, {}, rep.depth);
  EXPECT_FALSE(old.pass());
  EXPECT_GT(old.way[way_op_tape].max_tol_frac, 100.0);
}

// The same network in double takes every decision as the reference does: no flip is noted
// and the table has no decisions line (seed and lenet5 tables keep their shape).
TEST(FourWay, NoFlipMeansNoDecisionsLine) {
  const FourWayReport rep = four_way_check<double>(load_spec("seed"));
  std::ostringstream os;
  rep.print(os);
  EXPECT_TRUE(rep.flips.empty());
  EXPECT_EQ(os.str().find("decisions:"), std::string::npos) << os.str();
}

// ---------------------------------------------------------------- every row's bound, both sides
// judge_tensor (judge.hpp) passes way w at element i iff |a_i - ref_i| <= gamma_T(K) G_abs[i]
// (ways 1-3) and finite differences iff |fd_j - ref_j| <= 1e-24 max(S_abs, 1). Each test puts
// one value at the double just inside and just outside the bound recomputed here, and the
// report's verdict must follow the row.
namespace {
double gamma_by_hand(double k, double u) { return k * u / (1 - k * u); }

// The largest double d with |d - r| <= t (d >= r), and the next one up.
std::pair<double, double> just_inside_outside(const f50& r, double t) {
  const f50 b = r + f50(t);
  double d = static_cast<double>(b);
  while (f50(d) > b) d = std::nextafter(d, -INFINITY);
  while (f50(std::nextafter(d, INFINITY)) <= b) d = std::nextafter(d, INFINITY);
  return {d, std::nextafter(d, INFINITY)};
}

struct BoundFixture {
  Tensor<f50> ref{Shape{4}, std::vector<f50>{f50(1), f50(-2), f50(0.5), f50(4)}};
  Tensor<f50> g_abs{Shape{4}, std::vector<f50>{f50(10), f50(3), f50(7), f50(4)}};
  std::vector<index_t> fd_index{0, 1, 2, 3};
  std::vector<f50> fd_value{f50(1), f50(-2), f50(0.5), f50(4)};
  std::vector<bool> fd_kink{false, false, false, false};
  index_t depth = 10;
};

FourWayReport report_of(const TensorRow& row) {
  FourWayReport rep;
  rep.model = "fixture";
  rep.dtype = "double";
  rep.depth = 10;
  rep.rows.push_back(row);
  return rep;
}
}  // namespace

TEST(FourWayJudgeBound, EachWayFailsJustAboveItsElementToleranceAndPassesJustBelow) {
  BoundFixture f;
  const double gam = gamma_by_hand(10, std::ldexp(1.0, -53));
  for (int w = 0; w < 3; ++w)
    for (index_t i = 0; i < 4; ++i) {
      const double tol = gam * static_cast<double>(f.g_abs[i]);
      const auto [in, out] = just_inside_outside(f.ref[i], tol);
      for (bool outside : {false, true}) {
        std::array<Tensor<double>, 3> ways;
        for (auto& t : ways) t = f.ref.cast<double>();
        ways[static_cast<std::size_t>(w)][i] = outside ? out : in;
        const TensorRow row = judge_tensor<double>("w", f.ref, f.g_abs,
                                                   {&ways[0], &ways[1], &ways[2]}, f.fd_index,
                                                   f.fd_value, f.fd_kink, f.depth);
        SCOPED_TRACE(std::string(way_name(w)) + " element " + std::to_string(i) +
                     (outside ? " just outside" : " just inside"));
        EXPECT_EQ(row.way[static_cast<std::size_t>(w)].pass, !outside);
        EXPECT_EQ(row.pass(), !outside);
        EXPECT_EQ(row.way[static_cast<std::size_t>(w)].max_tol_frac > 1.0, outside);
        EXPECT_GT(row.way[static_cast<std::size_t>(w)].max_tol_frac, 0.5);  // really near it
        for (int o = 0; o < num_ways; ++o) {
          if (o != w) {
            EXPECT_TRUE(row.way[static_cast<std::size_t>(o)].pass);
          }
        }
        const FourWayReport rep = report_of(row);
        EXPECT_EQ(rep.passed(), !outside);
        EXPECT_EQ(rep.verdict() == "FAILED", outside);
        if (outside) {
          EXPECT_EQ(row.way[static_cast<std::size_t>(w)].worst, i);
          EXPECT_EQ(row.attribution, std::string(way_name(w)) + " stands apart from the other three");
          std::ostringstream os;
          rep.print(os);
          EXPECT_NE(os.str().find("FAIL  (" + row.attribution + ")"), std::string::npos) << os.str();
        }
      }
    }
}

TEST(FourWayJudgeBound, FiniteDifferencesFailJustAboveTheirToleranceAndPassJustBelow) {
  // fd_tol = 1e-24 * max(S_abs, 1) = 1e-23 (S_abs = 10); with S_abs < 1 it is 1e-24.
  for (const double s_abs : {10.0, 0.25}) {
    BoundFixture f;
    f.g_abs[0] = f50(s_abs);
    for (index_t i = 1; i < 4; ++i) f.g_abs[i] = f50(s_abs);
    const double fd_tol = 1e-24 * std::max(s_abs, 1.0);
    const Tensor<double> a = f.ref.cast<double>();
    const double gam = gamma_by_hand(10, std::ldexp(1.0, -53));
    for (const double factor : {1 - 1e-9, 1 + 1e-9}) {
      std::vector<f50> fd = f.fd_value;
      fd[2] = f.ref[2] - f50(factor * fd_tol);  // f50 resolves 1e-9 of 1e-24 easily
      const TensorRow row =
          judge_tensor<double>("w", f.ref, f.g_abs, {&a, &a, &a}, f.fd_index, fd, f.fd_kink, 10);
      EXPECT_EQ(row.fd_tol, fd_tol);
      EXPECT_EQ(row.way[way_finite_diff].pass, factor < 1) << s_abs;
      EXPECT_EQ(row.pass(), factor < 1) << s_abs;
      EXPECT_EQ(report_of(row).passed(), factor < 1);
      if (factor > 1) {
        EXPECT_EQ(row.attribution, "finite diff stands apart from the other three");
      }
      // ways 1-3's tolerance is unaffected by the FD bound: gamma(K) * G_abs
      EXPECT_EQ(row.tol, gam * s_abs);
      // a flagged kink is never judged, however far off
      std::vector<bool> kink = f.fd_kink;
      kink[2] = true;
      fd[2] = f50(1e6);
      const TensorRow k =
          judge_tensor<double>("w", f.ref, f.g_abs, {&a, &a, &a}, f.fd_index, fd, kink, 10);
      EXPECT_TRUE(k.pass());
      EXPECT_EQ(k.kinks, 1);
      EXPECT_EQ(k.way[way_finite_diff].checked, 3);
    }
  }
}

TEST(FourWayJudgeBound, StrictOnlyWithinGammaTimesSAndMistrustAboveHalfZeros) {
  // strict: every way within gamma(K) * S, S = max |ref| = 4 (here G_abs = 40 admits more).
  BoundFixture f;
  for (index_t i = 0; i < 4; ++i) f.g_abs[i] = f50(40);
  const double gam = gamma_by_hand(10, std::ldexp(1.0, -53));
  const auto [in, out] = just_inside_outside(f.ref[3], gam * 4);
  for (bool outside : {false, true}) {
    Tensor<double> a = f.ref.cast<double>();
    a[3] = outside ? out : in;
    const TensorRow row =
        judge_tensor<double>("w", f.ref, f.g_abs, {&a, &a, &a}, f.fd_index, f.fd_value, f.fd_kink, 10);
    EXPECT_TRUE(row.pass());
    EXPECT_EQ(row.strict, !outside);
    EXPECT_EQ(report_of(row).verdict(),
              outside ? "passed; 1 row(s) pass only at gamma(K) * G_abs (ok*)"
                      : "passed; strict (every row also within gamma(K) * S)");
  }
  // mistrusted iff more than half of the reference's entries are exact zeros: 2 of 4 is not
  for (int zeros : {2, 3}) {
    Tensor<f50> ref(Shape{4});
    for (index_t i = zeros; i < 4; ++i) ref[i] = f50(1);
    const Tensor<double> a = ref.cast<double>();
    const TensorRow row = judge_tensor<double>("w", ref, {&a, &a, &a}, {}, {}, {}, 10);
    EXPECT_EQ(row.zeros, zeros);
    EXPECT_EQ(row.mistrusted, zeros == 3);
  }
}

// Hand-made flips (float values exact in float): a window whose exact values are 2^-33 apart
// but round to the same float (float takes the first, the reference the larger second), and
// a relu input 2^-24 - 2^-47 > 0 whose float product rounds to exactly 0 before the bias
// (without a fused multiply-add: the scalar tape's Var<float> never fuses). The float ways
// that round so take the other piece; judged along it (and with the magnitude bound routed
// along it: the element the reference's routing never reaches gets its own bound) they pass.
TEST(FourWay, HandMadeFlipsAreJudgedAlongTheTestedBranch) {
  const float one_ulp = std::ldexp(1.0f, -23);
  {
    // y = w x + b: y0 = 2^-10 + 1, y1 = 2^-10 (1 + 2^-23) + 1 = y0 + 2^-33; fl(y1) = fl(y0).
    const NetSpec spec = parse_spec(
        "input 1 1 2\nconv2d out=1 kernel=1 bias=true\nmax_pool2d kernel=1,2\nflatten\n"
        "linear out=1 bias=false\nloss mse\n", "tie");
    NetValues<double> v;
    v.x = Tensor<double>(Shape{1, 1, 1, 2}, {1.0, 1.0 + one_ulp});
    v.params = {Tensor<double>(Shape{1, 1, 1, 1}, std::ldexp(1.0, -10)),
                Tensor<double>(Shape{1}, 1.0), Tensor<double>(Shape{1, 1}, 0.7)};
    v.targets.values = Tensor<double>(Shape{1, 1}, 0.3);  // inexact: the ways round
    const FourWayReport rep = four_way_check<float>(spec, v);
    std::ostringstream os;
    rep.print(os);
    EXPECT_TRUE(rep.passed()) << os.str();
    ASSERT_FALSE(rep.flips.empty()) << os.str();
    EXPECT_EQ(rep.flips[0].reference_takes, "input [0,0,0,1]");
    EXPECT_EQ(rep.flips[0].tested_takes, "input [0,0,0,0]");
    EXPECT_TRUE(rep.flips[0].within_bound);
    // the reference routes nothing to x[0] (its magnitude bound there is 0); the float ways
    // route dL/dy * w there with rounding errors, judged at the bound along their branch
    EXPECT_GT(rep.rows[0].way[way_op_tape].max_abs, 0.0) << os.str();
    EXPECT_EQ(rep.rows[0].way[way_op_tape].worst, 0) << os.str();
  }
  {
    // relu(w x + b) with w = 1 - 2^-24, x = 1 + 2^-23, b = -1: exact 2^-24 - 2^-47 > 0, the
    // float product rounds to 1 and the sum to 0 (the reference passes, float blocks).
    const NetSpec spec = parse_spec(
        "input 1 1 1\nconv2d out=1 kernel=1 bias=true\nrelu\nflatten\nlinear out=1 bias=false\n"
        "loss mse\n", "relu-sign");
    NetValues<double> v;
    v.x = Tensor<double>(Shape{1, 1, 1, 1}, 1.0 + one_ulp);
    v.params = {Tensor<double>(Shape{1, 1, 1, 1}, 1.0 - std::ldexp(1.0, -24)),
                Tensor<double>(Shape{1}, -1.0), Tensor<double>(Shape{1, 1}, 2.0)};
    v.targets.values = Tensor<double>(Shape{1, 1}, 0.5);
    const FourWayReport rep = four_way_check<float>(spec, v);
    std::ostringstream os;
    rep.print(os);
    EXPECT_TRUE(rep.passed()) << os.str();
    ASSERT_FALSE(rep.flips.empty()) << os.str();  // the scalar tape at least
    bool scalar_tape_flipped = false;
    for (const DecisionNote& d : rep.flips) {
      EXPECT_EQ(d.reference_takes, "input [0,0,0,0]");
      EXPECT_EQ(d.tested_takes, "0");
      EXPECT_TRUE(d.within_bound);
      if (d.ways.find("scalar tape") != std::string::npos) scalar_tape_flipped = true;
    }
    EXPECT_TRUE(scalar_tape_flipped) << os.str();
  }
}
