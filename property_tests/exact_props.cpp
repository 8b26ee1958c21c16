// The exact engine (kernels/exact.hpp) against the 50-digit engine, bit for bit: every exact
// kernel on random geometries and adversarial values gives exactly what the reference kernel
// on f50 tensors gives once rounded by io::round_to_double / round_to_float (what
// `tapegrad ref --engine f50` writes), for float and double outputs, on the instruction set a
// case picks; the abs sums bound the 50-digit ones from above; threads change no bit.
//
// Values (ExactValues, shrinking to `ordinary`): full 53-bit doubles; float data; a dynamic
// range of 2^600; sparse powers of two whose sums are float and double midpoints plus or minus
// a tiny term (1 + 2^-53 + 2^-300, ...) or exactly midpoints; cancellation down to the last bit
// (terms +-(1 + k 2^-52) 2^j with a rare tiny remainder); subnormal results (products near
// 2^-1074, or 2^-149 for float); signed zeros; results that overflow the output format.
// Catches: a bound beta that is too small (the midpoint cases then round the wrong way), a
// decision with a wrong gap at a power of two or at max, a wrong sign of zero, a scaling that
// loses bits or overflows, a wrong tie rule in the exactness certificate, a tile-edge or
// padding index bug of a micro-kernel, and -- for ordinary data, where no element may need the
// fallback -- a bound so loose that everything silently falls back.
#include <gtest/gtest.h>
#include <omp.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "cases.hpp"
#include "tapegrad/io/npy.hpp"
#include "tapegrad/kernels/conv2d_exact.hpp"
#include "tapegrad/kernels/conv2d_fast.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/kernels/linear_exact.hpp"
#include "tapegrad/kernels/linear_ref.hpp"
#include "tapegrad/kernels/pool_exact.hpp"
#include "tapegrad/kernels/pool_ref.hpp"
#include "tapegrad/random.hpp"

namespace tapegrad::props {
namespace {

using exact::AbsSumUp;
using exact::Nearest;
using exact::Stats;

// ---------------------------------------------------------------- adversarial values
enum class Style { ordinary, float_data, range600, midpoint, cancel, subnormal, zeros, huge };
constexpr const char* style_names[] = {"ordinary", "float-data", "range-2^600", "midpoint",
                                       "cancellation", "subnormal", "signed-zeros", "overflow"};

struct ExactValues {
  std::uint64_t seed = 0;
  Style style = Style::ordinary;
  std::string str() const {
    return std::string("values(seed=") + std::to_string(seed) + " " +
           style_names[static_cast<int>(style)] + ")";
  }
};

void showValue(const ExactValues& v, std::ostream& os) { os << v.str(); }

rc::Gen<ExactValues> gen_exact_values() {
  return rc::gen::exec([] {
    ExactValues v;
    v.seed = *rc::gen::inRange<std::uint64_t>(0, 1u << 30);
    v.style = static_cast<Style>(*rc::gen::inRange(0, 8));  // shrinks towards ordinary
    return v;
  });
}

// One tensor of the case; `salt` separates the tensors. For T = float outputs the subnormal
// and overflow styles aim at float's range, for double at double's.
template <class T>
Tensor<double> exact_tensor(const Shape& shape, const ExactValues& v, std::uint64_t salt) {
  constexpr bool f32 = std::is_same_v<T, float>;
  Rng rng(Rng::derive(v.seed, salt));
  auto sign = [&] { return rng.below(2) ? -1.0 : 1.0; };
  Tensor<double> t(shape);
  for (double& e : t) {
    switch (v.style) {
      case Style::ordinary:
        e = rng.uniform(-1, 1);
        break;
      case Style::float_data:
        e = static_cast<float>(rng.uniform(-4, 4));
        break;
      case Style::range600:
        e = sign() * std::ldexp(rng.uniform(0.5, 1), static_cast<int>(rng.below(601)) - 300);
        break;
      case Style::midpoint: {
        // Powers of two (so are the products): 1 with 2^-53 or 2^-24 is a midpoint, and a
        // further 2^-(54..353) or 2^-(25..324) pushes it off by less than beta.
        const auto r = rng.below(8);
        const int p = rng.below(2) ? 53 : 24;
        e = r < 3   ? 0.0
            : r < 5 ? sign() * std::ldexp(1.0, -static_cast<int>(rng.below(3)))
            : r < 7 ? sign() * std::ldexp(1.0, -p)
                    : sign() * std::ldexp(1.0, -p - 1 - static_cast<int>(rng.below(300)));
        break;
      }
      case Style::cancel:
        e = rng.below(16) == 0
                ? sign() * std::ldexp(1.0, -60 - static_cast<int>(rng.below(340)))
                : sign() * (1 + static_cast<double>(rng.below(4)) * 0x1p-52) *
                      std::ldexp(1.0, static_cast<int>(rng.below(3)));
        break;
      case Style::subnormal:  // products near the smallest subnormal of T
        e = rng.uniform(-1, 1) * std::ldexp(1.0, f32 ? -72 : -534);
        break;
      case Style::zeros: {
        const auto r = rng.below(4);
        e = r == 0 ? 0.0 : r == 1 ? -0.0 : r == 2 ? sign() * 0x1p-60 : rng.uniform(-2, 2);
        break;
      }
      case Style::huge:  // products and sums near the largest finite T
        e = rng.uniform(-1, 1) * std::ldexp(1.0, f32 ? 63 : 511);
        break;
    }
  }
  return t;
}

// ---------------------------------------------------------------- judging
template <class T>
Tensor<T> rounded(const Tensor<f50>& t) {
  return map(t, [](const f50& v) {
    if constexpr (std::is_same_v<T, float>) {
      return io::round_to_float(v);
    } else {
      return io::round_to_double(v);
    }
  });
}

// Empty when got and want are the same bits, else the first difference.
template <class T>
std::string bit_difference(const std::string& what, const Tensor<T>& got, const Tensor<T>& want) {
  if (got.shape() != want.shape()) return what + ": shape " + got.shape().str() + " vs " + want.shape().str();
  for (index_t i = 0; i < got.numel(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(T)) == 0) continue;
    char buf[160];
    std::snprintf(buf, sizeof buf, "%a (exact engine) vs %a (f50 engine)", double(got[i]),
                  double(want[i]));
    return what + ": element " + io::multi_index_str(got.shape(), i) + " differs: " + buf;
  }
  return "";
}

#define EXACT_CHECK(what, got, want)                                \
  do {                                                              \
    const std::string diff_ = bit_difference(what, got, want);      \
    if (!diff_.empty()) RC_FAIL(diff_);                             \
  } while (0)

// The instruction sets this CPU runs; a case picks one, the process is left on "best".
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
struct IsaScope {
  explicit IsaScope(const std::string& isa) { fast::set_isa(isa); }
  ~IsaScope() { fast::set_isa("best"); }
};
std::string pick_isa() {
  static const std::vector<std::string> isas = available_isas();
  return *rc::gen::elementOf(isas);
}

// Ordinary data leaves no element within beta of a boundary: no fallback may run.
void classify_fallbacks(const ExactValues& v, const Stats& st) {
  RC_CLASSIFY(st.fallbacks > 0, "fallback ran");
  RC_TAG(style_names[static_cast<int>(v.style)]);
  if (v.style == Style::ordinary || v.style == Style::float_data) RC_ASSERT(st.fallbacks == 0);
}

// ---------------------------------------------------------------- the properties
template <class T>
void conv2d_equals_f50() {
  // Up to 5 channels per group and inputs 20 wider than the smallest valid one: ragged tiles of
  // every micro-kernel (4 x 16 outputs, 3 x 2 lane sums on AVX-512) are common.
  // (at full size: RapidCheck's ranges otherwise start small and grow over the run).
  const Conv2dCase geo = *rc::gen::resize(100, gen_conv2d_case(true, 5, 20));
  const Conv2dGeom& g = geo.g;
  const ExactValues v = *gen_exact_values();
  const IsaScope isa(pick_isa());
  classify_conv(geo);
  const Tensor<double> x = exact_tensor<T>(g.x_shape(), v, 1), w = exact_tensor<T>(g.w_shape(), v, 2),
                       b = exact_tensor<T>(g.b_shape(), v, 3), dy = exact_tensor<T>(g.y_shape(), v, 4);
  const Tensor<f50> x5 = x.cast<f50>(), w5 = w.cast<f50>(), b5 = b.cast<f50>(), dy5 = dy.cast<f50>();
  const std::string at = " " + geo.descriptor() + " " + v.str() + " in " + ScalarTraits<T>::name;
  Stats st;
  EXACT_CHECK("conv2d_forward" + at,
              exact::conv2d_forward<Nearest<T>>(g, x, w, g.has_bias ? &b : nullptr, &st),
              rounded<T>(ref::conv2d_forward(g, x5, w5, g.has_bias ? &b5 : nullptr)));
  EXACT_CHECK("conv2d_backward_data" + at, exact::conv2d_backward_data<Nearest<T>>(g, dy, w, &st),
              rounded<T>(ref::conv2d_backward_data(g, dy5, w5)));
  EXACT_CHECK("conv2d_backward_weights" + at,
              exact::conv2d_backward_weights<Nearest<T>>(g, x, dy, &st),
              rounded<T>(ref::conv2d_backward_weights(g, x5, dy5)));
  EXACT_CHECK("conv2d_backward_bias" + at, exact::conv2d_backward_bias<Nearest<T>>(g, dy, &st),
              rounded<T>(ref::conv2d_backward_bias(g, dy5)));
  classify_fallbacks(v, st);
}

RC_GTEST_PROP(ExactConv2d, equalsTheFiftyDigitEngineBitForBitInDouble, ()) {
  conv2d_equals_f50<double>();
}
RC_GTEST_PROP(ExactConv2d, equalsTheFiftyDigitEngineBitForBitInFloat, ()) {
  conv2d_equals_f50<float>();
}

template <class T>
void linear_equals_f50() {
  const index_t n = *rc::gen::inRange<index_t>(1, 7), in = *rc::gen::inRange<index_t>(1, 40),
                out = *rc::gen::inRange<index_t>(1, 40);
  const bool has_bias = *rc::gen::arbitrary<bool>();
  const ExactValues v = *gen_exact_values();
  const IsaScope isa(pick_isa());
  const Shape xs{n, in}, ws{out, in}, bs{out};
  const LinearGeom g = make_linear_geom(xs, ws, has_bias ? &bs : nullptr);
  const Tensor<double> x = exact_tensor<T>(xs, v, 1), w = exact_tensor<T>(ws, v, 2),
                       b = exact_tensor<T>(bs, v, 3), dy = exact_tensor<T>(g.y_shape(), v, 4);
  const Tensor<f50> x5 = x.cast<f50>(), w5 = w.cast<f50>(), b5 = b.cast<f50>(), dy5 = dy.cast<f50>();
  const std::string at = " " + g.descriptor() + " " + v.str() + " in " + ScalarTraits<T>::name;
  Stats st;
  EXACT_CHECK("linear_forward" + at,
              exact::linear_forward<Nearest<T>>(g, x, w, has_bias ? &b : nullptr, &st),
              rounded<T>(ref::linear_forward(g, x5, w5, has_bias ? &b5 : nullptr)));
  EXACT_CHECK("linear_backward_data" + at, exact::linear_backward_data<Nearest<T>>(g, dy, w, &st),
              rounded<T>(ref::linear_backward_data(g, dy5, w5)));
  EXACT_CHECK("linear_backward_weights" + at,
              exact::linear_backward_weights<Nearest<T>>(g, x, dy, &st),
              rounded<T>(ref::linear_backward_weights(g, x5, dy5)));
  EXACT_CHECK("linear_backward_bias" + at, exact::linear_backward_bias<Nearest<T>>(g, dy, &st),
              rounded<T>(ref::linear_backward_bias(g, dy5)));
  classify_fallbacks(v, st);
}

RC_GTEST_PROP(ExactLinear, equalsTheFiftyDigitEngineBitForBitInDouble, ()) {
  linear_equals_f50<double>();
}
RC_GTEST_PROP(ExactLinear, equalsTheFiftyDigitEngineBitForBitInFloat, ()) {
  linear_equals_f50<float>();
}

template <class T>
void avg_pool_equals_f50() {
  const PoolCase geo = *gen_pool_case();
  const Pool2dGeom& g = geo.g;
  const ExactValues v = *gen_exact_values();
  const IsaScope isa(pick_isa());
  classify_pool(geo);
  const Tensor<double> x = exact_tensor<T>(g.x_shape(), v, 1), dy = exact_tensor<T>(g.y_shape(), v, 4);
  const std::string at = " " + g.descriptor() + " " + v.str() + " in " + ScalarTraits<T>::name;
  Stats st;
  EXACT_CHECK("avg_pool2d_forward" + at, exact::avg_pool2d_forward<Nearest<T>>(g, x, &st),
              rounded<T>(ref::avg_pool2d_forward(g, x.cast<f50>())));
  EXACT_CHECK("avg_pool2d_backward" + at, exact::avg_pool2d_backward<Nearest<T>>(g, dy, &st),
              rounded<T>(ref::avg_pool2d_backward(g, dy.cast<f50>())));
  RC_CLASSIFY(g.prm.kernel[0] * g.prm.kernel[1] == 1 || g.prm.kernel[0] * g.prm.kernel[1] == 2 ||
                  g.prm.kernel[0] * g.prm.kernel[1] == 4,
              "power-of-two window");
  classify_fallbacks(v, st);
}

RC_GTEST_PROP(ExactAvgPool2d, equalsTheFiftyDigitEngineBitForBitInDouble, ()) {
  avg_pool_equals_f50<double>();
}
RC_GTEST_PROP(ExactAvgPool2d, equalsTheFiftyDigitEngineBitForBitInFloat, ()) {
  avg_pool_equals_f50<float>();
}

// S+ (AbsSumUp) >= S for every element, and at most a few ulps above: S+ >= F_S (1 - n 2^-166)
// (F_S, the reference on magnitudes, is within n 2^-167 S of S) and S+ <= F_S (1 + 2^-49) plus
// the smallest subnormal (S+ is s + |l| + beta rounded up twice, beta ~ n^2 2^-106 S).
// Catches: a rounding that goes down, an unscaling that loses the bound in the subnormal range,
// a sum of magnitudes that forgot a term.
RC_GTEST_PROP(ExactConv2d, absSumsAreUpperBoundsOfTheFiftyDigitSums, ()) {
  const Conv2dCase geo = *gen_conv2d_case(true, 4, 8);
  const Conv2dGeom& g = geo.g;
  const ExactValues v = *gen_exact_values();
  const Tensor<double> x = exact_tensor<double>(g.x_shape(), v, 1),
                       w = exact_tensor<double>(g.w_shape(), v, 2),
                       b = exact_tensor<double>(g.b_shape(), v, 3),
                       dy = exact_tensor<double>(g.y_shape(), v, 4);
  auto mag = [](const Tensor<double>& t) {
    return map(t, [](double e) { return f50(std::fabs(e)); });
  };
  const Tensor<f50> ab = mag(b);
  auto check = [&](const char* what, const Tensor<double>& up, const Tensor<f50>& s, index_t n) {
    const f50 slack = f50(static_cast<double>(n)) * ldexp(f50(1), -166);
    for (index_t i = 0; i < up.numel(); ++i) {
      const f50 u(up[i]), hi = s[i] * (1 + slack) * (1 + f50(0x1p-49)) + f50(0x1p-1074);
      // S+ = inf is right only where S is at the top of double's range
      const bool above = std::isinf(up[i]) ? hi >= f50(std::numeric_limits<double>::max())
                                           : u >= s[i] * (1 - slack);
      if (!above || !(std::isinf(up[i]) || u <= hi))
        RC_FAIL(std::string(what) + " " + geo.descriptor() + " " + v.str() + ": S+ " +
                std::to_string(up[i]) + " vs S " + std::to_string(static_cast<double>(s[i])) +
                " at " + io::multi_index_str(up.shape(), i));
    }
  };
  check("forward", exact::conv2d_forward<AbsSumUp>(g, x, w, g.has_bias ? &b : nullptr),
        ref::conv2d_forward(g, mag(x), mag(w), g.has_bias ? &ab : nullptr),
        g.c_per_group() * g.r * g.s + 1);
  check("backward_data", exact::conv2d_backward_data<AbsSumUp>(g, dy, w),
        ref::conv2d_backward_data(g, mag(dy), mag(w)), g.k_per_group() * g.r * g.s);
  check("backward_weights", exact::conv2d_backward_weights<AbsSumUp>(g, x, dy),
        ref::conv2d_backward_weights(g, mag(x), mag(dy)), g.n * g.p * g.q);
  check("backward_bias", exact::conv2d_backward_bias<AbsSumUp>(g, dy),
        ref::conv2d_backward_bias(g, mag(dy)), g.n * g.p * g.q);
  RC_TAG(style_names[static_cast<int>(v.style)]);
}

// 1, 2 and 3 threads: the same bits and the same fallback count (the output is a function of
// the inputs alone, and the tiles are fixed by the shape). Catches a data race, an output
// written by two threads, a fallback decision that depends on the partition.
RC_GTEST_PROP(ExactConv2d, bitsAndFallbacksAreTheSameForOneTwoAndThreeThreads, ()) {
  // Big enough that every call splits its tiles over the threads (>= 2^16 terms in all).
  Conv2dParams prm;
  prm.groups = *rc::gen::element<index_t>(1, 2);
  prm.stride = {*rc::gen::element<index_t>(1, 2), 1};
  prm.pad = {*rc::gen::element<index_t>(0, 1), *rc::gen::element<index_t>(0, 1)};
  prm.dilation = {1, *rc::gen::element<index_t>(1, 2)};
  const index_t cg = *rc::gen::element<index_t>(4, 5), kg = *rc::gen::element<index_t>(4, 5),
                hw = *rc::gen::element<index_t>(16, 20);
  const Conv2dGeom g = make_conv2d_geom({2, prm.groups * cg, hw + 8, hw},
                                        {prm.groups * kg, cg, 3, 3}, nullptr, prm);
  const ExactValues v = *gen_exact_values();
  const Tensor<double> x = exact_tensor<double>(g.x_shape(), v, 1),
                       w = exact_tensor<double>(g.w_shape(), v, 2),
                       dy = exact_tensor<double>(g.y_shape(), v, 4);
  const int saved = omp_get_max_threads();
  std::vector<Tensor<double>> first;
  index_t first_fallbacks = 0;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    Stats st;
    std::vector<Tensor<double>> outs;
    outs.push_back(exact::conv2d_forward<Nearest<double>>(g, x, w, nullptr, &st));
    outs.push_back(exact::conv2d_backward_data<Nearest<double>>(g, dy, w, &st));
    outs.push_back(exact::conv2d_backward_weights<Nearest<double>>(g, x, dy, &st));
    omp_set_num_threads(saved);
    if (threads == 1) {
      first = std::move(outs);
      first_fallbacks = st.fallbacks;
      continue;
    }
    const std::string at = " " + g.descriptor() + " " + v.str() + " with " +
                           std::to_string(threads) + " threads";
    for (std::size_t i = 0; i < outs.size(); ++i) EXACT_CHECK("output " + std::to_string(i) + at, outs[i], first[i]);
    RC_ASSERT(st.fallbacks == first_fallbacks);
  }
}

}  // namespace
}  // namespace tapegrad::props
