// The fast (OpenMP, vectorized) kernels: within the derived error bound of the 50-digit
// reference for every instruction set the CPU offers, and bitwise identical for 1, 2, 3 and 4
// threads. Pooling's fast kernels compute in the reference's order, so they must equal the
// reference bit for bit.
//
// Bounds as in props_accuracy.cpp (Higham eq. 3.5 holds for ANY summation order, blocked and
// FMA'd included): conv2d y gamma(Cg*R*S + 1) * (conv(|x|,|w|) + |b|), dx gamma(K/G*R*S),
// dw and db gamma(N*P*Q), linear gamma(in + 1), gamma(out), gamma(N).
// Catches: a blocking bug at a tile edge (the cases reach 8 channels per group and inputs
// 10 wider than the smallest valid one, so ragged tiles are common), a wrong im2col index
// under padding/dilation/stride, a reduction split across threads whose partial sums are
// combined in thread order (not bitwise stable), a data race.
#include <gtest/gtest.h>
#include <omp.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "cases.hpp"
#include "tapegrad/kernels/activation.hpp"
#include "tapegrad/kernels/activation_fast.hpp"
#include "tapegrad/kernels/conv2d.hpp"
#include "tapegrad/kernels/conv2d_fast.hpp"
#include "tapegrad/kernels/linear.hpp"
#include "tapegrad/kernels/linear_fast.hpp"
#include "tapegrad/kernels/pool.hpp"
#include "tapegrad/kernels/pool_fast.hpp"

namespace tapegrad::props {
namespace {

using T50 = Tensor<f50>;

// " mb2ic3... in float (isa avx2)": where a failure happened. Appended piece by piece: the
// `" " + std::string` chain trips GCC 12's false -Wrestrict at -O3 (GCC bug 105651).
std::string where(const std::string& descriptor, const char* scalar, const std::string& isa,
                  const std::string& plan = {}) {
  std::string s = " ";
  s += descriptor;
  s += " in ";
  s += scalar;
  s += " (isa ";
  s += isa;
  if (!plan.empty()) {
    s += ", ";
    s += plan;
  }
  s += ')';
  return s;
}

// The instruction sets this CPU runs (set_isa throws for the others), "best" last so that the
// process is left in its default state.
std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (const char* name : {"generic", "avx2", "avx512"}) {
    try {
      fast::set_isa(name);
      out.emplace_back(name);
    } catch (const std::invalid_argument&) {
    }
  }
  fast::set_isa("best");
  return out;
}

template <class T>
bool same_bits(const Tensor<T>& a, const Tensor<T>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), sizeof(T) * static_cast<std::size_t>(a.numel())) == 0;
}

// Restores the thread count, instruction set and conv2d layout when a property returns or
// fails.
struct FastState {
  int threads = omp_get_max_threads();
  ~FastState() {
    omp_set_num_threads(threads);
    fast::set_isa("best");
    fast::set_conv2d_tier("auto");
  }
};

template <class T>
void fast_conv2d_within_bound() {
  const Conv2dCase c = *gen_conv2d_case(true, 8, 10);
  classify_conv(c);
  const Conv2dGeom& g = c.g;
  const Tensor<T> x = to<T>(c.x), w = to<T>(c.w), b = to<T>(c.b), gy = to<T>(c.gy);
  const T50 x5 = x.template cast<f50>(), w5 = w.template cast<f50>(), b5 = b.template cast<f50>(),
            gy5 = gy.template cast<f50>(), ab5 = abs50(b5);
  const Tensor<T>* bp = g.has_bias ? &b : nullptr;
  const T50 y_ex = ref::conv2d_forward(g, x5, w5, g.has_bias ? &b5 : nullptr);
  const T50 y_tol = reduction_tol<T>(
      ref::conv2d_forward(g, abs50(x5), abs50(w5), g.has_bias ? &ab5 : nullptr),
      g.c_per_group() * g.r * g.s + 1);
  const T50 dx_ex = ref::conv2d_backward_data(g, gy5, w5);
  const T50 dx_tol = reduction_tol<T>(ref::conv2d_backward_data(g, abs50(gy5), abs50(w5)),
                                      g.k_per_group() * g.r * g.s);
  const T50 dw_ex = ref::conv2d_backward_weights(g, x5, gy5);
  const T50 dw_tol = reduction_tol<T>(ref::conv2d_backward_weights(g, abs50(x5), abs50(gy5)),
                                      g.n * g.p * g.q);
  const T50 db_ex = ref::conv2d_backward_bias(g, gy5);
  const T50 db_tol = reduction_tol<T>(ref::conv2d_backward_bias(g, abs50(gy5)), g.n * g.p * g.q);
  FastState restore;
  for (const std::string& isa : available_isas())
    for (const char* tier : {"pixels", "batch", "channels"}) {
    fast::set_isa(isa);
    fast::set_conv2d_tier(tier);
    const std::string at = where(c.descriptor(), ScalarTraits<T>::name, isa,
                                 fast::conv2d_plan<T>(g, fast::Conv2dDirection::forward));
    PROPS_CHECK(judge("fast::conv2d_forward" + at, fast::conv2d_forward(g, x, w, bp).template cast<f50>(),
                      y_ex, y_tol));
    PROPS_CHECK(judge("fast::conv2d_backward_data" + at,
                      fast::conv2d_backward_data(g, gy, w).template cast<f50>(), dx_ex, dx_tol));
    PROPS_CHECK(judge("fast::conv2d_backward_weights" + at,
                      fast::conv2d_backward_weights(g, x, gy).template cast<f50>(), dw_ex, dw_tol));
    PROPS_CHECK(judge("fast::conv2d_backward_bias" + at,
                      fast::conv2d_backward_bias(g, gy).template cast<f50>(), db_ex, db_tol));
    }
  RC_CLASSIFY(g.c_per_group() * g.r * g.s > 32, "long forward reduction (>32)");
}

RC_GTEST_PROP(FastConv2d, withinDerivedBoundOfFiftyDigitsInDouble, ()) { fast_conv2d_within_bound<double>(); }
RC_GTEST_PROP(FastConv2d, withinDerivedBoundOfFiftyDigitsInFloat, ()) { fast_conv2d_within_bound<float>(); }

template <class T>
void fast_linear_within_bound() {
  const index_t n = *rc::gen::inRange<index_t>(1, 9), in = *rc::gen::inRange<index_t>(1, 70),
                out = *rc::gen::inRange<index_t>(1, 40);
  const bool has_bias = *rc::gen::arbitrary<bool>();
  const Values v = *gen_values();
  const Shape xs{n, in}, ws{out, in}, bs{out};
  const LinearGeom g = make_linear_geom(xs, ws, has_bias ? &bs : nullptr);
  const Tensor<T> x = to<T>(make_tensor(xs, v, 1)), w = to<T>(make_tensor(ws, v, 2)),
                  b = to<T>(make_tensor(bs, v, 3)), gy = to<T>(make_tensor(g.y_shape(), v, 4));
  const T50 x5 = x.template cast<f50>(), w5 = w.template cast<f50>(), b5 = b.template cast<f50>(),
            gy5 = gy.template cast<f50>(), ab5 = abs50(b5);
  FastState restore;
  for (const std::string& isa : available_isas()) {
    fast::set_isa(isa);
    const std::string at = where(g.descriptor(), ScalarTraits<T>::name, isa);
    PROPS_CHECK(judge("fast::linear_forward" + at,
                      fast::linear_forward(g, x, w, has_bias ? &b : nullptr).template cast<f50>(),
                      ref::linear_forward(g, x5, w5, has_bias ? &b5 : nullptr),
                      reduction_tol<T>(ref::linear_forward(g, abs50(x5), abs50(w5),
                                                           has_bias ? &ab5 : nullptr), in + 1)));
    PROPS_CHECK(judge("fast::linear_backward_data" + at,
                      fast::linear_backward_data(g, gy, w).template cast<f50>(),
                      ref::linear_backward_data(g, gy5, w5),
                      reduction_tol<T>(ref::linear_backward_data(g, abs50(gy5), abs50(w5)), out)));
    PROPS_CHECK(judge("fast::linear_backward_weights" + at,
                      fast::linear_backward_weights(g, x, gy).template cast<f50>(),
                      ref::linear_backward_weights(g, x5, gy5),
                      reduction_tol<T>(ref::linear_backward_weights(g, abs50(x5), abs50(gy5)), n)));
    PROPS_CHECK(judge("fast::linear_backward_bias" + at,
                      fast::linear_backward_bias(g, gy).template cast<f50>(),
                      ref::linear_backward_bias(g, gy5),
                      reduction_tol<T>(ref::linear_backward_bias(g, abs50(gy5)), n)));
  }
}

RC_GTEST_PROP(FastLinear, withinDerivedBoundOfFiftyDigitsInDouble, ()) { fast_linear_within_bound<double>(); }
RC_GTEST_PROP(FastLinear, withinDerivedBoundOfFiftyDigitsInFloat, ()) { fast_linear_within_bound<float>(); }

// Fast pooling keeps the reference's order of operations (see pool_fast.hpp): same bits.
template <class T>
void fast_pool_equals_reference() {
  const PoolCase c = *gen_pool_case();
  classify_pool(c);
  const Pool2dGeom& g = c.g;
  const Tensor<T> x = to<T>(c.x), gy = to<T>(c.gy);
  RC_ASSERT(same_bits(fast::max_pool2d_forward(g, x), ref::max_pool2d_forward(g, x)));
  RC_ASSERT(same_bits(fast::max_pool2d_backward(g, x, gy), ref::max_pool2d_backward(g, x, gy)));
  RC_ASSERT(same_bits(fast::avg_pool2d_forward(g, x), ref::avg_pool2d_forward(g, x)));
  RC_ASSERT(same_bits(fast::avg_pool2d_backward(g, gy), ref::avg_pool2d_backward(g, gy)));
}

RC_GTEST_PROP(FastPool2d, bitwiseEqualToReferenceInDouble, ()) { fast_pool_equals_reference<double>(); }
RC_GTEST_PROP(FastPool2d, bitwiseEqualToReferenceInFloat, ()) { fast_pool_equals_reference<float>(); }

// Fast activations keep the reference's expressions, order and libm calls (activation_fast.hpp):
// same bits, on any shape of rank 2 to 4 (softmax along dim 1 with an inner stride) and any
// values the suite generates, logits large enough to overflow exp without the max subtraction.
// Catches: a reordered or fused expression, a softmax slice read with the wrong stride.
template <class T>
void fast_activations_equal_reference() {
  const index_t rank = *rc::gen::inRange<index_t>(2, 5);
  std::vector<index_t> dims;
  for (index_t d = 0; d < rank; ++d) dims.push_back(*rc::gen::inRange<index_t>(1, d < 2 ? 12 : 6));
  const Shape s(dims);
  const Values v = *gen_values(-12, 11);
  const Tensor<T> x = to<T>(make_tensor(s, v, 1)), gy = to<T>(make_tensor(s, v, 2));
  const Tensor<T> yr = ref::relu_forward(x), ys = ref::sigmoid_forward(x),
                  yt = ref::tanh_forward(x), ysm = ref::softmax_forward(x),
                  ylsm = ref::log_softmax_forward(x);
  const std::string at = std::string(" x") + s.str() + " " + v.str() + " in " + ScalarTraits<T>::name;
  auto check = [&](const char* what, const Tensor<T>& fast_result, const Tensor<T>& ref_result) {
    if (!same_bits(fast_result, ref_result))
      RC_FAIL(std::string("fast::") + what + " differs from the reference's bits" + at);
  };
  check("relu_forward", fast::relu_forward(x), yr);
  check("relu_backward", fast::relu_backward(x, gy), ref::relu_backward(x, gy));
  check("sigmoid_forward", fast::sigmoid_forward(x), ys);
  check("sigmoid_backward", fast::sigmoid_backward(ys, gy), ref::sigmoid_backward(ys, gy));
  check("tanh_forward", fast::tanh_forward(x), yt);
  check("tanh_backward", fast::tanh_backward(yt, gy), ref::tanh_backward(yt, gy));
  check("softmax_forward", fast::softmax_forward(x), ysm);
  check("softmax_backward", fast::softmax_backward(ysm, gy), ref::softmax_backward(ysm, gy));
  check("log_softmax_forward", fast::log_softmax_forward(x), ylsm);
  check("log_softmax_backward", fast::log_softmax_backward(ylsm, gy),
        ref::log_softmax_backward(ylsm, gy));
  RC_CLASSIFY(rank > 2, "softmax with an inner stride");
}

RC_GTEST_PROP(FastActivations, bitwiseEqualToReferenceInDouble, ()) { fast_activations_equal_reference<double>(); }
RC_GTEST_PROP(FastActivations, bitwiseEqualToReferenceInFloat, ()) { fast_activations_equal_reference<float>(); }

// Every dispatch kernel (kernels::, fast for float/double) gives the same bits for 1..4
// threads: conv2d and linear in all four directions, both pools in both, the activations.
template <class T>
void dispatch_bitwise_across_threads() {
  const Conv2dCase c = *gen_conv2d_case(true, 8, 10);
  const PoolCase pc = *gen_pool_case();
  const index_t n = *rc::gen::inRange<index_t>(1, 9), in = *rc::gen::inRange<index_t>(1, 70),
                out = *rc::gen::inRange<index_t>(1, 40);
  const Conv2dGeom& g = c.g;
  const Tensor<T> x = to<T>(c.x), w = to<T>(c.w), b = to<T>(c.b), gy = to<T>(c.gy);
  const Tensor<T>* bp = g.has_bias ? &b : nullptr;
  const LinearGeom lg = make_linear_geom(Shape{n, in}, Shape{out, in}, nullptr);
  const Tensor<T> lx = to<T>(make_tensor(lg.x_shape(), c.values, 31)),
                  lw = to<T>(make_tensor(lg.w_shape(), c.values, 32)),
                  lgy = to<T>(make_tensor(lg.y_shape(), c.values, 33));
  const Tensor<T> px = to<T>(pc.x), pgy = to<T>(pc.gy);
  auto run = [&] {
    return std::vector<Tensor<T>>{
        kernels::conv2d_forward(g, x, w, bp),      kernels::conv2d_backward_data(g, gy, w),
        kernels::conv2d_backward_weights(g, x, gy), kernels::conv2d_backward_bias(g, gy),
        kernels::linear_forward(lg, lx, lw, nullptr), kernels::linear_backward_data(lg, lgy, lw),
        kernels::linear_backward_weights(lg, lx, lgy), kernels::linear_backward_bias(lg, lgy),
        kernels::max_pool2d_forward(pc.g, px),     kernels::max_pool2d_backward(pc.g, px, pgy),
        kernels::avg_pool2d_forward(pc.g, px),     kernels::avg_pool2d_backward(pc.g, pgy),
        kernels::relu_backward(x, x),              kernels::softmax_forward(x),
        kernels::log_softmax_backward(x, x)};
  };
  static const char* names[] = {"conv2d_forward", "conv2d_backward_data", "conv2d_backward_weights",
                                "conv2d_backward_bias", "linear_forward", "linear_backward_data",
                                "linear_backward_weights", "linear_backward_bias",
                                "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward",
                                "avg_pool2d_backward", "relu_backward", "softmax_forward",
                                "log_softmax_backward"};
  FastState restore;
  omp_set_num_threads(1);
  const auto one = run();
  for (int threads = 2; threads <= 4; ++threads) {
    omp_set_num_threads(threads);
    const auto many = run();
    for (std::size_t i = 0; i < one.size(); ++i)
      if (!same_bits(one[i], many[i]))
        RC_FAIL(std::string("kernels::") + names[i] + " differs between 1 and " +
                std::to_string(threads) + " threads (" + g.descriptor() + ", " + lg.descriptor() +
                ", " + pc.g.descriptor() + ")");
  }
}

RC_GTEST_PROP(FastKernels, bitwiseIdenticalForOneToFourThreadsInDouble, ()) { dispatch_bitwise_across_threads<double>(); }
RC_GTEST_PROP(FastKernels, bitwiseIdenticalForOneToFourThreadsInFloat, ()) { dispatch_bitwise_across_threads<float>(); }

}  // namespace
}  // namespace tapegrad::props
