// Private to the exact engine: the accumulator, the scaling, the error bound and the decision
// of include/tapegrad/kernels/exact.hpp (read its proof first; the numbered steps below refer
// to it), and the two vectorized micro-kernels every exact kernel is built on.
//
// This file and exact_sum.cpp are compiled with -ffp-contract=off: the error-free
// transformations need every + - * rounded on its own (a compiler fusing s + a*b into one fma
// would break TwoSum's premise). The one fma they need is written explicitly.
#pragma once

#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <tuple>

#include "tapegrad/kernels/exact.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/shape.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::exact::detail {

// ---------------------------------------------------------------- error-free transformations
struct DD {
  double hi, lo;  // hi + lo, exactly
};
// Knuth's TwoSum: a + b = hi + lo exactly (any finite a, b without overflow), hi = fl(a + b).
inline DD two_sum(double a, double b) {
  const double s = a + b;
  const double z = s - a;
  return {s, (a - (s - z)) + (b - z)};
}
// a * b = hi + lo exactly when a*b - fl(a*b) has no bits below 2^-1074 (step 2); hi = fl(a*b).
inline DD two_prod(double a, double b) {
  const double p = a * b;
  return {p, std::fma(a, b, -p)};
}

// ---------------------------------------------------------------- the accumulator (step 3)
// One element's raw result in the scaled domain: s + c approximates the sum, a = fl(sum |p|).
struct Raw {
  double s = 0, c = 0, a = 0;
};
// One more exact term p (a bias, or a value times 1): the lane step with e = 0.
inline void add_term(Raw& r, double p) {
  const DD t = two_sum(r.s, p);
  r.s = t.hi;
  r.c += t.lo;
  r.a += std::fabs(p);
}
// Merges another partial sum of the same element (a lane): TwoSum on s, rounded sums on c, a.
inline void merge(Raw& r, const Raw& o) {
  const DD t = two_sum(r.s, o.s);
  r.s = t.hi;
  r.c = (r.c + o.c) + t.lo;
  r.a += o.a;
}

// ---------------------------------------------------------------- scaling (step 1)
// Binary exponents (frexp: |v| in [2^(e-1), 2^e)) of the largest and smallest nonzero |v|, and
// the exponent of the lowest set bit over all of them (2^lsb divides every value).
struct Range {
  int emax = std::numeric_limits<int>::min();
  int emin = std::numeric_limits<int>::max();
  int lsb = std::numeric_limits<int>::max();
  bool empty() const { return emax == std::numeric_limits<int>::min(); }  // all zero
  void add(double v) {
    if (v == 0) return;
    int e;
    (void)std::frexp(v, &e);
    emax = e > emax ? e : emax;
    emin = e < emin ? e : emin;
    const int b = lowest_bit(v);
    lsb = b < lsb ? b : lsb;
  }
  // The exponent of the lowest set bit of v != 0 (finite).
  static int lowest_bit(double v) {
    const std::uint64_t bits = std::bit_cast<std::uint64_t>(v);
    const int biased = static_cast<int>((bits >> 52) & 0x7ff);
    const std::uint64_t mant = bits & ((std::uint64_t{1} << 52) - 1);
    if (biased == 0) return -1074 + std::countr_zero(mant);  // subnormal
    return biased - 1075 + std::countr_zero(mant | (std::uint64_t{1} << 52));
  }
};
// The range of n values; std::domain_error naming `what` at the first NaN or infinity.
Range range_of(const double* v, index_t n, const char* what);

// Terms a*b (a scaled by 2^sa, b by 2^sb) and extra terms c (scaled by 2^sigma, sigma =
// sa + sb; when a or b is all zero, sa = sb = 0: the products are 0 at any scale). ok: every scaled a and b is exact (otherwise the call falls back entirely).
// zero_exact: no nonzero scaled term rounds to zero, so a = 0 means every term is exactly 0.
// kappa: 2^kappa divides every scaled term (the exactness certificate of Sink::put).
struct Scale {
  int sa = 0, sb = 0, sigma = 0;
  bool ok = true, zero_exact = true;
  int kappa = std::numeric_limits<int>::min();
};
// Products of a and b plus extra terms from range c, n terms per element at most.
Scale choose_scale(const Range& a, const Range& b, const Range& c, index_t n);
// Plain sums of values from range a (sb = 0: the other factor is exactly 1).
Scale choose_scale_sum(const Range& a, index_t n);

// v * 2^e rounded once, as std::ldexp, but one multiplication when 2^e is a normal double (the
// scalings here are exact by construction; the decisions use it on their candidates).
inline double mul_pow2(double v, int e) {
  if (e >= -1022 && e <= 1023)
    return v * std::bit_cast<double>(static_cast<std::uint64_t>(e + 1023) << 52);
  return std::ldexp(v, e);
}
inline double scale_by(double v, int e) { return mul_pow2(v, e); }

// ---------------------------------------------------------------- the bound (steps 3, 4)
// beta(a) = c1 * a + c2 bounds |E - (s + c)| and |F - (s + c)| (rounded up) for an element of
// at most n terms summed in `lanes` lanes; extra_f50 more roundings of the reference (1 for
// avg_pool2d's division).
struct Bound {
  double c1 = 0, c2 = 0;
  double beta(double a) const { return (c1 * a + c2) * (1 + 0x1p-50); }
};
Bound make_bound(index_t n, int lanes, int extra_f50 = 0);
// When every scaled term is a multiple of 2^kappa, each TwoSum error q and fma error e is too,
// and sum |q| + sum |e| <= u (n + L + 2) 2 a. If that is below 2^(kappa + 53), every addition
// into c is exact (multiples of 2^kappa below 2^(kappa+53) are doubles), so s + c = E exactly,
// and the reference's partial sums (multiples of 2^kappa below 2^(kappa+106)) fit in 168 bits,
// so F = E: beta = 0. Returns the bound on a that guarantees it (0: never).
double exactness_threshold(const Scale& sc, index_t n, int lanes);

// ---------------------------------------------------------------- the decisions (steps 5, 6)
// A = h + l exactly (|l| <= ulp(h)/2) in the domain scaled by 2^sigma, |E - A|, |F - A| <= beta.
// Sets y = round_T(E) = round_T(F) and returns true when that is proven; false otherwise.
// beta = 0 means A = E = F exactly: then ties are decided too (to even, as IEEE and
// io::round_to_* do).
template <class T>
bool decide_nearest(double h, double l, double beta, int sigma, T& y);
// A double >= E (unscaled), for sums of magnitudes: every rounding directed up.
double upper_bound(double h, double l, double beta, int sigma);
// A = h + l unscaled, in f50 (exact).
f50 unscaled_value(double h, double l, int sigma);
// (h + l + [-beta, beta]) / d as a new (h, l, beta), d a small positive integer (avg_pool2d).
void divide(double& h, double& l, double& beta, double d);

// ---------------------------------------------------------------- the micro-kernels
// Row kernel ("lanes over outputs"): for o < row_mo and j < row_width,
//   out[o * ldo + j] = sum over t < nt of coef[t * row_mo + o] * src[t][j]
// (coef packed row_mo to a term, zero rows for missing outputs; every src[t] readable for
// row_width doubles).
using RowFn = void (*)(index_t nt, const double* coef, const double* const* src, Raw* out,
                       index_t ldo);
// Dot kernel ("lanes over the reduction"): for i < dot_mi and j < dot_nj,
//   out[i * dot_nj + j] = sum over u < nu, v < nv, l < len of
//                         a[i][u*au + v*av + l] * b[j][u*bu + v*bv + l]
// (len a multiple of lanes; lanes merged at the end in a fixed tree).
using DotFn = void (*)(const double* const* a, const double* const* b, index_t nu, index_t au,
                       index_t bu, index_t nv, index_t av, index_t bv, index_t len, Raw* out);

struct Kernels {
  const char* isa;
  int lanes;
  int row_mo, row_width;
  int dot_mi, dot_nj;
  RowFn row;
  DotFn dot;
};
// The kernels for the instruction set the fast kernels use (fast::isa(), fast::set_isa).
const Kernels& kernels();

// ---------------------------------------------------------------- emitting an element
// One output tensor being filled: what to emit (the tag), the scaling and bound of its call,
// and the reference element function for the fallback. Thread-safe: elements are disjoint and
// the fallback counter is atomic.
enum class Emit { nearest_float, nearest_double, abs_sum_up, precise };

template <class Tag>
constexpr Emit emit_of() {
  if constexpr (std::is_same_v<Tag, Nearest<float>>) return Emit::nearest_float;
  if constexpr (std::is_same_v<Tag, Nearest<double>>) return Emit::nearest_double;
  if constexpr (std::is_same_v<Tag, AbsSumUp>) return Emit::abs_sum_up;
  if constexpr (std::is_same_v<Tag, Precise>) return Emit::precise;
}

struct Sink {
  Emit emit = Emit::nearest_double;
  void* out = nullptr;  // float*, double* or f50*, as emit says
  Scale scale;
  Bound bound;
  index_t n_terms = 0;  // per element, for the upper bound of a fallback value
  // The exactness certificate: an element with a < exact_below was summed without a single
  // rounding, in s + c and in the reference alike (beta = 0; see exactness_threshold).
  double exact_below = 0;
  double divisor = 1;   // avg_pool2d: the window size
  // The reference element (flat output index -> F), on |inputs| when emit is abs_sum_up.
  std::function<f50(index_t)> reference;
  std::atomic<index_t> fallbacks{0};

  // Emits element i from its raw accumulators.
  void put(index_t i, const Raw& r);
  // Emits element i from the reference alone (every element of an unscalable call).
  void put_reference(index_t i);
};

// |t| element-wise: the inputs of the reference when an unscalable call wants abs sums.
Tensor<double> magnitudes(const Tensor<double>& t);
// Runs the unscalable case: every element of [0, count) through the reference, in parallel.
void put_all_reference(Sink& sink, index_t count);
// Sets up sink for one call: its scale, bound and reference. make_ref(inputs...) builds the
// reference element function on input tensors given by pointer (nullptr for a missing bias).
// When the call cannot be scaled it emits every element through the reference right away (on
// the inputs' magnitudes for abs sums) and returns false: the caller is done.
template <class MakeRef, class... In>
bool prepare(Sink& sink, const Scale& sc, const Bound& bound, index_t n_terms, bool abs,
             index_t count, MakeRef make_ref, const In*... in) {
  sink.scale = sc;
  sink.bound = bound;
  sink.n_terms = n_terms;
  sink.exact_below = exactness_threshold(sc, n_terms, kernels().lanes);
  if (sc.ok) {
    if (!abs) sink.reference = make_ref(in...);  // the abs sums never fall back when scaled
    return true;
  }
  if (abs) {
    const std::tuple<std::optional<In>...> mags{
        (in ? std::optional<In>(magnitudes(*in)) : std::nullopt)...};
    std::apply([&](const auto&... m) { sink.reference = make_ref((m ? &*m : nullptr)...); },
               mags);
    put_all_reference(sink, count);
  } else {
    sink.reference = make_ref(in...);
    put_all_reference(sink, count);
  }
  return false;
}

// Adds a finished call's counts to *stats (when given).
void record(Stats* stats, index_t count, const Sink& sink);

// One exact call emitting Tag: allocates the output, runs run(sink, abs) and records the stats.
template <class Tag, class Run>
Tensor<typename Tag::type> run_exact(const Shape& shape, Stats* stats, Run run) {
  Tensor<typename Tag::type> out(shape);
  Sink sink;
  sink.emit = emit_of<Tag>();
  sink.out = out.data();
  run(sink, std::is_same_v<Tag, AbsSumUp>);
  record(stats, out.numel(), sink);
  return out;
}

}  // namespace tapegrad::exact::detail
