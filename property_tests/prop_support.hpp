// Shared pieces of the property suite: value generation, element-wise judging against a
// 50-digit reference with a derived per-element tolerance, and readable failure reports.
//
// Values. A case holds its numbers as doubles that are exactly representable in float (so the
// float, double and 50-digit runs all see the SAME inputs, and every way is judged against the
// exact function of those inputs). They are drawn by a std::mt19937_64 from a (seed, scale,
// style) triple that RapidCheck generates and shrinks; shrinking the triple is fast, shrinking
// thousands of elements would not be. Styles:
//   continuous  m * 2^(e-20), m uniform in [-2^20, 2^20]: |v| <= 2^e, 21 significant bits
//   integers    uniform in {-3..3}: exact zeros (relu's kink) and ties (max-pool's convention)
//   mixed       continuous with ~1/8 of the elements replaced by 0 or +-2^e (ties)
// scale exponents e run from -12 to 12 (tiny to large; float-safe: products stay in
// [2^-48, 2^48], far from float's range limits) and to 11 for logits (exp(2^11) overflows every
// T: a missing max-subtraction in softmax shows).
#pragma once

#include <rapidcheck.h>

#include <cmath>
#include <cstdint>
#include <iomanip>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "tapegrad/gradcheck/tolerance.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/tensor.hpp"
#include "tapegrad/var/var.hpp"

namespace tapegrad::props {

enum class ValueStyle { continuous = 0, integers = 1, mixed = 2 };

inline const char* style_name(ValueStyle s) {
  switch (s) {
    case ValueStyle::continuous: return "continuous";
    case ValueStyle::integers: return "integers";
    case ValueStyle::mixed: return "mixed";
  }
  return "?";
}

// How the numbers of a case are drawn (printed in counterexamples).
struct Values {
  std::uint64_t seed = 0;
  int scale = 0;  // exponent e: |v| <= 2^e
  ValueStyle style = ValueStyle::continuous;

  std::string str() const {
    return "values(seed=" + std::to_string(seed) + " scale=2^" + std::to_string(scale) + " " +
           style_name(style) + ")";
  }
};

inline rc::Gen<Values> gen_values(int min_scale = -12, int max_scale = 12,
                                  bool allow_integers = true) {
  return rc::gen::exec([=] {
    Values v;
    v.seed = *rc::gen::inRange<std::uint64_t>(0, 1u << 30);
    // shrinks towards scale 0 (numbers around 1), the easiest case to read
    v.scale = *rc::gen::weightedOneOf<int>({{2, rc::gen::just(0)},
                                            {2, rc::gen::inRange(min_scale, max_scale + 1)},
                                            {1, rc::gen::element(min_scale, max_scale)}});
    const int styles = allow_integers ? 3 : 1;
    v.style = static_cast<ValueStyle>(*rc::gen::inRange(0, styles));
    return v;
  });
}

// A tensor of float-exact doubles drawn from v; `salt` separates the tensors of one case.
inline Tensor<double> make_tensor(const Shape& shape, const Values& v, std::uint64_t salt) {
  std::mt19937_64 rng(v.seed * 0x9E3779B97F4A7C15ull + salt * 0xBF58476D1CE4E5B9ull + 1);
  Tensor<double> t(shape);
  const double unit = std::ldexp(1.0, v.scale - 20);
  for (double& e : t) {
    const auto m = static_cast<double>(static_cast<std::int64_t>(rng() % (2u << 20)) - (1 << 20));
    switch (v.style) {
      case ValueStyle::continuous: e = m * unit; break;
      case ValueStyle::integers: e = static_cast<double>(static_cast<int>(rng() % 7) - 3); break;
      case ValueStyle::mixed: {
        const auto pick = rng() % 16;
        e = pick == 0 ? 0.0 : pick == 1 ? std::ldexp(1.0, v.scale)
                        : pick == 2     ? -std::ldexp(1.0, v.scale)
                                        : m * unit;
        break;
      }
    }
  }
  return t;
}

// ---------------------------------------------------------------- conversions
template <class T>
Tensor<T> to(const Tensor<double>& t) {
  return t.template cast<T>();
}
inline Tensor<f50> abs50(const Tensor<f50>& t) {
  return map(t, [](const f50& v) { return f50(abs(v)); });
}
inline double dbl(const f50& v) { return static_cast<double>(v); }
template <class T>
double dbl(const T& v) {
  return static_cast<double>(value_of(v));
}

// index_str(shape, flat) -> "[1,0,2,3]" comes from tapegrad/shape.hpp.

inline std::string sci(double v, int digits = 6) {
  std::ostringstream os;
  os << std::scientific << std::setprecision(digits) << v;
  return os.str();
}

// ---------------------------------------------------------------- judging
// One computed tensor against the exact one: element i must satisfy
//   |got[i] - exact[i]| <= tol[i]
// (differences taken in f50, exactly for float/double values). NaN and inf never pass.
// Returns an empty string when every element passes, else a report of the worst element
// (largest error / tolerance ratio) naming its index and every way's value there.
struct Column {
  std::string name;
  const Tensor<f50>* values;  // a way's result, converted exactly to f50
};

inline std::string judge(const std::string& what, const Tensor<f50>& got,
                         const Tensor<f50>& exact, const Tensor<f50>& tol,
                         const std::vector<Column>& context = {}) {
  if (got.shape() != exact.shape())
    return what + ": shape " + got.shape().str() + ", expected " + exact.shape().str();
  index_t worst = -1;
  double worst_ratio = 0;
  for (index_t i = 0; i < got.numel(); ++i) {
    const f50 err = abs(got[i] - exact[i]);
    const bool finite = is_finite(got[i]);
    if (finite && err <= tol[i]) continue;
    const double ratio = finite ? dbl(err) / std::max(dbl(tol[i]), 1e-300)
                                : std::numeric_limits<double>::infinity();
    if (worst < 0 || ratio > worst_ratio) worst = i, worst_ratio = ratio;
  }
  if (worst < 0) return {};
  std::ostringstream os;
  os << what << ": element " << index_str(got.shape(), worst) << " (flat " << worst
     << ") is off by " << sci(dbl(abs(got[worst] - exact[worst]))) << " > tolerance "
     << sci(dbl(tol[worst])) << " (ratio " << sci(worst_ratio, 2) << ")\n"
     << "    exact (50 digits) " << std::setprecision(17) << dbl(exact[worst]) << "\n"
     << "    got               " << dbl(got[worst]) << "\n";
  for (const Column& c : context)
    if (c.values && c.values->shape() == got.shape())
      os << "    " << std::left << std::setw(18) << c.name << dbl((*c.values)[worst]) << "\n";
  return os.str();
}

// tol[i] = gamma_T(k) * abs_sum[i] + k * 2^12 * min_normal_T, computed in f50 (Higham eq. 3.5,
// see gradcheck/tolerance.hpp). The second term is underflow, which the relative model does not
// cover (exp(-2000) is 0 in double): each of the k operations may lose up to min_normal_T in
// absolute terms when its result underflows, amplified afterwards by at most 2^12 (the largest
// |value| a generated case holds). It is below 1e-290 in double and 1e-33 in float, far below
// any value a case produces otherwise (>= 2^-48), so it hides no real error.
template <class T>
Tensor<f50> reduction_tol(const Tensor<f50>& abs_sum, index_t k) {
  const f50 g = gradcheck::gamma<T>(static_cast<double>(k));
  const f50 floor = f50(k) * 4096 * f50(std::numeric_limits<T>::min());
  return map(abs_sum, [&](const f50& s) { return f50(g * s + floor); });
}

// Fails the property with `report` when it is non-empty.
#define PROPS_CHECK(report_expr)                     \
  do {                                               \
    const std::string props_report_ = (report_expr); \
    if (!props_report_.empty()) RC_FAIL(props_report_); \
  } while (0)

// Returns the report from the enclosing function when it is non-empty.
#define PROPS_RETURN_IF(report_expr)                 \
  do {                                               \
    std::string props_report_ = (report_expr);       \
    if (!props_report_.empty()) return props_report_; \
  } while (0)

// ---------------------------------------------------------------- the scalar tape
// The gradient of <f(inputs), seed> w.r.t. every input, by the scalar tape on Var<S>:
// f is run on variables, then one reverse sweep seeded with `seed` (a vector-Jacobian
// product). F: Tensor<Var<S>> f(const std::vector<Tensor<Var<S>>>&).
template <class S, class F>
std::vector<Tensor<S>> scalar_tape_vjp(F&& f, const std::vector<Tensor<S>>& inputs,
                                       const Tensor<S>& seed) {
  VarTape<S> tape;
  std::vector<Tensor<Var<S>>> vars;
  for (const auto& t : inputs) vars.push_back(make_variables(tape, t));
  const Tensor<Var<S>> y = f(static_cast<const std::vector<Tensor<Var<S>>>&>(vars));
  tape.backward(y, seed);
  std::vector<Tensor<S>> g;
  for (const auto& v : vars) g.push_back(adjoints(tape, v));
  return g;
}

}  // namespace tapegrad::props
