// compare(): how far a computed tensor is from a reference, element by element, with a
// readable report. Used by `tapegrad compare` and by anyone checking their kernels in CI.
//
// Per element (a = actual, e = expected):
//   abs error  |a - e|
//   rel error  |a - e| / |e|.  NOTE: guard for e == 0: the relative error is 0 when a == 0 too,
//              +inf otherwise (it is undefined there; only atol can accept such an element).
//   ULP error  the number of representable values of the tested precision (float64, float32,
//              float16 or bfloat16) between a and e, computed exactly as the distance of their
//              ordered integer images (+0 and -0 coincide). For a narrower precision both
//              values are first rounded to it (to nearest even; half.hpp for the 16-bit ones),
//              so a correctly rounded result has 0 ULP error.
//   non-finite: a NaN/Inf on either side passes only if the other side is the same value:
//              +inf against +inf and -inf against -inf pass (the values are equal; counted as
//              equal infinities in the report); NaN against NaN FAILS unless nan_equal is set
//              (a NaN is no value, so two of them do not show that two computations agree;
//              NumPy's assert_allclose passes them by default, PyTorch's assert_close does
//              not; `tapegrad compare --nan-equal` sets it). Anything else (NaN or inf against
//              a finite value, +inf against -inf) is a "NaN/Inf mismatch" and always fails.
//   empty:     two arrays with no element compare nothing, so they FAIL unless allow_empty is
//              set (`--allow-empty`): an empty output is more often a bug than the intent.
//
// An element passes if it satisfies every criterion the caller gave:
//   |a - e| <= atol + rtol * |e|   (when rtol or atol is given; the other one is then 0)
//   ULP error <= max_ulps          (when max_ulps is given)
// When none is given, the default is atol = 0, rtol = 8 u (u = 2^-53 float64, 2^-24 float32,
// 2^-11 float16, 2^-8 bfloat16). Derivation: a result rounded once from the exact value is within u relative; one
// ULP is between u and 2u relative, so 8 u accepts a result that went through a few (~4)
// correctly rounded steps, and nothing that is wrong by more. A kernel with long reductions
// needs a tolerance derived from its computation (e.g. gamma(K) sum|x w| / |y|): pass it.
//
// A shape mismatch is std::invalid_argument.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad::gradcheck {

enum class UlpPrecision { float32, float64, float16, bfloat16 };

// "float32" / "float64" / "float16" / "bfloat16", the unit roundoff (2^-24, 2^-53, 2^-11, 2^-8)
// and the significant digits a value of it needs in print ("%.9g", "%.17g", "%.5g", "%.4g").
const char* precision_name(UlpPrecision p);
double precision_unit_roundoff(UlpPrecision p);
const char* precision_format(UlpPrecision p);

struct CompareOptions {
  std::optional<double> rtol;
  std::optional<double> atol;
  std::optional<std::uint64_t> max_ulps;
  // The precision whose ULPs are counted; by default that of the tensors' element type.
  std::optional<UlpPrecision> precision;
  bool nan_equal = false;    // NaN against NaN passes
  bool allow_empty = false;  // two empty tensors pass
};

struct CompareReport {
  Shape shape;
  UlpPrecision precision = UlpPrecision::float64;
  // The criteria actually applied (after defaults).
  double rtol = 0, atol = 0;
  std::optional<std::uint64_t> max_ulps;
  bool default_tolerance = false;

  index_t numel = 0;
  double max_abs_error = 0;         // over pairs where both values are finite
  double max_rel_error = 0;         // idem; +inf when some e == 0 and a != 0
  std::uint64_t max_ulp_error = 0;  // idem
  // The worst element: a NaN/Inf mismatch if any, else the largest ULP error (first in
  // row-major order among equals). Absent for an empty tensor.
  std::optional<index_t> worst_index;
  double worst_actual = 0, worst_expected = 0;
  std::uint64_t worst_ulps = 0;
  bool worst_nonfinite_mismatch = false;

  // histogram[0]: 0 ULP; histogram[b] for b >= 1: ULP errors in [2^(b-1), 2^b - 1]
  // (1, 2-3, 4-7, ...), b up to 64.
  std::vector<index_t> histogram = std::vector<index_t>(65, 0);
  index_t nonfinite_mismatches = 0;
  index_t nan_pairs = 0;        // NaN against NaN (failing unless nan_equal)
  index_t infinity_pairs = 0;   // the same infinity on both sides (passing)
  bool nan_equal = false, allow_empty = false;
  index_t failing = 0;

  // No failing element, and something compared (or allow_empty).
  bool passed() const { return failing == 0 && (numel > 0 || allow_empty); }
  // "0", "1", "2-3", "4-7", ...
  static std::string bucket_label(std::size_t b);
  // Multi-line human-readable report, ending in "PASS" or "FAIL".
  void print(std::ostream& os) const;
};

// ULP distance between two values of one precision (exact, via ordered integers; +0 == -0).
// Both arguments must be finite or infinite; NaN is the caller's business.
std::uint64_t ulp_distance(double a, double b);
std::uint64_t ulp_distance(float a, float b);
// In precision p: a and b rounded to it first (float32: to float; float16 / bfloat16: to that
// format, from the double via float rounded to odd, so never rounded twice).
std::uint64_t ulp_distance(double a, double b, UlpPrecision p);

// Default relative tolerance (8 u) of a precision; see the header comment.
double default_rtol(UlpPrecision p);

CompareReport compare(const Tensor<double>& actual, const Tensor<double>& expected,
                      const CompareOptions& opts = {});
CompareReport compare(const Tensor<float>& actual, const Tensor<float>& expected,
                      const CompareOptions& opts = {});

}  // namespace tapegrad::gradcheck
