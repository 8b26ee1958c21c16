// Fast kernels against their reference twins, and bitwise determinism across thread counts.
//
// Accuracy bound (for every element): a sum of m products computed in precision u, in ANY
// order and with or without fused multiply-adds, satisfies
//   |computed - exact| <= gamma(m) * sum |terms|,   gamma(m) = m*u / (1 - m*u)
// (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.5). "exact" is the
// reference kernel run in 50 digits (its own error, ~1e-49 relative, is far below the bound),
// and sum |terms| is the same reference kernel run on |x|, |w|, |dy| (in double, relative error
// at most gamma_double(m) ~ 1e-13, covered by a factor 1.01). m per direction:
//   forward          C/G*R*S products + 1 bias term
//   backward-data    K/G*R*S products (gather path: the gathered zeros are exact; col2im path:
//                    each term passes K/G + R*S - 1 <= K/G*R*S roundings)
//   backward-wts     N*P*Q products
//   backward-bias    N*P*Q terms
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "fast_test_support.hpp"
#include "tapegrad/kernels/conv2d_fast.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/kernels/linear_fast.hpp"
#include "tapegrad/kernels/linear_ref.hpp"
#include "tapegrad/kernels/pool_fast.hpp"
#include "tapegrad/kernels/pool_ref.hpp"

namespace tapegrad {
namespace {

using test::same_bits;

struct ConvCase {
  index_t n, c, h, w, k, r, s;
  Conv2dParams prm;
  bool bias;
};

std::vector<ConvCase> small_cases() {
  // {n,c,h,w,k,r,s, {stride, pad, dilation, groups}, bias}
  return {
      {1, 1, 3, 3, 1, 3, 3, {{1, 1}, {0, 0}, {1, 1}, 1}, false},    // tutorial tiny
      {2, 3, 7, 6, 4, 3, 2, {{1, 1}, {1, 0}, {1, 1}, 1}, true},     // asymmetric kernel and pad
      {2, 4, 9, 9, 6, 3, 3, {{2, 2}, {1, 1}, {1, 1}, 2}, true},     // stride 2, groups 2
      {1, 6, 8, 7, 6, 3, 3, {{1, 2}, {2, 1}, {2, 1}, 3}, false},    // dilation, groups 3
      {3, 2, 11, 10, 5, 5, 4, {{3, 2}, {2, 1}, {1, 2}, 1}, true},   // mixed strides
      {2, 1, 28, 28, 6, 5, 5, {{1, 1}, {2, 2}, {1, 1}, 1}, true},   // LeNet conv1 (small batch)
      {1, 16, 6, 6, 32, 1, 1, {{1, 1}, {0, 0}, {1, 1}, 1}, true},   // 1x1
      {2, 8, 5, 5, 8, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 8}, true},     // depthwise
      {1, 3, 17, 19, 13, 7, 7, {{2, 2}, {3, 3}, {1, 1}, 1}, true},  // stem-like, ragged tiles
      {1, 32, 6, 6, 14, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, true},   // C*R*S = 288 > one block
      {1, 14, 6, 6, 32, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, false},  // K*R*S = 288 > one block
      {1, 2, 40, 40, 3, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, true},   // P*Q = 1600: two chunks
      {2, 4, 12, 12, 4, 2, 2, {{3, 3}, {1, 1}, {2, 2}, 2}, true},   // stride > kernel span
      {1, 2, 5, 9, 3, 1, 3, {{4, 1}, {0, 4}, {1, 3}, 1}, false},    // padding wider than kernel
  };
}

template <class T>
Tensor<T> random_tensor(const Shape& s, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Tensor<T> t(s);
  for (auto& v : t) v = static_cast<T>(u(rng));
  return t;
}

template <class T>
Tensor<double> abs64(const Tensor<T>& t) {
  return map(t, [](const T& v) { return std::fabs(static_cast<double>(v)); });
}

double gamma(double m, double u) { return m * u / (1.0 - m * u); }

// Checks |fast - exact| <= gamma(m) * absref elementwise (with 1% slack for absref's rounding).
template <class T>
void expect_within(const Tensor<T>& fast, const Tensor<f50>& exact, const Tensor<double>& absref,
                   double m, const std::string& what) {
  ASSERT_EQ(fast.shape(), exact.shape()) << what;
  const double bound = 1.01 * gamma(m, ScalarTraits<T>::unit_roundoff());
  index_t bad = 0;
  for (index_t i = 0; i < fast.numel(); ++i) {
    const double err = static_cast<double>(abs(f50(fast[i]) - exact[i]));
    if (err > bound * absref[i] && bad++ < 5)
      ADD_FAILURE() << what << " element " << i << ": fast " << fast[i] << ", exact "
                    << static_cast<double>(exact[i]) << ", error " << err << " > bound "
                    << bound * absref[i];
  }
  EXPECT_EQ(bad, 0) << what;
}

Conv2dGeom geom_of(const ConvCase& cc) {
  const Shape bs{cc.k};
  return make_conv2d_geom(Shape{cc.n, cc.c, cc.h, cc.w},
                          Shape{cc.k, cc.c / cc.prm.groups, cc.r, cc.s}, cc.bias ? &bs : nullptr,
                          cc.prm);
}

enum Dirs : unsigned { fwd = 1, bwd_data = 2, bwd_weights = 4, bwd_bias = 8, all_dirs = 15 };

// The chosen directions of the fast kernels against the 50-digit reference, within the bound.
template <class T>
void check_against_reference(const ConvCase& cc, unsigned dirs = all_dirs) {
  const Conv2dGeom g = geom_of(cc);
  std::mt19937 rng(static_cast<unsigned>(g.x_shape().numel() * 31 + g.k));
  const auto x = random_tensor<T>(g.x_shape(), rng);
  const auto w = random_tensor<T>(g.w_shape(), rng);
  const auto b = random_tensor<T>(g.b_shape(), rng);
  const auto dy = random_tensor<T>(g.y_shape(), rng);
  const Tensor<T>* bp = cc.bias ? &b : nullptr;
  const auto x50 = x.template cast<f50>(), w50 = w.template cast<f50>(),
             b50 = b.template cast<f50>(), dy50 = dy.template cast<f50>();
  const auto xa = abs64(x), wa = abs64(w), ba = abs64(b), dya = abs64(dy);
  const std::string what = std::string(ScalarTraits<T>::name) + " " + g.str();
  const double pq_terms = double(g.n * g.p * g.q);

  if (dirs & fwd)
    expect_within(fast::conv2d_forward(g, x, w, bp),
                  ref::conv2d_forward<f50>(g, x50, w50, cc.bias ? &b50 : nullptr),
                  ref::conv2d_forward<double>(g, xa, wa, cc.bias ? &ba : nullptr),
                  double(g.c_per_group() * g.r * g.s + 1), "forward " + what);
  if (dirs & bwd_data)
    expect_within(fast::conv2d_backward_data(g, dy, w),
                  ref::conv2d_backward_data<f50>(g, dy50, w50),
                  ref::conv2d_backward_data<double>(g, dya, wa),
                  double(g.k_per_group() * g.r * g.s), "backward_data " + what);
  if (dirs & bwd_weights)
    expect_within(fast::conv2d_backward_weights(g, x, dy),
                  ref::conv2d_backward_weights<f50>(g, x50, dy50),
                  ref::conv2d_backward_weights<double>(g, xa, dya), pq_terms,
                  "backward_weights " + what);
  if (dirs & bwd_bias)
    expect_within(fast::conv2d_backward_bias(g, dy), ref::conv2d_backward_bias<f50>(g, dy50),
                  ref::conv2d_backward_bias<double>(g, dya), pq_terms, "backward_bias " + what);
}

// Shapes that reach the paths of the fast conv2d not reached by small_cases, each with the
// path its forward / backward-data / backward-weights take on an AVX-512 CPU in float
// (conv2d_plan; k*v is k equal items v; EveryNamedPathIsTakenOnAvx512 checks these names).
// Only the directions listed in `dirs` are checked against 50 digits (to keep f50 cheap).
struct PathCase {
  ConvCase cc;
  unsigned dirs;
  const char *fwd_plan, *bwd_data_plan, *bwd_weights_plan;
};

std::vector<PathCase> path_cases() {
  const Conv2dParams plain{{1, 1}, {0, 0}, {1, 1}, 1};
  return {
      // batch layout chosen by the shape (a batch of small images, 150 taps): full groups of
      // 16 (float) / 8 (double) images; the output transposes by whole 16 x 16 blocks
      {{16, 6, 9, 9, 16, 5, 5, plain, true}, all_dirs,
       "lowered-batch panels=2*8 tile=2*3", "lowered-batch panels=6 tile=4",
       "lowered-batch panels=4*4 tap_tiles=4*25x6 runs=1"},
      // rows 20 wide, backward-data with three panel rows (tiles of 8 pixels)
      {{16, 3, 6, 20, 8, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, true}, bwd_data,
       "lowered-batch panels=8 tile=3", "lowered-batch panels=3 tile=8",
       "lowered-batch panels=2*4 tap_tiles=2*5x6 runs=1"},
      // backward-weights reduction cut into two runs of 48 images (added in run order)
      {{96, 2, 27, 27, 2, 2, 2, plain, false}, bwd_weights,
       "lowered-pixels panels=2 tile=8", "lowered-pixels panels=2 tile=8",
       "lowered-pixels panels=2 tap_tiles=1x8 runs=2"},
      // backward-weights of a single panel whose accumulators fit the L1 cache: the call's
      // tasks come from runs of 16 images (two, added in run order), not from its tap tiles
      {{32, 1, 20, 20, 3, 5, 5, {{1, 1}, {2, 2}, {1, 1}, 1}, false}, bwd_weights,
       "lowered-batch panels=3 tile=8", "lowered-batch panels=1 tile=8",
       "lowered-batch panels=3 tap_tiles=4x8 runs=2"},
      // backward-data of a pad-0 convolution: dy padded by 4 on every side, tiles skip the
      // kernel rows that only see that padding
      {{2, 6, 14, 14, 16, 5, 5, plain, true}, bwd_data,
       "lowered-pixels panels=2*8 tile=2*3", "lowered-pixels panels=6 tile=4",
       "lowered-pixels panels=4*4 tap_tiles=4*25x6 runs=1"},
      // backward-data with pad > dilation*(kernel-1): dy is cropped, not padded (1x1 kernel)
      {{2, 3, 9, 10, 4, 1, 1, {{1, 1}, {1, 2}, {1, 1}, 1}, true}, all_dirs,
       "lowered-pixels panels=4 tile=6", "lowered-pixels panels=3 tile=8",
       "lowered-pixels panels=4 tap_tiles=1x6 runs=1"},
      {{1, 2, 6, 7, 3, 2, 2, {{1, 1}, {2, 3}, {1, 1}, 1}, false}, bwd_data,
       "lowered-pixels panels=3 tile=8", "lowered-pixels panels=2 tile=8",
       "lowered-pixels panels=3 tap_tiles=1x8 runs=1"},
      // dilation 2 with stride 1: backward-data lowered with dilated flipped taps
      {{2, 3, 9, 9, 4, 3, 3, {{1, 1}, {2, 2}, {2, 2}, 1}, true}, all_dirs,
       "lowered-pixels panels=4 tile=6", "lowered-pixels panels=3 tile=8",
       "lowered-pixels panels=4 tap_tiles=5x6 runs=1"},
      // groups 3 with stride 1: every direction lowered per group
      {{2, 6, 7, 7, 9, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 3}, true}, all_dirs,
       "lowered-pixels panels=3 tile=8", "lowered-pixels panels=2 tile=8",
       "lowered-pixels panels=3 tap_tiles=3x8 runs=1"},
      // stride 2 and a full group of 16 images: the phase images of the batch layout are
      // gathered from the transposed planes
      {{16, 2, 9, 10, 3, 3, 3, {{2, 2}, {1, 1}, {1, 1}, 1}, true}, fwd | bwd_weights,
       "lowered-batch panels=3 tile=8", "col2im",
       "lowered-batch panels=3 tap_tiles=3x8 runs=1"},
      // backward-weights in the channels tier (70 >= 4 vectors of rows: 5 vectors, in panels
      // of 2 and 3, the last vector's rows 70-79 zeros), stride 2: tiles of 12 and 8 taps of the
      // 36, the last of 8 repeating a tap (dropped)
      {{2, 4, 9, 11, 70, 3, 3, {{2, 2}, {1, 1}, {1, 1}, 1}, true}, fwd | bwd_weights,
       "lowered-pixels panels=7+3*8+7+4*8 tile=9*3", "col2im",
       "lowered-channels panels=2+3 tap_tiles=3x12+5x8 runs=1"},
  };
}

TEST(FastConv2d, PathCasesAgreeWithFiftyDigitReferenceWithinDerivedBound) {
  for (const auto& pc : path_cases()) {
    check_against_reference<float>(pc.cc, pc.dirs);
    check_against_reference<double>(pc.cc, pc.dirs);
  }
}

// The names beside small_cases and path_cases are the paths really taken (on AVX-512 only: the
// tiles and the layouts' costs depend on the vector width).
TEST(FastConv2d, EveryNamedPathIsTakenOnAvx512) {
  if (std::string(fast::isa()) != "avx512") GTEST_SKIP() << "tiles named for AVX-512";
  using D = fast::Conv2dDirection;
  for (const auto& pc : path_cases()) {
    const Conv2dGeom g = geom_of(pc.cc);
    EXPECT_EQ(fast::conv2d_plan<float>(g, D::forward), pc.fwd_plan) << g.str();
    EXPECT_EQ(fast::conv2d_plan<float>(g, D::backward_data), pc.bwd_data_plan) << g.str();
    EXPECT_EQ(fast::conv2d_plan<float>(g, D::backward_weights), pc.bwd_weights_plan) << g.str();
  }
  // small_cases: the tutorial's tiny shape runs direct loops, strided backward-data col2im,
  // the stem-like shape two panels of different widths (7 + 6 rows, forward; 3 + 3 + 3 + 4
  // backward-weights, whose tap tiles differ: 8 and 6 taps), everything else "pixels".
  const auto small = small_cases();
  EXPECT_EQ(fast::conv2d_plan<float>(geom_of(small[0]), D::forward), "direct");
  EXPECT_EQ(fast::conv2d_plan<float>(geom_of(small[2]), D::backward_data), "col2im");
  EXPECT_EQ(fast::conv2d_plan<float>(geom_of(small[8]), D::forward),
            "lowered-pixels panels=6+7 tile=4+3");
  EXPECT_EQ(fast::conv2d_plan<float>(geom_of(small[8]), D::backward_weights),
            "lowered-pixels panels=3*3+4 tap_tiles=3*19x8+25x6 runs=1");
  for (std::size_t i = 1; i < small.size(); ++i)
    for (D d : {D::forward, D::backward_data, D::backward_weights}) {
      const std::string path = fast::conv2d_path<float>(geom_of(small[i]), d);
      EXPECT_TRUE(path == "lowered-pixels" || path == "col2im" || path == "direct")
          << path << " " << geom_of(small[i]).str();
    }
}

// The instruction sets this CPU can run; "best" first.
std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (const char* name : {"avx512", "avx2", "generic"}) {
    try {
      fast::set_isa(name);
      out.emplace_back(name);
    } catch (const std::invalid_argument&) {
    }
  }
  fast::set_isa("best");
  return out;
}

TEST(FastConv2d, FloatAgreesWithFiftyDigitReferenceWithinDerivedBound) {
  for (const auto& cc : small_cases()) check_against_reference<float>(cc);
}

TEST(FastConv2d, DoubleAgreesWithFiftyDigitReferenceWithinDerivedBound) {
  for (const auto& cc : small_cases()) check_against_reference<double>(cc);
}

// Restores the shape's own choice of layout when a test returns or fails.
struct TierGuard {
  ~TierGuard() { fast::set_conv2d_tier("auto"); }
};

// Each small case through every layout of the lowered convolution (the shapes' own choice is
// "pixels" for all of them; forced into "batch", their 1 to 3 images fill one partial group of
// lanes, the rest zeros), and the path cases (full groups of 16 images among them).
TEST(FastConv2d, EveryLoweringTierAgreesWithFiftyDigitReferenceWithinDerivedBound) {
  TierGuard restore;
  for (const char* tier : {"pixels", "batch", "channels"}) {
    SCOPED_TRACE(tier);
    fast::set_conv2d_tier(tier);
    for (const auto& cc : small_cases()) {
      check_against_reference<float>(cc);
      check_against_reference<double>(cc);
    }
    for (const auto& pc : path_cases()) {
      check_against_reference<float>(pc.cc, pc.dirs);
      check_against_reference<double>(pc.cc, pc.dirs);
    }
  }
}

// Forward and backward-data sum each output as one multiply-add chain over the taps in order,
// in every layout: the same numbers (only the sign of an exact zero may differ, where one
// layout's tile adds a product with padding that another's skips; == ignores that sign).
template <class T>
void check_tiers_agree(const ConvCase& cc) {
  const Conv2dGeom g = geom_of(cc);
  std::mt19937 rng(11);
  const auto x = random_tensor<T>(g.x_shape(), rng);
  const auto w = random_tensor<T>(g.w_shape(), rng);
  const auto b = random_tensor<T>(g.b_shape(), rng);
  const auto dy = random_tensor<T>(g.y_shape(), rng);
  const Tensor<T>* bp = cc.bias ? &b : nullptr;
  TierGuard restore;
  fast::set_conv2d_tier("pixels");
  const auto y1 = fast::conv2d_forward(g, x, w, bp);
  const auto dx1 = fast::conv2d_backward_data(g, dy, w);
  for (const char* tier : {"batch", "channels"}) {
    fast::set_conv2d_tier(tier);
    const auto y2 = fast::conv2d_forward(g, x, w, bp);
    const auto dx2 = fast::conv2d_backward_data(g, dy, w);
    for (index_t i = 0; i < y1.numel(); ++i)
      ASSERT_TRUE(y1[i] == y2[i]) << tier << " forward element " << i << " " << g.str();
    for (index_t i = 0; i < dx1.numel(); ++i)
      ASSERT_TRUE(dx1[i] == dx2[i]) << tier << " backward_data element " << i << " " << g.str();
  }
}

TEST(FastConv2d, EveryTierGivesTheSameForwardAndBackwardDataNumbers) {
  for (const auto& cc : small_cases()) {
    check_tiers_agree<float>(cc);
    check_tiers_agree<double>(cc);
  }
  for (const auto& pc : path_cases()) {
    check_tiers_agree<float>(pc.cc);
    check_tiers_agree<double>(pc.cc);
  }
}

TEST(FastConv2d, EveryOtherInstructionSetAgreesWithReferenceWithinDerivedBound) {
  const auto isas = available_isas();
  for (std::size_t i = 1; i < isas.size(); ++i) {  // isas[0], the best, is tested above
    const std::string& isa = isas[i];
    SCOPED_TRACE(isa);
    fast::set_isa(isa);
    for (const auto& cc : small_cases()) {
      check_against_reference<float>(cc);
      check_against_reference<double>(cc);
    }
    for (const auto& pc : path_cases()) {
      check_against_reference<float>(pc.cc, pc.dirs);
      check_against_reference<double>(pc.cc, pc.dirs);
    }
  }
  fast::set_isa("best");
}

template <class T>
void check_thread_determinism(const ConvCase& cc) {
  const Shape bs{cc.k};
  const Conv2dGeom g = make_conv2d_geom(Shape{cc.n, cc.c, cc.h, cc.w},
                                        Shape{cc.k, cc.c / cc.prm.groups, cc.r, cc.s},
                                        cc.bias ? &bs : nullptr, cc.prm);
  std::mt19937 rng(7);
  const auto x = random_tensor<T>(g.x_shape(), rng);
  const auto w = random_tensor<T>(g.w_shape(), rng);
  const auto b = random_tensor<T>(g.b_shape(), rng);
  const auto dy = random_tensor<T>(g.y_shape(), rng);
  const Tensor<T>* bp = cc.bias ? &b : nullptr;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto y1 = fast::conv2d_forward(g, x, w, bp);
  const auto dx1 = fast::conv2d_backward_data(g, dy, w);
  const auto dw1 = fast::conv2d_backward_weights(g, x, dy);
  const auto db1 = fast::conv2d_backward_bias(g, dy);
  for (int threads : {2, 3, 4}) {
    omp_set_num_threads(threads);
    const std::string what = std::to_string(threads) + " threads, " + g.str();
    EXPECT_TRUE(same_bits(y1, fast::conv2d_forward(g, x, w, bp))) << "forward " << what;
    EXPECT_TRUE(same_bits(dx1, fast::conv2d_backward_data(g, dy, w))) << "backward_data " << what;
    EXPECT_TRUE(same_bits(dw1, fast::conv2d_backward_weights(g, x, dy)))
        << "backward_weights " << what;
    EXPECT_TRUE(same_bits(db1, fast::conv2d_backward_bias(g, dy))) << "backward_bias " << what;
  }
  omp_set_num_threads(saved);
}

std::vector<ConvCase> determinism_cases() {
  auto cases = small_cases();
  for (const auto& pc : path_cases()) cases.push_back(pc.cc);
  // Shapes with many tasks per direction and over 1e6 flops, so that threads really split the
  // work (smaller calls run on one thread), in both layouts of the lowered convolution
  cases.push_back({3, 16, 40, 36, 24, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, true});
  cases.push_back({2, 12, 23, 29, 80, 3, 5, {{2, 1}, {1, 2}, {1, 1}, 2}, true});
  cases.push_back({2, 96, 9, 9, 70, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, false});
  // LeNet conv2 at batch 32: the batch layout in every direction (AVX-512)
  cases.push_back({32, 6, 14, 14, 16, 5, 5, {{1, 1}, {0, 0}, {1, 1}, 1}, true});
  // LeNet conv1 at batch 64: backward-weights in 4 runs of one group of 16 images (AVX-512)
  cases.push_back({64, 1, 28, 28, 6, 5, 5, {{1, 1}, {2, 2}, {1, 1}, 1}, true});
  return cases;
}

TEST(FastConv2d, FloatResultsAreBitwiseIdenticalForOneToFourThreads) {
  TierGuard restore;
  for (const char* tier : {"auto", "pixels", "batch", "channels"}) {
    SCOPED_TRACE(tier);
    fast::set_conv2d_tier(tier);
    for (const auto& cc : determinism_cases()) check_thread_determinism<float>(cc);
  }
}

TEST(FastConv2d, DoubleResultsAreBitwiseIdenticalForOneToFourThreads) {
  TierGuard restore;
  for (const char* tier : {"auto", "pixels", "batch", "channels"}) {
    SCOPED_TRACE(tier);
    fast::set_conv2d_tier(tier);
    for (const auto& cc : determinism_cases()) check_thread_determinism<double>(cc);
  }
}

// *_into reshape a buffer of another shape and overwrite a dirty one of the right shape (a
// training loop's reused buffers), in both layouts and on the direct, col2im paths too.
template <class T>
void check_into(const ConvCase& cc) {
  const Conv2dGeom g = geom_of(cc);
  std::mt19937 rng(3);
  const auto x = random_tensor<T>(g.x_shape(), rng);
  const auto w = random_tensor<T>(g.w_shape(), rng);
  const auto b = random_tensor<T>(g.b_shape(), rng);
  const auto dy = random_tensor<T>(g.y_shape(), rng);
  const Tensor<T>* bp = cc.bias ? &b : nullptr;
  Tensor<T> y(Shape{5}, T(123)), dx, dw(Shape{1, 1}), db;
  for (int round = 0; round < 2; ++round) {  // the second round reuses dirty buffers
    fast::conv2d_forward_into(g, x, w, bp, y);
    fast::conv2d_backward_data_into(g, dy, w, dx);
    fast::conv2d_backward_weights_into(g, x, dy, dw);
    fast::conv2d_backward_bias_into(g, dy, db);
    EXPECT_TRUE(same_bits(y, fast::conv2d_forward(g, x, w, bp))) << g.str();
    EXPECT_TRUE(same_bits(dx, fast::conv2d_backward_data(g, dy, w))) << g.str();
    EXPECT_TRUE(same_bits(dw, fast::conv2d_backward_weights(g, x, dy))) << g.str();
    EXPECT_TRUE(same_bits(db, fast::conv2d_backward_bias(g, dy))) << g.str();
    for (auto* t : {&y, &dx, &dw, &db}) t->fill(std::numeric_limits<T>::quiet_NaN());
  }
}

TEST(FastConv2d, IntoVariantsReshapeTheBufferAndReuseItToTheSameBits) {
  TierGuard restore;
  for (const char* tier : {"pixels", "batch", "channels"}) {
    SCOPED_TRACE(tier);
    fast::set_conv2d_tier(tier);
    for (const auto& cc : small_cases()) {
      check_into<float>(cc);
      check_into<double>(cc);
    }
  }
}

TEST(FastConv2d, SetConv2dTierRejectsAnUnknownName) {
  EXPECT_THROW(fast::set_conv2d_tier("blocked"), std::invalid_argument);
}

TEST(FastConv2d, SetIsaRejectsAnUnknownName) {
  EXPECT_THROW(fast::set_isa("neon"), std::invalid_argument);
}


// ---------------------------------------------------------------- linear
// m per direction: forward in + 1 (bias), backward-data out, backward-weights N, bias N.
struct LinearCase {
  index_t n, in, out;
  bool bias;
};

template <class T>
void check_linear_against_reference(const LinearCase& lc) {
  const Shape bs{lc.out};
  const LinearGeom g =
      make_linear_geom(Shape{lc.n, lc.in}, Shape{lc.out, lc.in}, lc.bias ? &bs : nullptr);
  std::mt19937 rng(static_cast<unsigned>(lc.n * 1000 + lc.in * 10 + lc.out));
  const auto x = random_tensor<T>(g.x_shape(), rng);
  const auto w = random_tensor<T>(g.w_shape(), rng);
  const auto b = random_tensor<T>(g.b_shape(), rng);
  const auto dy = random_tensor<T>(g.y_shape(), rng);
  const auto x50 = x.template cast<f50>(), w50 = w.template cast<f50>(),
             b50 = b.template cast<f50>(), dy50 = dy.template cast<f50>();
  const auto xa = abs64(x), wa = abs64(w), ba = abs64(b), dya = abs64(dy);
  const std::string what = std::string(ScalarTraits<T>::name) + " " + g.str();
  expect_within(fast::linear_forward(g, x, w, lc.bias ? &b : nullptr),
                ref::linear_forward<f50>(g, x50, w50, lc.bias ? &b50 : nullptr),
                ref::linear_forward<double>(g, xa, wa, lc.bias ? &ba : nullptr),
                double(g.in + 1), "linear forward " + what);
  expect_within(fast::linear_backward_data(g, dy, w), ref::linear_backward_data<f50>(g, dy50, w50),
                ref::linear_backward_data<double>(g, dya, wa), double(g.out),
                "linear backward_data " + what);
  expect_within(fast::linear_backward_weights(g, x, dy),
                ref::linear_backward_weights<f50>(g, x50, dy50),
                ref::linear_backward_weights<double>(g, xa, dya), double(g.n),
                "linear backward_weights " + what);
  // Same order as the reference (increasing n): the same bits.
  EXPECT_TRUE(same_bits(fast::linear_backward_bias(g, dy), ref::linear_backward_bias<T>(g, dy)))
      << what;
}

std::vector<LinearCase> linear_cases() {
  return {{1, 1, 1, true},    {3, 5, 2, false},   {7, 33, 13, true},  {64, 784, 10, true},
          {17, 300, 50, true}, {5, 20, 600, false}, {300, 9, 7, true}};
}

TEST(FastLinear, AgreesWithFiftyDigitReferenceWithinDerivedBound) {
  for (const auto& lc : linear_cases()) {
    check_linear_against_reference<float>(lc);
    check_linear_against_reference<double>(lc);
  }
}

// Each instruction set has its own tile widths (nr: AVX-512 float 48, AVX2 16, generic 8), so
// its own last strips of w^T padded and read in place.
TEST(FastLinear, EveryOtherInstructionSetAgreesWithReferenceWithinDerivedBound) {
  const auto isas = available_isas();
  for (std::size_t i = 1; i < isas.size(); ++i) {  // isas[0], the best, is tested above
    SCOPED_TRACE(isas[i]);
    fast::set_isa(isas[i]);
    for (const auto& lc : linear_cases()) {
      check_linear_against_reference<float>(lc);
      check_linear_against_reference<double>(lc);
    }
  }
  fast::set_isa("best");
}

template <class T>
void check_linear_determinism(const LinearCase& lc) {
  const Shape bs{lc.out};
  const LinearGeom g =
      make_linear_geom(Shape{lc.n, lc.in}, Shape{lc.out, lc.in}, lc.bias ? &bs : nullptr);
  std::mt19937 rng(11);
  const auto x = random_tensor<T>(g.x_shape(), rng);
  const auto w = random_tensor<T>(g.w_shape(), rng);
  const auto b = random_tensor<T>(g.b_shape(), rng);
  const auto dy = random_tensor<T>(g.y_shape(), rng);
  const Tensor<T>* bp = lc.bias ? &b : nullptr;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto y1 = fast::linear_forward(g, x, w, bp);
  const auto dx1 = fast::linear_backward_data(g, dy, w);
  const auto dw1 = fast::linear_backward_weights(g, x, dy);
  const auto db1 = fast::linear_backward_bias(g, dy);
  for (int threads : {2, 3, 4}) {
    omp_set_num_threads(threads);
    const std::string what = std::to_string(threads) + " threads, " + g.str();
    EXPECT_TRUE(same_bits(y1, fast::linear_forward(g, x, w, bp))) << "forward " << what;
    EXPECT_TRUE(same_bits(dx1, fast::linear_backward_data(g, dy, w))) << "backward_data " << what;
    EXPECT_TRUE(same_bits(dw1, fast::linear_backward_weights(g, x, dy)))
        << "backward_weights " << what;
    EXPECT_TRUE(same_bits(db1, fast::linear_backward_bias(g, dy))) << "backward_bias " << what;
  }
  omp_set_num_threads(saved);
}

TEST(FastLinear, ResultsAreBitwiseIdenticalForOneToFourThreads) {
  for (const auto& lc : linear_cases()) {
    check_linear_determinism<float>(lc);
    check_linear_determinism<double>(lc);
  }
  // Large enough to run in parallel (the kernels run small calls on one thread): many tiles,
  // several 256-blocks of the reduction, and a bias reduction over 200000 elements.
  check_linear_determinism<float>({200, 700, 300, true});
  check_linear_determinism<double>({2000, 50, 100, true});
}

// ---------------------------------------------------------------- pooling
// Pooling does the reference's arithmetic in the reference's order, so fast == ref bitwise.
std::vector<Pool2dParams> pool_cases() {
  // {kernel, stride, pad}
  return {{{2, 2}, {2, 2}, {0, 0}}, {{3, 3}, {2, 2}, {1, 1}}, {{3, 2}, {1, 2}, {1, 1}},
          {{2, 3}, {3, 1}, {1, 0}}, {{1, 1}, {1, 1}, {0, 0}}, {{4, 4}, {3, 3}, {2, 2}}};
}

template <class T>
void check_pool(const Pool2dParams& prm, const Shape& xs, bool with_ties) {
  const Pool2dGeom g = make_pool2d_geom(xs, prm, "max_pool2d");
  std::mt19937 rng(5);
  auto x = random_tensor<T>(g.x_shape(), rng);
  if (with_ties)  // few distinct values: many ties exercise the first-maximum convention
    for (auto& v : x) v = static_cast<T>(std::round(v * 2));
  const auto dy = random_tensor<T>(g.y_shape(), rng);
  const std::string what = std::string(ScalarTraits<T>::name) + " " + g.str();
  EXPECT_TRUE(same_bits(fast::max_pool2d_forward(g, x), ref::max_pool2d_forward(g, x))) << what;
  EXPECT_TRUE(same_bits(fast::max_pool2d_backward(g, x, dy), ref::max_pool2d_backward(g, x, dy)))
      << what;
  EXPECT_TRUE(same_bits(fast::avg_pool2d_forward(g, x), ref::avg_pool2d_forward(g, x))) << what;
  EXPECT_TRUE(same_bits(fast::avg_pool2d_backward(g, dy), ref::avg_pool2d_backward(g, dy)))
      << what;
  // The _into forms reuse their output (a training step's buffers): every element must be
  // written, so outputs start full of NaN here (a cell left unwritten keeps its NaN).
  Tensor<T> y(g.y_shape()), dx(g.x_shape());
  const T nan = std::numeric_limits<T>::quiet_NaN();
  y.fill(nan);
  fast::max_pool2d_forward_into(g, x, y);
  EXPECT_TRUE(same_bits(y, ref::max_pool2d_forward(g, x))) << "into " << what;
  dx.fill(nan);
  fast::max_pool2d_backward_into(g, x, dy, dx);
  EXPECT_TRUE(same_bits(dx, ref::max_pool2d_backward(g, x, dy))) << "into " << what;
  y.fill(nan);
  fast::avg_pool2d_forward_into(g, x, y);
  EXPECT_TRUE(same_bits(y, ref::avg_pool2d_forward(g, x))) << "into " << what;
  dx.fill(nan);
  fast::avg_pool2d_backward_into(g, dy, dx);
  EXPECT_TRUE(same_bits(dx, ref::avg_pool2d_backward(g, dy))) << "into " << what;
}

TEST(FastPool2d, EqualsReferenceBitwiseIncludingTies) {
  for (const auto& prm : pool_cases())
    for (bool ties : {false, true}) {
      check_pool<float>(prm, Shape{2, 3, 9, 8}, ties);
      check_pool<double>(prm, Shape{1, 2, 7, 11}, ties);
    }
}

TEST(FastPool2d, TwoByTwoVectorPathEqualsReferenceBitwise) {
  // 2x2 / stride 2 / no padding takes vectors of L windows (AVX-512: 16 float, 8 double), then
  // the rest of the row in blocks of L/2, L/4, ... 2 and one by one: every row length from 1 to
  // 33 windows reaches every combination of those tails (33 = 16 + 8 + 4 + 2 + 1 + 2 more for
  // a second whole vector in double). An odd width leaves the last column to no window, and the
  // 5 rows leave row 4 to none (their dx is 0).
  const Pool2dParams prm{{2, 2}, {2, 2}, {0, 0}};
  for (bool ties : {false, true})
    for (index_t nq = 1; nq <= 33; ++nq) {
      check_pool<float>(prm, Shape{1, 2, 5, 2 * nq + nq % 2}, ties);
      check_pool<double>(prm, Shape{1, 2, 5, 2 * nq + nq % 2}, ties);
    }
  check_pool<float>(prm, Shape{1, 2, 4, 64}, false);  // whole vectors only
}

TEST(FastPool2d, ResultsAreBitwiseIdenticalForOneToFourThreads) {
  // Large enough (> 1e6 window elements) that the kernels run it in parallel; the general
  // windows and the 2x2 vector path.
  test::ThreadsGuard restore;
  for (const Pool2dParams& prm :
       {Pool2dParams{{3, 3}, {2, 2}, {1, 1}}, Pool2dParams{{2, 2}, {2, 2}, {0, 0}}}) {
    const Pool2dGeom g = make_pool2d_geom(Shape{8, 16, 64, 62}, prm, "pool");
    std::mt19937 rng(9);
    const auto x = random_tensor<float>(g.x_shape(), rng);
    const auto dy = random_tensor<float>(g.y_shape(), rng);
    omp_set_num_threads(1);
    const auto y1 = fast::max_pool2d_forward(g, x), dx1 = fast::max_pool2d_backward(g, x, dy);
    const auto a1 = fast::avg_pool2d_forward(g, x), da1 = fast::avg_pool2d_backward(g, dy);
    for (int threads : {2, 3, 4}) {
      omp_set_num_threads(threads);
      EXPECT_TRUE(same_bits(y1, fast::max_pool2d_forward(g, x))) << threads << " " << g.str();
      EXPECT_TRUE(same_bits(dx1, fast::max_pool2d_backward(g, x, dy))) << threads;
      EXPECT_TRUE(same_bits(a1, fast::avg_pool2d_forward(g, x))) << threads;
      EXPECT_TRUE(same_bits(da1, fast::avg_pool2d_backward(g, dy))) << threads;
    }
  }
}

}  // namespace
}  // namespace tapegrad
