// The four-way gradient check: the presets pass in float and double, and the judge attributes
// a disagreement to the way that stands apart and mistrusts mostly-zero gradients.
#include <gtest/gtest.h>

#include <sstream>

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
