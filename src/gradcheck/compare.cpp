// compare(): element-wise error report; see include/tapegrad/gradcheck/compare.hpp.
#include "tapegrad/gradcheck/compare.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <limits>

#include "tapegrad/errors.hpp"
#include "tapegrad/half.hpp"

namespace tapegrad::gradcheck {

namespace {

// Ordered integer image of an IEEE value: monotone in the value, with +0 and -0 both 0, so
// that the distance of two images counts the representable values between them.
template <class S, class U, class F>
S ordered(F x) {
  const auto bits = static_cast<S>(std::bit_cast<U>(x));
  return bits < 0 ? std::numeric_limits<S>::min() - bits : bits;
}

template <class S, class U, class F>
std::uint64_t distance(F a, F b) {
  const S ia = ordered<S, U>(a), ib = ordered<S, U>(b);
  // |ia - ib| in unsigned arithmetic: the difference can exceed the signed range.
  return ia >= ib ? static_cast<std::uint64_t>(static_cast<U>(ia) - static_cast<U>(ib))
                  : static_cast<std::uint64_t>(static_cast<U>(ib) - static_cast<U>(ia));
}

std::size_t bucket_of(std::uint64_t ulps) { return static_cast<std::size_t>(std::bit_width(ulps)); }

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string multi_index(const Shape& shape, index_t flat) { return index_str(shape, flat); }

}  // namespace

std::uint64_t ulp_distance(double a, double b) {
  return distance<std::int64_t, std::uint64_t>(a, b);
}
std::uint64_t ulp_distance(float a, float b) { return distance<std::int32_t, std::uint32_t>(a, b); }

namespace {
// The 16-bit pattern of v in format p (float16 / bfloat16), rounded once to nearest even: v
// to float rounded to odd (exact when v is a float), then to the format (io/npy.hpp's
// derivation: 24 >= 11 + 2 bits).
std::uint16_t bits16(double v, UlpPrecision p) {
  float f = static_cast<float>(v);  // to nearest; make it round-to-odd when inexact
  if (std::isfinite(v) && static_cast<double>(f) != v && !std::isinf(f) &&
      !(std::bit_cast<std::uint32_t>(f) & 1u))
    f = std::nextafter(f, static_cast<double>(f) < v ? std::numeric_limits<float>::infinity()
                                                      : -std::numeric_limits<float>::infinity());
  return p == UlpPrecision::float16 ? float_to_half_bits(f) : float_to_bfloat16_bits(f);
}
// The ordered image of a 16-bit sign-magnitude pattern (+0 and -0 both 0).
std::int64_t ordered16(std::uint16_t b) {
  return (b & 0x8000u) ? -static_cast<std::int64_t>(b & 0x7fffu) : static_cast<std::int64_t>(b);
}
}  // namespace

std::uint64_t ulp_distance(double a, double b, UlpPrecision p) {
  switch (p) {
    case UlpPrecision::float64: return ulp_distance(a, b);
    case UlpPrecision::float32: return ulp_distance(static_cast<float>(a), static_cast<float>(b));
    case UlpPrecision::float16:
    case UlpPrecision::bfloat16: {
      const std::int64_t d = ordered16(bits16(a, p)) - ordered16(bits16(b, p));
      return static_cast<std::uint64_t>(d < 0 ? -d : d);
    }
  }
  return 0;
}

namespace {
// Every precision's facts, once: its name, its significand bits (the unit roundoff is 2^-bits)
// and the printf format that prints its values round-trip.
struct PrecisionFacts {
  UlpPrecision precision;
  const char* name;
  int bits;
  const char* format;
};
constexpr PrecisionFacts precision_table[] = {
    {UlpPrecision::float32, "float32", 24, "%.9g"},
    {UlpPrecision::float64, "float64", 53, "%.17g"},
    {UlpPrecision::float16, "float16", 11, "%.5g"},
    {UlpPrecision::bfloat16, "bfloat16", 8, "%.4g"},
};
const PrecisionFacts& facts(UlpPrecision p) {
  for (const PrecisionFacts& f : precision_table)
    if (f.precision == p) return f;
  return precision_table[1];  // unreachable: every enumerator has a row
}
}  // namespace

const char* precision_name(UlpPrecision p) { return facts(p).name; }
double precision_unit_roundoff(UlpPrecision p) { return std::ldexp(1.0, -facts(p).bits); }
const char* precision_format(UlpPrecision p) { return facts(p).format; }

double default_rtol(UlpPrecision p) { return 8 * precision_unit_roundoff(p); }

std::string CompareReport::bucket_label(std::size_t b) {
  if (b == 0) return "0";
  if (b == 1) return "1";
  const std::uint64_t lo = std::uint64_t{1} << (b - 1);
  const std::uint64_t hi =
      b == 64 ? std::numeric_limits<std::uint64_t>::max() : (std::uint64_t{1} << b) - 1;
  return std::to_string(lo) + "-" + std::to_string(hi);
}

CompareReport compare(const Tensor<double>& actual, const Tensor<double>& expected,
                      const CompareOptions& opts) {
  check_shape("compare", "actual", actual.shape(), expected.shape());
  CompareReport r;
  r.shape = expected.shape();
  r.numel = expected.numel();
  r.precision = opts.precision.value_or(UlpPrecision::float64);
  r.max_ulps = opts.max_ulps;
  r.nan_equal = opts.nan_equal;
  r.allow_empty = opts.allow_empty;
  r.default_tolerance = !opts.rtol && !opts.atol && !opts.max_ulps;
  if (r.default_tolerance) {
    r.rtol = default_rtol(r.precision);
    r.atol = 0;
  } else {
    r.rtol = opts.rtol.value_or(0);
    r.atol = opts.atol.value_or(0);
  }
  check_arg(r.rtol >= 0 && r.atol >= 0, "compare",
            "rtol and atol must be non-negative, got rtol=", r.rtol, " atol=", r.atol);
  const bool use_tol = r.default_tolerance || opts.rtol || opts.atol;

  for (index_t i = 0; i < r.numel; ++i) {
    const double a = actual[i], e = expected[i];
    bool fail = false, mismatch = false;
    std::uint64_t ulps = 0;
    if (!std::isfinite(a) || !std::isfinite(e)) {
      if (std::isnan(a) && std::isnan(e)) {
        ++r.nan_pairs;
        if (!r.nan_equal) fail = mismatch = true;  // shown as the worst element, like a mismatch
      } else if (a == e) {  // the same infinity
        ++r.infinity_pairs;
        ++r.histogram[0];
      } else {
        mismatch = fail = true;
        ++r.nonfinite_mismatches;
      }
    } else {
      const double abs_err = std::fabs(a - e);
      const double rel_err = e != 0   ? abs_err / std::fabs(e)
                             : a == 0 ? 0.0
                                      : std::numeric_limits<double>::infinity();
      ulps = ulp_distance(a, e, r.precision);
      if (abs_err > r.max_abs_error) r.max_abs_error = abs_err;
      if (rel_err > r.max_rel_error) r.max_rel_error = rel_err;
      if (ulps > r.max_ulp_error) r.max_ulp_error = ulps;
      ++r.histogram[bucket_of(ulps)];
      if (use_tol && !(abs_err <= r.atol + r.rtol * std::fabs(e))) fail = true;
      if (r.max_ulps && ulps > *r.max_ulps) fail = true;
    }
    if (fail) ++r.failing;
    // The worst element: mismatches first, then the largest ULP error; first among equals.
    const bool worse = !r.worst_index || (mismatch && !r.worst_nonfinite_mismatch) ||
                       (!mismatch && !r.worst_nonfinite_mismatch && ulps > r.worst_ulps);
    if (worse) {
      r.worst_index = i;
      r.worst_actual = a, r.worst_expected = e;
      r.worst_ulps = ulps;
      r.worst_nonfinite_mismatch = mismatch;
    }
  }
  return r;
}

CompareReport compare(const Tensor<float>& actual, const Tensor<float>& expected,
                      const CompareOptions& opts) {
  CompareOptions o = opts;
  if (!o.precision) o.precision = UlpPrecision::float32;
  // float -> double is exact, so the double comparison sees the same values.
  return compare(actual.cast<double>(), expected.cast<double>(), o);
}

void CompareReport::print(std::ostream& os) const {
  const char* val = precision_format(precision);  // enough digits to identify the value
  os << "compare: " << numel << " elements, shape " << shape.str() << ", ULPs of "
     << precision_name(precision) << "\n";
  os << "  tolerance        ";
  if (default_tolerance) {
    os << "rtol=" << fmt("%.3g", rtol) << " atol=0 (default: 8 u, u = 2^"
       << std::ilogb(precision_unit_roundoff(precision)) << ")\n";
  } else {
    bool any = false;
    if (rtol > 0 || atol > 0) {
      os << "rtol=" << fmt("%.3g", rtol) << " atol=" << fmt("%.3g", atol);
      any = true;
    }
    if (max_ulps) os << (any ? " " : "") << "max_ulps=" << *max_ulps;
    os << "\n";
  }
  os << "  max abs error    " << fmt("%.3e", max_abs_error) << "\n";
  os << "  max rel error    " << fmt("%.3e", max_rel_error)
     << (std::isinf(max_rel_error) ? "  (expected 0, actual nonzero)" : "") << "\n";
  os << "  max ULP error    " << max_ulp_error << "\n";
  if (worst_index) {
    os << "  worst element    " << multi_index(shape, *worst_index) << ": actual "
       << fmt(val, worst_actual) << ", expected " << fmt(val, worst_expected);
    if (worst_nonfinite_mismatch)
      os << " (NaN/Inf mismatch)";
    else
      os << " (" << worst_ulps << " ULP)";
    os << "\n";
  }
  os << "  ULP histogram (non-empty buckets)\n";
  // Non-empty buckets only (there are 65), ULP errors in each: count.
  for (std::size_t b = 0; b < histogram.size(); ++b) {
    if (!histogram[b]) continue;
    std::string label = bucket_label(b);
    label.resize(std::max<std::size_t>(label.size(), 16), ' ');
    os << "    " << label << " " << histogram[b] << "\n";
  }
  os << "    NaN/Inf mismatch " << nonfinite_mismatches << "\n";
  if (nan_pairs || infinity_pairs) {
    os << "  non-finite       ";
    if (nan_pairs)
      os << nan_pairs << " NaN against NaN ("
         << (nan_equal ? "accepted: --nan-equal" : "failing; --nan-equal accepts them") << ")"
         << (infinity_pairs ? ", " : "");
    if (infinity_pairs) os << infinity_pairs << " equal infinities (passing)";
    os << "\n";
  }
  if (numel == 0)
    os << "  nothing compared: both arrays are empty ("
       << (allow_empty ? "accepted: --allow-empty" : "failing; --allow-empty accepts this")
       << ")\n";
  os << "  failing          " << failing << " of " << numel << "\n";
  os << (passed() ? "PASS" : "FAIL") << "\n";
}

}  // namespace tapegrad::gradcheck
