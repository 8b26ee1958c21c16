// The exact engine's accumulator: scaling, bound, decisions, emission and the micro-kernels
// for each instruction set. See exact_sum.hpp, and the proof in kernels/exact.hpp.
#include "exact_sum.hpp"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "tapegrad/io/npy.hpp"
#include "tapegrad/kernels/conv2d_fast.hpp"

namespace tapegrad::exact::detail {

Range range_of(const double* v, index_t n, const char* what) {
  int emax = std::numeric_limits<int>::min(), emin = std::numeric_limits<int>::max();
  int lsb = std::numeric_limits<int>::max();
  index_t bad = n;
#pragma omp parallel for schedule(static) reduction(max : emax) reduction(min : emin, lsb, bad) \
    if (n >= 65536)
  for (index_t i = 0; i < n; ++i) {
    const double x = v[i];
    if (!std::isfinite(x)) {
      bad = i < bad ? i : bad;
      continue;
    }
    if (x == 0) continue;
    int e;
    (void)std::frexp(x, &e);
    emax = e > emax ? e : emax;
    emin = e < emin ? e : emin;
    const int b = Range::lowest_bit(x);
    lsb = b < lsb ? b : lsb;
  }
  if (bad < n)
    throw std::domain_error(std::string("exact engine: ") + what + " element " +
                            std::to_string(bad) + " is not finite");
  Range r;
  r.emax = emax;
  r.emin = emin;
  r.lsb = lsb;
  return r;
}

namespace {

// Headroom: n terms each below 2^top sum (with every partial sum, c and a) below 2^1014.
int top_exponent(index_t n) {
  return 1018 - static_cast<int>(std::bit_width(static_cast<std::uint64_t>(n) + 1));
}
// v * 2^s exact for every nonzero v of range r (step 1): scaled up without overflow, or
// scaled down with the smallest staying normal.
bool exact_scaling(const Range& r, int s) {
  if (r.empty()) return true;
  return s >= 0 ? r.emax + s <= 1024 : r.emin + s >= -1021;
}
int floor_half(int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

}  // namespace

Scale choose_scale(const Range& a, const Range& b, const Range& c, index_t n) {
  Scale sc;
  const bool prods = !a.empty() && !b.empty();
  if (!prods && c.empty()) return sc;  // every term is zero
  int tmax = prods ? a.emax + b.emax : std::numeric_limits<int>::min();
  if (!c.empty()) tmax = c.emax > tmax ? c.emax : tmax;
  sc.sigma = top_exponent(n) - tmax;
  if (prods) {
    // Split sigma so that the largest scaled a and b meet halfway, then move the split if one
    // operand's smallest value would leave the normal range.
    sc.sa = floor_half(a.emax + b.emax + sc.sigma) - a.emax;
    sc.sb = sc.sigma - sc.sa;
    if (!exact_scaling(a, sc.sa) && sc.sa < 0) sc.sa = -1021 - a.emin, sc.sb = sc.sigma - sc.sa;
    if (!exact_scaling(b, sc.sb) && sc.sb < 0) sc.sb = -1021 - b.emin, sc.sa = sc.sigma - sc.sb;
    sc.ok = exact_scaling(a, sc.sa) && exact_scaling(b, sc.sb);
    // The smallest nonzero scaled product is >= 2^(a.emin - 1 + b.emin - 1 + sigma).
    sc.zero_exact = a.emin + b.emin + sc.sigma - 2 >= -1074;
    sc.kappa = a.lsb + b.lsb + sc.sigma;
  } else {
    sc.sa = sc.sb = 0;  // a or b is all zero: every product is exactly 0, at any scale
    sc.kappa = std::numeric_limits<int>::max();
  }
  if (!c.empty()) {
    if (c.emin - 1 + sc.sigma < -1074) sc.zero_exact = false;
    sc.kappa = std::min(sc.kappa, c.lsb + sc.sigma);
  }
  return sc;
}

Scale choose_scale_sum(const Range& a, index_t n) {
  Scale sc;
  if (a.empty()) return sc;
  sc.sigma = sc.sa = top_exponent(n) - a.emax;
  sc.ok = exact_scaling(a, sc.sa);  // then every scaled value is exact and nonzero
  sc.kappa = a.lsb + sc.sa;
  return sc;
}

Bound make_bound(index_t n, int lanes, int extra_f50) {
  const double u = 0x1p-53, u50 = 0x1p-167;
  const double nn = static_cast<double>(n), l = lanes;
  auto g = [u](double k) { return k * u / (1 - k * u); };
  const double m = 2 * nn + 2 * l + 2, nts = nn + l + 1, gs = g(nn + l);
  double c1 = g(m) * u * (nts * (1 + gs) + 1) + (nn + 1 + extra_f50) * u50 * (1 + gs) * (1 + u);
  c1 = c1 / (1 - gs) * (1 + 0x1p-40);  // S_p <= a / (1 - g(n+L)); the roundings of this line
  Bound b;
  b.c1 = c1;
  // 2 n eta from the products (step 2), plus room for the absolute rounding errors (each at
  // most eta) of evaluating beta and the checks in the subnormal range.
  b.c2 = (nn + 4) * 0x1p-1074;
  return b;
}

double exactness_threshold(const Scale& sc, index_t n, int lanes) {
  // a < 2^(kappa + 106 - 1 - bit_width(n + L + 2)) keeps sum |q| + sum |e| below 2^(kappa+53).
  if (sc.kappa < -1074 || sc.kappa > 1100) return 0;
  const int w = static_cast<int>(std::bit_width(static_cast<std::uint64_t>(n + lanes + 2)));
  return mul_pow2(1.0, std::min(sc.kappa + 105 - w, 1023));
}

namespace {

// The sign (-1, 0, +1) of a + b + c + d, exactly, or 2 when a few renormalizations (TwoSum
// cascades, exact) do not settle it.
int exact_sign(double a, double b, double c, double d) {
  double v[4] = {a, b, c, d};
  for (int pass = 0; pass < 6; ++pass) {
    const DD t = two_sum(v[2], v[3]), u = two_sum(v[1], t.hi), w = two_sum(v[0], u.hi);
    v[0] = w.hi, v[1] = w.lo, v[2] = u.lo, v[3] = t.lo;  // same sum, exactly
    const double rest = (std::fabs(v[1]) + std::fabs(v[2]) + std::fabs(v[3])) * (1 + 0x1p-50);
    if (rest == 0) return (v[0] > 0) - (v[0] < 0);
    if (std::fabs(v[0]) > rest) return v[0] > 0 ? 1 : -1;
    if (v[0] == 0) v[0] = v[1], v[1] = v[2], v[2] = v[3], v[3] = 0;
  }
  return 2;
}

// The even one of two neighbours in T (its last significand bit is 0).
template <class T>
T even_of(T a, T b) {
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  if (std::isinf(a)) return a;  // past max: the tie rounds to infinity
  if (std::isinf(b)) return b;
  return (std::bit_cast<U>(a) & 1u) == 0 ? a : b;
}

}  // namespace

template <class T>
bool decide_nearest(double h, double l, double beta, int sigma, T& y) {
  if (!(std::isfinite(h) && std::isfinite(l) && std::isfinite(beta))) return false;
  constexpr double tiny = 0x1p-50;  // r below covers three roundings: (1 + u)^3 < 1 + 2^-50
  const T cand = static_cast<T>(mul_pow2(h, -sigma));  // a candidate, checked below
  // |A| = ah + lm exactly (l with the sign it has relative to h).
  const double ah = std::fabs(h), lm = std::signbit(h) ? -l : l;
  if (cand == 0) {
    // Zero: |A| + beta < half the smallest subnormal of T, and |A| > beta for the sign.
    const double half_g = mul_pow2(static_cast<double>(std::numeric_limits<T>::denorm_min()),
                                   sigma - 1);  // rounds down, never up
    if (beta == 0) {  // exact: A = E = F
      if (h == 0) return y = T(0), true;  // an exact zero sum is +0 in f50, as in IEEE
      // |A| <= half_g rounds to zero (at the tie too: zero is even); the sign is A's.
      if (!(half_g > 0) || exact_sign(ah, lm, -half_g, 0) > 0) return false;
      return y = std::signbit(h) ? -T(0) : T(0), true;
    }
    const DD e = two_sum(ah, lm);
    const double r = (std::fabs(e.lo) + beta) * (1 + tiny);
    if (!(half_g > 0 && e.hi - r > 0 && e.hi + r < half_g)) return false;
    y = std::signbit(h) ? -T(0) : T(0);
    return true;
  }
  if (std::isinf(cand)) {
    // Overflow: |A| - beta beyond max + ulp(max)/2, which rounds to infinity (ties too).
    const T mx = std::numeric_limits<T>::max();
    const double mxs = mul_pow2(static_cast<double>(mx), sigma);
    const double hulp = mul_pow2(static_cast<double>(mx - std::nextafter(mx, T(0))), sigma - 1);
    if (!(std::isfinite(mxs) && mul_pow2(mxs, -sigma) == static_cast<double>(mx) && hulp > 0))
      return false;
    const DD d = two_sum(ah, -mxs);  // |A| - max' = d.hi + d.lo + lm
    if (beta == 0) {  // exact: at or beyond the threshold is infinity
      const int sg = exact_sign(d.hi, d.lo, lm, -hulp);
      if (sg < 0 || sg == 2) return false;
      return y = std::signbit(h) ? -std::numeric_limits<T>::infinity()
                                 : std::numeric_limits<T>::infinity(),
             true;
    }
    const DD e = two_sum(d.hi, lm);
    const double r = (std::fabs(e.lo) + std::fabs(d.lo) + beta) * (1 + tiny);
    if (!(e.hi - r > hulp)) return false;
    y = std::signbit(h) ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
    return true;
  }
  // A finite nonzero candidate: its scaled value must be exact, then A +- beta must lie strictly
  // inside (Y - hd, Y + hu), the half gaps to its neighbours in T, scaled.
  const double ys = mul_pow2(static_cast<double>(cand), sigma);
  if (!std::isfinite(ys) || mul_pow2(ys, -sigma) != static_cast<double>(cand)) return false;
  const T inf = std::numeric_limits<T>::infinity();
  const T up = std::nextafter(cand, inf), dn = std::nextafter(cand, -inf);
  const T gap_up = std::isinf(up) ? cand - dn : up - cand;  // exact: one ulp of T
  const T gap_dn = std::isinf(dn) ? up - cand : cand - dn;
  const double hu = mul_pow2(static_cast<double>(gap_up), sigma - 1);  // powers of two:
  const double hd = mul_pow2(static_cast<double>(gap_dn), sigma - 1);  // exact or rounded down
  if (!(hu > 0 && hd > 0)) return false;
  const DD d = two_sum(h, -ys);   // A - Y' = d.hi + d.lo + l exactly
  if (beta == 0) {  // exact: inside, or exactly at a midpoint (ties to even)
    const int above = exact_sign(d.hi, d.lo, l, -hu), below = exact_sign(d.hi, d.lo, l, hd);
    if (above == 2 || below == 2 || above > 0 || below < 0) return false;
    y = above == 0 ? even_of(cand, up) : below == 0 ? even_of(cand, dn) : cand;
    return true;
  }
  const DD e = two_sum(d.hi, l);  //        = e.hi + e.lo + d.lo
  const double r = (std::fabs(e.lo) + std::fabs(d.lo) + beta) * (1 + tiny);
  if (!(e.hi + r < hu && e.hi - r > -hd)) return false;
  y = cand;
  return true;
}
template bool decide_nearest<float>(double, double, double, int, float&);
template bool decide_nearest<double>(double, double, double, int, double&);

double upper_bound(double h, double l, double beta, int sigma) {
  const double inf = std::numeric_limits<double>::infinity();
  if (!(std::isfinite(h) && std::isfinite(l) && std::isfinite(beta))) return inf;
  const double r = (std::fabs(l) + beta) * (1 + 0x1p-50);  // >= |l| + beta
  const DD v = two_sum(h, r);
  const double up = v.lo > 0 ? std::nextafter(v.hi, inf) : v.hi;  // >= h + r >= E (scaled)
  double y = mul_pow2(up, -sigma);
  // Unscaling rounds only into the subnormal range (sigma > 0), where scaling back is exact.
  if (sigma > 0 && mul_pow2(y, sigma) < up) y = std::nextafter(y, inf);
  return y;
}

f50 unscaled_value(double h, double l, int sigma) {
  return ldexp(f50(h) + f50(l), -sigma);  // |l| <= ulp(h)/2: the sum fits in 106 bits
}

void divide(double& h, double& l, double& beta, double d) {
  if (std::has_single_bit(static_cast<std::uint64_t>(d)) && std::fabs(h) >= 0x1p-900) {
    h /= d, l /= d, beta /= d;  // a power of two: exact (no underflow), as is the reference's
    return;
  }
  // q + (r + l)/d = (h + l)/d exactly, r = h - q d the exact remainder of a rounded division
  // (no underflow for |h| >= 2^-900); (r + l)/d rounds twice.
  if (h != 0 && std::fabs(h) < 0x1p-900) beta = std::numeric_limits<double>::infinity();
  const double q = h / d;
  const double r = std::fma(-q, d, h);
  if (r == 0 && l == 0) {  // the quotient is exact (so is the reference's): a tie stays decidable
    h = q, beta /= d;
    return;
  }
  const double ql = (r + l) / d;
  beta = (beta + (std::fabs(r) + std::fabs(l) + std::fabs(ql)) * 0x1p-52 + 0x1p-1073) *
         (1 + 0x1p-50);
  const DD t = two_sum(q, ql);
  h = t.hi;
  l = t.lo;
}

namespace {

// The bound of an f50 value F of n terms as a double, rounded up (the unscalable abs sums).
double upper_of_reference(const f50& f, index_t n) {
  const f50 v = f * (1 + f50(static_cast<double>(n + 2)) * ldexp(f50(1), -166));
  double y = io::round_to_double(v);
  if (f50(y) < v) y = std::nextafter(y, std::numeric_limits<double>::infinity());
  return y;
}

}  // namespace

void Sink::put_reference(index_t i) {
  const f50 f = reference(i);
  switch (emit) {
    case Emit::nearest_float:
      static_cast<float*>(out)[i] = io::round_to_float(f);
      break;
    case Emit::nearest_double:
      static_cast<double*>(out)[i] = io::round_to_double(f);
      break;
    case Emit::abs_sum_up:
      static_cast<double*>(out)[i] = upper_of_reference(f, n_terms);
      break;
    case Emit::precise:
      static_cast<f50*>(out)[i] = f;
      break;
  }
  fallbacks.fetch_add(1, std::memory_order_relaxed);
}

void Sink::put(index_t i, const Raw& raw) {
  if (!scale.ok) return put_reference(i);
  // Every term exactly zero: E = 0 and F = +0 (step 6).
  const bool zero = raw.a == 0 && scale.zero_exact;
  const DD t = two_sum(raw.s, raw.c);
  double h = t.hi, l = t.lo, beta = raw.a < exact_below ? 0.0 : bound.beta(raw.a);
  if (divisor != 1) divide(h, l, beta, divisor);
  switch (emit) {
    case Emit::nearest_float: {
      float y = 0.0f;
      if (!zero && !decide_nearest(h, l, beta, scale.sigma, y)) return put_reference(i);
      static_cast<float*>(out)[i] = y;
      break;
    }
    case Emit::nearest_double: {
      double y = 0.0;
      if (!zero && !decide_nearest(h, l, beta, scale.sigma, y)) return put_reference(i);
      static_cast<double*>(out)[i] = y;
      break;
    }
    case Emit::abs_sum_up:
      static_cast<double*>(out)[i] = zero ? 0.0 : upper_bound(h, l, beta, scale.sigma);
      break;
    case Emit::precise:
      static_cast<f50*>(out)[i] = zero ? f50(0) : unscaled_value(h, l, scale.sigma);
      break;
  }
}

void put_all_reference(Sink& sink, index_t count) {
#pragma omp parallel for schedule(dynamic, 64) if (count * sink.n_terms >= 4096)
  for (index_t i = 0; i < count; ++i) sink.put_reference(i);
}

void record(Stats* stats, index_t count, const Sink& sink) {
  if (!stats) return;
  stats->elements += count;
  stats->fallbacks += sink.fallbacks.load();
}

Tensor<double> magnitudes(const Tensor<double>& t) {
  return map(t, [](double v) { return std::fabs(v); });
}

// ---------------------------------------------------------------- micro-kernels per ISA
// Each body is exact_kernels.inc; the namespaces keep every instruction set's code apart.
#define TG_ROW_ARGS index_t nt, const double *coef, const double *const *src, Raw *out, index_t ldo
#define TG_DOT_ARGS                                                                            \
  const double *const *a, const double *const *b, index_t nu, index_t au, index_t bu,         \
      index_t nv, index_t av, index_t bv, index_t len, Raw *out
#define TG_DOT_CALL a, b, nu, au, bu, nv, av, bv, len, out

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,avx2,fma")
#ifdef __clang__  // clang ignores the GCC pragma: the same target, its way (the tsan preset)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma"))), apply_to = function)
#endif
namespace isa_avx512 {
namespace {
constexpr int L = 8;
typedef double V __attribute__((vector_size(64)));
[[gnu::always_inline]] inline V fms(V a, V b, V c) {
  return (V)_mm512_fmsub_pd((__m512d)a, (__m512d)b, (__m512d)c);
}
#include "exact_kernels.inc"
}  // namespace
void row(TG_ROW_ARGS) { row_body<4, 2>(nt, coef, src, out, ldo); }
void dot(TG_DOT_ARGS) { dot_body<3, 2>(TG_DOT_CALL); }
}  // namespace isa_avx512
#ifdef __clang__
#pragma clang attribute pop
#endif
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#ifdef __clang__  // clang ignores the GCC pragma: the same target, its way (the tsan preset)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#endif
namespace isa_avx2 {
namespace {
constexpr int L = 4;
typedef double V __attribute__((vector_size(32)));
[[gnu::always_inline]] inline V fms(V a, V b, V c) {
  return (V)_mm256_fmsub_pd((__m256d)a, (__m256d)b, (__m256d)c);
}
#include "exact_kernels.inc"
}  // namespace
void row(TG_ROW_ARGS) { row_body<3, 1>(nt, coef, src, out, ldo); }
void dot(TG_DOT_ARGS) { dot_body<2, 2>(TG_DOT_CALL); }
}  // namespace isa_avx2
#ifdef __clang__
#pragma clang attribute pop
#endif
#pragma GCC pop_options

namespace isa_generic {
namespace {
constexpr int L = 2;
typedef double V __attribute__((vector_size(16)));
// No FMA instruction assumed: std::fma is exact everywhere (glibc uses the instruction when the
// CPU has it and a correct software fma otherwise).
inline V fms(V a, V b, V c) {
  V r;
  for (int l = 0; l < L; ++l) r[l] = std::fma(a[l], b[l], -c[l]);
  return r;
}
#include "exact_kernels.inc"
}  // namespace
void row(TG_ROW_ARGS) { row_body<2, 2>(nt, coef, src, out, ldo); }
void dot(TG_DOT_ARGS) { dot_body<2, 2>(TG_DOT_CALL); }
}  // namespace isa_generic

#undef TG_ROW_ARGS
#undef TG_DOT_ARGS
#undef TG_DOT_CALL

namespace {
const Kernels k_avx512{"avx512", 8, 4, 16, 3, 2, isa_avx512::row, isa_avx512::dot};
const Kernels k_avx2{"avx2", 4, 3, 4, 2, 2, isa_avx2::row, isa_avx2::dot};
const Kernels k_generic{"generic", 2, 2, 4, 2, 2, isa_generic::row, isa_generic::dot};
}  // namespace

const Kernels& kernels() {
  const std::string_view isa = fast::isa();
  if (isa == "avx512") return k_avx512;
  if (isa == "avx2") return k_avx2;
  return k_generic;
}

}  // namespace tapegrad::exact::detail
