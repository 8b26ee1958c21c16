// gradcheck of a user function written generically: one template over the scalar type S,
// taking the inputs as Tensor<S> (or a std::vector of them) and returning S. tapegrad runs it
//   - on Var<f50> (the scalar tape, path #2 of DESIGN.md): the reference gradient, exact to
//     ~K * 5e-51 relative, with no derivative rule written by anyone;
//   - on f50 (50-digit central differences with Richardson extrapolation, path #4,
//     gradcheck/finite_diff.hpp): ground truth that trusts no derivative rule at all;
// compares the two (they must agree to ~1e-29: that proves the tape, and catches a function
// whose generic code is not differentiable where it is evaluated), and, when you pass your own
// gradient (from a hand-written backward in float or double), judges it against the reference.
//
//   auto f = [](const auto& in) {               // in: std::vector<Tensor<S>>
//     using S = typename std::decay_t<decltype(in[0])>::value_type;
//     using std::exp;
//     S acc(0);
//     for (index_t i = 0; i < in[0].numel(); ++i) acc += exp(in[0][i]) * in[1][i];
//     return acc;
//   };
//   auto rep = gradcheck::gradcheck(f, {x, w});            // tape vs finite differences
//   auto rep2 = gradcheck::gradcheck(f, {x, w}, {dx, dw});  // also judges your dx, dw
//   rep2.print(std::cout);
//   if (!rep2.passed()) ...
// The function must use only what Var<T> supports (+ - * /, comparisons, exp log tanh sqrt abs
// sin cos via ADL) and compute in S throughout: a conversion to double inside f would cut the
// tape and the 50 digits.
//
// Tolerances (derivations):
//  - tape vs finite differences, element i:
//      |tape_i - fd_i| <= fd_factor * fd.error_i + gamma_f50(N) * max(S, |tape_i|)
//    fd.error_i is finite_diff's per-element error estimate (truncation + rounding, ~1e-29
//    relative), fd_factor = 4 the margin of an estimate (as in gradcheck_blackbox); the second
//    term bounds the tape's own rounding over its N recorded operations (S = max |tape|).
//    Elements finite_diff flags as kinks are not compared (counted in the report).
//  - your gradient in precision T vs the reference, element i (unless rtol/atol are given):
//      |user_i - ref_i| <= gamma_T(K) * S,  S = max_i |ref_i| over the tensor,
//    K = `depth`, by default the number of operations on the scalar tape: reverse mode does
//    one multiply-add per recorded partial, so a gradient computed by mirroring f's operations
//    goes through at most ~K roundings, each of relative size u on terms bounded by ~S.
//    NOTE: this is a model, not a bound: it does not see cancellation inside f (a gradient
//    that is a small difference of large terms). Pass depth, or rtol/atol, when f cancels.
#pragma once

#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/gradcheck/finite_diff.hpp"
#include "tapegrad/gradcheck/tolerance.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/tensor.hpp"
#include "tapegrad/var/var.hpp"

namespace tapegrad::gradcheck {

struct GenericGradcheckOptions {
  FiniteDiffOptions fd;        // the 50-digit finite differences (step, kinks, wrt)
  double fd_factor = 4;        // margin on finite_diff's error estimate
  std::optional<index_t> depth;  // K of the user-gradient tolerance (default: tape size)
  // Judge the user gradient by |user - ref| <= atol + rtol |ref| instead (either may be given).
  std::optional<double> rtol, atol;
};

struct GenericTensorCheck {
  Shape shape;
  double scale = 0;  // S = max |reference gradient|
  // tape (Var<f50>) vs finite differences (f50)
  double fd_max_abs = 0;     // max |tape - fd| over unflagged elements
  double fd_max_ratio = 0;   // max |tape - fd| / allowed
  index_t fd_worst = -1;
  index_t fd_checked = 0, kinks = 0;
  bool fd_pass = true;
  // the user's gradient vs the reference (when given)
  bool has_user = false;
  double user_tol = 0;       // the derived tolerance gamma_T(K) * S (0 with rtol/atol)
  double user_max_abs = 0, user_max_ratio = 0;
  index_t user_worst = -1;
  double user_worst_actual = 0, user_worst_expected = 0;
  index_t user_failing = 0;
  bool user_pass = true;

  bool pass() const { return fd_pass && user_pass; }
};

struct GenericGradcheckReport {
  double value = 0;            // f(inputs), rounded from f50
  index_t tape_nodes = 0;      // operations recorded on the scalar tape
  index_t fd_evaluations = 0;  // calls of f in f50 by finite_diff
  index_t depth = 0;           // K used for the user tolerance
  std::string user_dtype;      // "float" / "double" / "f50"; empty without a user gradient
  bool user_caller_tolerance = false;  // rtol/atol given instead of the derived tolerance
  std::vector<GenericTensorCheck> tensors;
  std::vector<Tensor<f50>> reference;  // the reference gradient (scalar tape on Var<f50>)

  bool passed() const {
    for (const auto& t : tensors)
      if (!t.pass()) return false;
    return true;
  }

  void print(std::ostream& os) const {
    auto sci = [](double v) {
      char b[32];
      std::snprintf(b, sizeof b, "%.2e", v);
      return std::string(b);
    };
    auto idx = [](const Shape& s, index_t flat) {
      std::vector<index_t> ix(static_cast<std::size_t>(s.rank()));
      for (index_t d = s.rank() - 1; d >= 0; --d) {
        ix[static_cast<std::size_t>(d)] = flat % s[d];
        flat /= s[d];
      }
      std::string out = "[";
      for (std::size_t i = 0; i < ix.size(); ++i) {
        if (i) out += ',';  // (not "," + to_string: GCC 12 -O3 warns -Wrestrict falsely)
        out += std::to_string(ix[i]);
      }
      return out + "]";
    };
    os << "gradcheck: f = " << value << ", " << tensors.size() << " input(s), scalar tape "
       << tape_nodes << " nodes, " << fd_evaluations << " f evaluations in 50 digits\n";
    os << "  reference: scalar tape on Var<f50>; checked against 50-digit finite differences\n";
    if (!user_dtype.empty())
      os << "  your gradient (" << user_dtype << ") judged with "
         << (user_caller_tolerance ? std::string("the caller's rtol/atol")
                                   : "|user - ref| <= gamma(K) * S, K = " + std::to_string(depth))
         << "\n";
    for (std::size_t t = 0; t < tensors.size(); ++t) {
      const GenericTensorCheck& c = tensors[t];
      os << "  input " << t << " " << c.shape.str() << "  S " << sci(c.scale)
         << "  tape vs FD: max " << sci(c.fd_max_abs) << " (" << sci(c.fd_max_ratio)
         << " x allowed, " << c.fd_checked << " checked";
      if (c.kinks) os << ", " << c.kinks << " kinks skipped";
      os << ") " << (c.fd_pass ? "ok" : "FAIL");
      if (c.has_user) {
        os << "  yours: max " << sci(c.user_max_abs) << " (" << sci(c.user_max_ratio)
           << " x allowed) " << (c.user_pass ? "ok" : "FAIL");
      }
      os << "\n";
      if (!c.fd_pass)
        os << "    tape and finite differences disagree at element " << idx(c.shape, c.fd_worst)
           << "\n";
      if (!c.user_pass) {
        char b[160];
        std::snprintf(b, sizeof b, ": yours %.17g, reference %.17g (%lld elements fail)",
                      c.user_worst_actual, c.user_worst_expected,
                      static_cast<long long>(c.user_failing));
        os << "    worst element " << idx(c.shape, c.user_worst) << b << "\n";
      }
    }
    os << (passed() ? "PASS" : "FAIL") << "\n";
  }
};

namespace generic_detail {

template <class T>
const char* dtype_name() {
  return ScalarTraits<T>::name;
}

// The reference gradient of f at inputs (scalar tape on Var<f50>) and the tape size.
template <class F>
std::pair<std::vector<Tensor<f50>>, index_t> tape_gradient(F& f,
                                                           const std::vector<Tensor<f50>>& in) {
  VarTape<f50> tape;
  std::vector<Tensor<Var<f50>>> vars;
  vars.reserve(in.size());
  for (const auto& t : in) vars.push_back(make_variables(tape, t));
  const Var<f50> y = f(std::as_const(vars));
  tape.backward(y);
  std::vector<Tensor<f50>> g;
  for (const auto& v : vars) g.push_back(adjoints(tape, v));
  return {std::move(g), tape.size()};
}

template <class F, class T>
GenericGradcheckReport run(F& f, const std::vector<Tensor<T>>& inputs,
                           const std::vector<Tensor<T>>* user,
                           const GenericGradcheckOptions& opt) {
  if (user) {
    check_arg(user->size() == inputs.size(), "gradcheck", "user gradient has ", user->size(),
              " tensors, expected ", inputs.size(), " (one per input)");
    for (std::size_t t = 0; t < inputs.size(); ++t)
      check_shape("gradcheck", "user gradient " + std::to_string(t), (*user)[t].shape(),
                  inputs[t].shape());
  }
  check_arg(opt.fd_factor > 0, "gradcheck", "fd_factor must be positive, got ", opt.fd_factor);
  std::vector<Tensor<f50>> in50;
  for (const auto& t : inputs) in50.push_back(t.template cast<f50>());

  GenericGradcheckReport rep;
  auto [ref, nodes] = tape_gradient(f, in50);
  rep.tape_nodes = nodes;
  auto f50_fn = [&f](const std::vector<Tensor<f50>>& v) { return f50(f(v)); };
  const FiniteDiffResult fd = finite_diff(f50_fn, in50, opt.fd);
  rep.value = static_cast<double>(fd.value);
  rep.fd_evaluations = fd.evaluations;
  rep.depth = opt.depth.value_or(std::max<index_t>(nodes, 1));
  if (user) rep.user_dtype = dtype_name<T>();
  rep.user_caller_tolerance = opt.rtol || opt.atol;
  const double g50 = gamma<f50>(static_cast<double>(std::max<index_t>(nodes, 1)));
  const bool caller_tol = opt.rtol || opt.atol;
  const double inf = std::numeric_limits<double>::infinity();

  for (std::size_t t = 0; t < inputs.size(); ++t) {
    GenericTensorCheck c;
    c.shape = inputs[t].shape();
    const Tensor<f50>& r = ref[t];
    f50 smax(0);
    for (const f50& v : r) {
      const f50 a = abs(v);
      if (a > smax) smax = a;
    }
    c.scale = static_cast<double>(smax);
    // tape vs finite differences
    const bool fd_done = fd.grad[t].numel() == r.numel();
    for (index_t i = 0; fd_done && i < r.numel(); ++i) {
      if (fd.kink[t][i]) {
        ++c.kinks;
        continue;
      }
      ++c.fd_checked;
      const f50 diff = abs(r[i] - fd.grad[t][i]);
      const f50 a = abs(r[i]);
      const f50 allowed = opt.fd_factor * fd.error[t][i] + g50 * (a > smax ? a : smax);
      const double d = static_cast<double>(diff);
      const double ratio = diff == 0 ? 0.0 : (allowed > 0 ? static_cast<double>(diff / allowed)
                                                          : inf);
      if (c.fd_worst < 0 || ratio > c.fd_max_ratio) c.fd_max_ratio = ratio, c.fd_worst = i;
      if (d > c.fd_max_abs) c.fd_max_abs = d;
      if (!(diff <= allowed)) c.fd_pass = false;
    }
    // the user's gradient
    if (user) {
      c.has_user = true;
      const Tensor<T>& u = (*user)[t];
      c.user_tol = caller_tol ? 0.0 : gamma<T>(static_cast<double>(rep.depth)) * c.scale;
      for (index_t i = 0; i < r.numel(); ++i) {
        const f50 uf = f50(u[i]);
        const double d = is_finite(u[i]) ? static_cast<double>(abs(uf - r[i])) : inf;
        const double allowed =
            caller_tol ? opt.atol.value_or(0) + opt.rtol.value_or(0) *
                                                    std::fabs(static_cast<double>(r[i]))
                       : c.user_tol;
        const double ratio = d == 0 ? 0.0 : (allowed > 0 ? d / allowed : inf);
        if (c.user_worst < 0 || ratio > c.user_max_ratio || std::isnan(d)) {
          c.user_max_ratio = std::isnan(d) ? inf : ratio;
          c.user_worst = i;
          c.user_worst_actual = static_cast<double>(uf);
          c.user_worst_expected = static_cast<double>(r[i]);
        }
        if (d > c.user_max_abs || std::isnan(d)) c.user_max_abs = std::isnan(d) ? inf : d;
        if (!(d <= allowed)) {
          c.user_pass = false;
          ++c.user_failing;
        }
      }
    }
    rep.tensors.push_back(c);
  }
  rep.reference = std::move(ref);
  return rep;
}

// Adapts f(const Tensor<S>&) to f(const std::vector<Tensor<S>>&).
template <class F>
struct FirstOf {
  F& f;
  template <class S>
  auto operator()(const std::vector<Tensor<S>>& v) const {
    return f(v[0]);
  }
};

}  // namespace generic_detail

// f: S f(const std::vector<Tensor<S>>&) for S = Var<f50> and f50 (a generic lambda or a
// function object with a templated operator()). T: the precision of the inputs (float, double
// or f50); they are exact in f50.
template <class F, class T>
GenericGradcheckReport gradcheck(F&& f, const std::vector<Tensor<T>>& inputs,
                                 const GenericGradcheckOptions& opt = {}) {
  return generic_detail::run(f, inputs, static_cast<const std::vector<Tensor<T>>*>(nullptr), opt);
}

// Same, and judges `user_grad` (your gradient of f w.r.t. each input, precision T).
template <class F, class T>
GenericGradcheckReport gradcheck(F&& f, const std::vector<Tensor<T>>& inputs,
                                 const std::vector<Tensor<T>>& user_grad,
                                 const GenericGradcheckOptions& opt = {}) {
  return generic_detail::run(f, inputs, &user_grad, opt);
}

// Braced lists of inputs (and gradients): gradcheck(f, {x, w}, {dx, dw}).
template <class F, class T>
GenericGradcheckReport gradcheck(F&& f, std::initializer_list<Tensor<T>> inputs,
                                 const GenericGradcheckOptions& opt = {}) {
  return gradcheck(f, std::vector<Tensor<T>>(inputs), opt);
}
template <class F, class T>
GenericGradcheckReport gradcheck(F&& f, std::initializer_list<Tensor<T>> inputs,
                                 std::initializer_list<Tensor<T>> user_grad,
                                 const GenericGradcheckOptions& opt = {}) {
  return gradcheck(f, std::vector<Tensor<T>>(inputs), std::vector<Tensor<T>>(user_grad), opt);
}

// One input: f: S f(const Tensor<S>&).
template <class F, class T>
GenericGradcheckReport gradcheck(F&& f, const Tensor<T>& x,
                                 const GenericGradcheckOptions& opt = {}) {
  generic_detail::FirstOf<F> g{f};
  return generic_detail::run(g, std::vector<Tensor<T>>{x},
                             static_cast<const std::vector<Tensor<T>>*>(nullptr), opt);
}
template <class F, class T>
GenericGradcheckReport gradcheck(F&& f, const Tensor<T>& x, const Tensor<T>& user_grad,
                                 const GenericGradcheckOptions& opt = {}) {
  generic_detail::FirstOf<F> g{f};
  const std::vector<Tensor<T>> ug{user_grad};
  return generic_detail::run(g, std::vector<Tensor<T>>{x}, &ug, opt);
}

}  // namespace tapegrad::gradcheck
