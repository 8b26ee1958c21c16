// Finite differences in 50 digits (path #4 of DESIGN.md): the gradient of a scalar function
// of several tensors that trusts no derivative rule, with an error estimate per element and a
// flag where the stencil straddles a kink.
//
//   auto loss = [&](const std::vector<Tensor<f50>>& in) { return my_forward(in[0], in[1]); };
//   FiniteDiffResult fd = finite_diff(loss, {x.cast<f50>(), w.cast<f50>()});
//   fd.grad[1][i]   d loss / d w[i]
//   fd.error[1][i]  estimated |fd.grad[1][i] - exact|
//   fd.kink[1][i]   1: the stencil straddles a kink; grad[1][i] must not be trusted
//
// Stencil. For element x (all others fixed), h = the power of two <= rel_step * max(1, |x|)
// (rel_step = 1e-15), so x +- h and x +- h/2 are exact for x with up to ~100 significant bits
// (any double); the steps actually taken are still recomputed as (x + t) - x. Five values:
// f0 = f(x) (shared by all elements), f(x +- h), f(x +- h/2); 1 + 4 * numel evaluations.
//
//   C(t)  = (f(x+t) - f(x-t)) / 2t   = f' + t^2 f'''/6 + O(t^4)         central
//   grad  = (4 C(h/2) - C(h)) / 3    = f' + O(h^4)                       Richardson
//   D+(t) = (f(x+t) - f0) / t,  D-(t) = (f0 - f(x-t)) / t                one-sided
//   R+-   = 2 D+-(h/2) - D+-(h)      = f' + O(h^2)   (the h f''/2 term cancels)
//
// Error model (u50 = 2^-167 ~ 5e-51). Let eps_f bound the absolute error of one evaluation of
// f; by default eps_f = f_rel_error * max|f|, f_rel_error = 1e6 u50 (a forward pass with
// reductions of up to ~1e6 terms and no catastrophic cancellation; pass f_abs_error when
// known better).
//   truncation  C(h) - C(h/2) = (3/4) h^2 f'''/6, so the error of C(h/2) is |C(h)-C(h/2)|/3;
//               we report that as the truncation of grad (conservative: grad's own error is
//               O(h^4), another factor ~h^2 ~ 1e-30 smaller). ~ h^2|f'''|/24 ~ 1e-31 |f'''|.
//   rounding    C(t) carries <= 2 eps_f / 2t, so grad carries <= (4 * 2eps_f/h + eps_f/h)/3
//               = 3 eps_f / h ~ 3e6 * 5e-51 / 1e-15 ~ 2e-29 max|f|  (plus 4 u50 |grad|).
//   error = |C(h) - C(h/2)| / 3 + 3 eps_f / h + 4 u50 |grad|.
// Both terms are ~1e-30 relative: 14 orders below double's unit roundoff, so the result is a
// reference for double and float gradients, and the error estimate proves it per element.
//
// Kinks (relu input within h of 0, a max-pool near-tie, |x| at 0). For a single kink of slope
// jump J at distance d in [0, h) from x, by direct computation on f = J * relu(. - (x + d)):
//   T1 = |R+ - R-| = J |h - 3d| / h  (d < h/2),  J (h - d) / h  (h/2 <= d < h)
//   T3 = |C(h) - C(h/2)| = J d / 2h  (d < h/2),  J (h - d) / 2h (h/2 <= d < h)
// Each test alone has a blind spot (T1 at d = h/3, T3 at d = 0), but max(T1, T3) >= J/7 for
// d <= h/2; for h/2 < d < h the error of grad is J (h - d) / 6h = T3 / 3, which the error
// estimate above already reports. For a smooth f both T1 and T3 are O(h^2 f''') ~ 1e-30 f'''.
// So an element is flagged `kink` when
//   T1 > kink_rel * scale + 20 eps_f / h   or   T3 > kink_rel * scale + 3 eps_f / h
// with scale = max(|R+|, |R-|, |C(h)|, |C(h/2)|, grad_scale_floor), kink_rel = 1e-22, and
// 20 eps_f / h, 3 eps_f / h the rounding noise of T1, T3 (D+-(t) carries <= 2 eps_f / t, so
// R+- carry <= 10 eps_f / h). kink_rel = 1e-22 sits between the two: a smooth f is flagged only
// if |f'''| > ~1e8 scale (a feature 1e-4 wide), and a kink too small to be flagged
// (J < 7e-22 scale) moves grad by at most J/2 < 4e-22 scale, invisible to any double check.
// (Why not compare the plain one-sided differences D+(h), D-(h) as a relative test: for a
// smooth f they differ by h f'', which at a stationary point (x^2 at 0) is as large as the
// derivative itself, so they would flag every minimum.)
// NOTE: a point where f's value and derivative are both ~0 at the scale of h (x^3 at 0) has
// scale ~ h^2 and may be flagged; set grad_scale_floor to the expected gradient magnitude.
//
// A non-finite f at any stencil point throws std::domain_error naming the element.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::gradcheck {

struct FiniteDiffOptions {
  double rel_step = 1e-15;  // h = 2^floor(log2(rel_step * max(1, |x|)))
  // Absolute error of one evaluation of f; default f_rel_error * max|f| over the stencil.
  std::optional<f50> f_abs_error;
  double f_rel_error = 1e6 * ScalarTraits<f50>::unit_roundoff();
  double kink_rel = 1e-22;
  f50 grad_scale_floor = 0;
  // Which inputs to differentiate (empty: all). Skipped inputs get empty ([0]) tensors.
  std::vector<bool> wrt;
};

struct FiniteDiffResult {
  f50 value = 0;                              // f(inputs)
  std::vector<Tensor<f50>> grad;              // d f / d inputs[t][i]
  std::vector<Tensor<f50>> error;             // estimated |grad - exact|
  std::vector<Tensor<std::uint8_t>> kink;     // 1: stencil straddles a kink, grad untrusted
  index_t kinks = 0;                          // number of flagged elements
  index_t evaluations = 0;                    // calls of f
  f50 max_error = 0;                          // over unflagged elements
};

// The step h used for an element of value x (a power of two).
inline f50 finite_diff_step(const f50& x, double rel_step = 1e-15) {
  using std::abs;
  const double s = std::fmax(1.0, static_cast<double>(abs(x)));
  int e = 0;
  std::frexp(rel_step * s, &e);  // rel_step * s in [2^(e-1), 2^e)
  return ldexp(f50(1), e - 1);
}

namespace fd_detail {
inline f50 max_abs(std::initializer_list<f50> v) {
  f50 m = 0;
  for (const f50& a : v) {
    const f50 b = abs(a);
    if (b > m) m = b;
  }
  return m;
}
}  // namespace fd_detail

// F: callable as f50 f(const std::vector<Tensor<f50>>&). inputs are taken by value and
// perturbed one element at a time (restored exactly after each element).
template <class F>
FiniteDiffResult finite_diff(F&& f, std::vector<Tensor<f50>> inputs,
                             const FiniteDiffOptions& opt = {}) {
  using fd_detail::max_abs;
  check_arg(opt.wrt.empty() || opt.wrt.size() == inputs.size(), "finite_diff",
            "wrt has ", opt.wrt.size(), " flags, expected ", inputs.size(), " (one per input)");
  check_arg(opt.rel_step > 0 && opt.rel_step < 1, "finite_diff", "rel_step must be in (0,1), got ",
            opt.rel_step);
  const f50 u50 = ScalarTraits<f50>::unit_roundoff();

  FiniteDiffResult r;
  auto eval = [&](std::size_t t, index_t i, const char* where) {
    f50 v = f(static_cast<const std::vector<Tensor<f50>>&>(inputs));
    ++r.evaluations;
    if (!is_finite(v))
      throw std::domain_error(detail::concat("finite_diff: f is not finite at ", where,
                                             " (inputs[", t, "] element ", i, ")"));
    return v;
  };
  const f50 f0 = eval(0, -1, "the unperturbed inputs");
  r.value = f0;

  for (std::size_t t = 0; t < inputs.size(); ++t) {
    if (!opt.wrt.empty() && !opt.wrt[t]) {
      r.grad.emplace_back(Shape{0});
      r.error.emplace_back(Shape{0});
      r.kink.emplace_back(Shape{0});
      continue;
    }
    const Shape shape = inputs[t].shape();
    Tensor<f50> grad(shape), error(shape);
    Tensor<std::uint8_t> kink(shape, 0);
    for (index_t i = 0; i < shape.numel(); ++i) {
      f50& xi = inputs[t][i];
      const f50 x = xi;
      const f50 h = finite_diff_step(x, opt.rel_step);
      const f50 h2 = h / 2;
      const f50 xp1 = x + h, xm1 = x - h, xp2 = x + h2, xm2 = x - h2;
      xi = xp1; const f50 fp1 = eval(t, i, "x + h");
      xi = xm1; const f50 fm1 = eval(t, i, "x - h");
      xi = xp2; const f50 fp2 = eval(t, i, "x + h/2");
      xi = xm2; const f50 fm2 = eval(t, i, "x - h/2");
      xi = x;
      // The steps actually taken (exact differences; equal to h, h/2 for any double x).
      const f50 sp1 = xp1 - x, sm1 = x - xm1, sp2 = xp2 - x, sm2 = x - xm2;

      const f50 c1 = (fp1 - fm1) / (sp1 + sm1);
      const f50 c2 = (fp2 - fm2) / (sp2 + sm2);
      const f50 g = (4 * c2 - c1) / 3;
      const f50 rp = 2 * ((fp2 - f0) / sp2) - (fp1 - f0) / sp1;
      const f50 rm = 2 * ((f0 - fm2) / sm2) - (f0 - fm1) / sm1;

      const f50 eps_f = opt.f_abs_error ? *opt.f_abs_error
                                        : opt.f_rel_error * max_abs({f0, fp1, fm1, fp2, fm2});
      const f50 t1 = abs(rp - rm);
      const f50 t3 = abs(c1 - c2);
      const f50 scale = max_abs({rp, rm, c1, c2, opt.grad_scale_floor});
      const bool is_kink = t1 > opt.kink_rel * scale + 20 * eps_f / h ||
                           t3 > opt.kink_rel * scale + 3 * eps_f / h;

      grad[i] = g;
      error[i] = t3 / 3 + 3 * eps_f / h + 4 * u50 * abs(g);
      kink[i] = is_kink ? 1 : 0;
      if (is_kink) {
        ++r.kinks;
      } else if (error[i] > r.max_error) {
        r.max_error = error[i];
      }
    }
    r.grad.push_back(std::move(grad));
    r.error.push_back(std::move(error));
    r.kink.push_back(std::move(kink));
  }
  return r;
}

}  // namespace tapegrad::gradcheck
