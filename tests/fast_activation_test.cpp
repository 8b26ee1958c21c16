// Fast activations against their reference twins: the same bits (activation_fast.hpp: same
// expressions, same order, same libm calls, no contraction), for every op in float and double,
// on small and parallel-sized tensors, with special values, for 1 to 4 threads, and through
// the *_into variants with dirty buffers.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "fast_test_support.hpp"
#include "ref_test_support.hpp"
#include "tapegrad/kernels/activation.hpp"
#include "tapegrad/kernels/activation_fast.hpp"
#include "tapegrad/kernels/activation_ref.hpp"

namespace tapegrad {
namespace {

using test::same_bits;
using test::same_values;

// Random values in [-scale, scale] with special values planted at the front: exact zeros of
// both signs (relu's kink: relu'(0) = 0 by convention), infinities, a NaN, a subnormal, and
// magnitudes where exp overflows or underflows (|x| = 1000). Then a small case has them all.
template <class T>
Tensor<T> values(const Shape& s, unsigned seed, double scale) {
  Tensor<T> t = test::random_reals<T>(s, seed, scale);
  const T inf = std::numeric_limits<T>::infinity();
  const T special[] = {T(0),    T(-0.0), inf,      -inf, std::numeric_limits<T>::quiet_NaN(),
                       std::numeric_limits<T>::denorm_min(), T(1000), T(-1000), T(1), T(-1)};
  for (index_t i = 0; i < std::min<index_t>(t.numel(), 10); ++i) t[i] = special[i];
  return t;
}

// Shapes: a few elements (no full vector), rank 4 with an inner extent (softmax along dim 1
// with stride inner), and sizes above the parallel threshold (65536 elements) whose length is
// no multiple of any vector width.
std::vector<Shape> shapes() {
  return {Shape{1, 7}, Shape{3, 5, 2, 3}, Shape{7, 10001}, Shape{7001, 10}, Shape{2, 3, 117, 97}};
}

struct UnaryOp {
  const char* name;
  // forward of x (float and double), and backward from the saved tensor (x for relu, y else)
  std::function<Tensor<float>(const Tensor<float>&)> fast_f, ref_f;
  std::function<Tensor<double>(const Tensor<double>&)> fast_d, ref_d;
  std::function<Tensor<float>(const Tensor<float>&, const Tensor<float>&)> fast_bf, ref_bf;
  std::function<Tensor<double>(const Tensor<double>&, const Tensor<double>&)> fast_bd, ref_bd;
  bool backward_from_x;
};

#define TG_OP(NAME, FROM_X)                                                                   \
  UnaryOp {                                                                                   \
    #NAME, [](const Tensor<float>& x) { return fast::NAME##_forward(x); },                    \
        [](const Tensor<float>& x) { return ref::NAME##_forward(x); },                        \
        [](const Tensor<double>& x) { return fast::NAME##_forward(x); },                      \
        [](const Tensor<double>& x) { return ref::NAME##_forward(x); },                       \
        [](const Tensor<float>& a, const Tensor<float>& d) { return fast::NAME##_backward(a, d); }, \
        [](const Tensor<float>& a, const Tensor<float>& d) { return ref::NAME##_backward(a, d); },  \
        [](const Tensor<double>& a, const Tensor<double>& d) {                                \
          return fast::NAME##_backward(a, d);                                                 \
        },                                                                                    \
        [](const Tensor<double>& a, const Tensor<double>& d) {                                \
          return ref::NAME##_backward(a, d);                                                  \
        },                                                                                    \
        FROM_X                                                                                \
  }

std::vector<UnaryOp> ops() {
  return {TG_OP(relu, true), TG_OP(sigmoid, false), TG_OP(tanh, false), TG_OP(softmax, false),
          TG_OP(log_softmax, false)};
}
#undef TG_OP

template <class T>
void check_op(const UnaryOp& op, const Shape& s, double scale, unsigned seed) {
  const Tensor<T> x = values<T>(s, seed, scale);
  const Tensor<T> dy = test::random_reals<T>(s, seed + 1, 1.0);
  const std::string what = std::string(op.name) + " " + ScalarTraits<T>::name + " x" + s.str() +
                           " scale " + std::to_string(scale);
  Tensor<T> y, y_ref, dx, dx_ref;
  if constexpr (std::is_same_v<T, float>) {
    y = op.fast_f(x), y_ref = op.ref_f(x);
    const Tensor<T>& saved = op.backward_from_x ? x : y_ref;
    dx = op.fast_bf(saved, dy), dx_ref = op.ref_bf(saved, dy);
  } else {
    y = op.fast_d(x), y_ref = op.ref_d(x);
    const Tensor<T>& saved = op.backward_from_x ? x : y_ref;
    dx = op.fast_bd(saved, dy), dx_ref = op.ref_bd(saved, dy);
  }
  EXPECT_TRUE(same_values(y, y_ref)) << "forward " << what;  // NaN bits aside: see same_values
  EXPECT_TRUE(same_values(dx, dx_ref)) << "backward " << what;
}

TEST(FastActivations, EqualTheReferenceBitwiseIncludingSpecialValues) {
  for (const auto& op : ops())
    for (const Shape& s : shapes())
      for (double scale : {1.0, 40.0}) {  // 40: sigmoid and tanh saturate, exp underflows
        check_op<float>(op, s, scale, 1);
        check_op<double>(op, s, scale, 2);
      }
}

TEST(FastActivations, ReluConventionAtZeroIsZeroGradient) {
  // relu'(0) = 0 (as PyTorch): dy flows only where x > 0; -0, NaN and negatives give 0.
  const Tensor<double> x = test::make<double>(Shape{1, 5}, {0.0, -0.0, 2.0, -3.0, NAN});
  const Tensor<double> dy = test::make<double>(Shape{1, 5}, {5, 6, 7, 8, 9});
  test::expect_exact(fast::relu_backward(x, dy), Shape{1, 5}, {0, 0, 7, 0, 0});
  test::expect_exact(fast::relu_forward(x), Shape{1, 5}, {0, 0, 2, 0, 0});
}

TEST(FastActivations, ResultsAreBitwiseIdenticalForOneToFourThreads) {
  test::ThreadsGuard restore;
  for (const auto& op : ops())
    for (const Shape& s : {Shape{7, 10001}, Shape{2, 3, 117, 97}}) {
      const Tensor<float> x = values<float>(s, 5, 3.0), dy = test::random_reals<float>(s, 6);
      omp_set_num_threads(1);
      const Tensor<float> y1 = op.fast_f(x), dx1 = op.fast_bf(op.backward_from_x ? x : y1, dy);
      for (int threads : {2, 3, 4}) {
        omp_set_num_threads(threads);
        EXPECT_TRUE(same_bits(y1, op.fast_f(x))) << op.name << " " << threads << " threads";
        EXPECT_TRUE(same_bits(dx1, op.fast_bf(op.backward_from_x ? x : y1, dy)))
            << op.name << " backward " << threads << " threads";
      }
    }
}

TEST(FastActivations, IntoVariantsReshapeTheBufferAndOverwriteADirtyOne) {
  const Shape s{3, 5, 2, 3};
  const Tensor<double> x = values<double>(s, 7, 2.0), dy = test::random_reals<double>(s, 8);
  Tensor<double> y(Shape{4}, 5.0), dx(Shape{1, 1}, 6.0);
  for (int round = 0; round < 2; ++round) {  // round 1 reuses the dirty buffers
    fast::relu_forward_into(x, y);
    fast::relu_backward_into(x, dy, dx);
    EXPECT_TRUE(same_bits(y, ref::relu_forward(x)));
    EXPECT_TRUE(same_bits(dx, ref::relu_backward(x, dy)));
    fast::sigmoid_forward_into(x, y);
    fast::sigmoid_backward_into(y, dy, dx);
    EXPECT_TRUE(same_bits(y, ref::sigmoid_forward(x)));
    EXPECT_TRUE(same_bits(dx, ref::sigmoid_backward(ref::sigmoid_forward(x), dy)));
    fast::tanh_forward_into(x, y);
    fast::tanh_backward_into(y, dy, dx);
    EXPECT_TRUE(same_bits(y, ref::tanh_forward(x)));
    EXPECT_TRUE(same_bits(dx, ref::tanh_backward(ref::tanh_forward(x), dy)));
    fast::softmax_forward_into(x, y);
    fast::softmax_backward_into(y, dy, dx);
    EXPECT_TRUE(same_bits(y, ref::softmax_forward(x)));
    EXPECT_TRUE(same_bits(dx, ref::softmax_backward(ref::softmax_forward(x), dy)));
    fast::log_softmax_forward_into(x, y);
    fast::log_softmax_backward_into(y, dy, dx);
    EXPECT_TRUE(same_bits(y, ref::log_softmax_forward(x)));
    EXPECT_TRUE(same_bits(dx, ref::log_softmax_backward(ref::log_softmax_forward(x), dy)));
    y.fill(std::numeric_limits<double>::quiet_NaN());
    dx.fill(std::numeric_limits<double>::quiet_NaN());
  }
}

TEST(FastActivations, DispatchSendsFloatAndDoubleToTheFastKernels) {
  // kernels:: gives the fast kernel's bits for float/double (the same as the reference's, so
  // this checks the dispatch compiles and agrees; f50 still goes to the reference).
  const Tensor<float> x = values<float>(Shape{2, 9}, 9, 3.0);
  EXPECT_TRUE(same_bits(kernels::softmax_forward(x), fast::softmax_forward(x)));
  const Tensor<f50> x50 = x.cast<f50>();
  const Tensor<f50> y50 = kernels::relu_forward(x50);
  for (index_t i = 0; i < x.numel(); ++i)
    EXPECT_TRUE(y50[i] == ref::relu_forward(x50)[i]) << i;
}

}  // namespace
}  // namespace tapegrad
