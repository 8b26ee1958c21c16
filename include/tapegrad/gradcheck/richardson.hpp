// gradcheck_blackbox: check a user's gradient of a black-box double function, with no access
// to 50 digits or to the function's insides. Per element, central differences at steps
// h, h/2, h/4, ... are extrapolated to step 0 in a Neville (Richardson) table, and the table
// itself says how accurate the estimate is (Ridders' method).
//
//   A[i][0] = C(h / 2^i),  C(t) = (f(x+t) - f(x-t)) / 2t = f' + a1 t^2 + a2 t^4 + ...
//   A[i][j] = A[i][j-1] + (A[i][j-1] - A[i-1][j-1]) / (4^j - 1)     (kills the t^(2j) term)
//
// Error estimate of entry A[i][j]: the larger of its distances to the two entries it was made
// from, max(|A[i][j] - A[i][j-1]|, |A[i][j] - A[i-1][j-1]|) -- the difference between the last
// two extrapolation levels -- plus the rounding floor of the smallest step used:
//   rounding of C(t) <= 2 eps_f / 2t = eps_f / t,  eps_f = f_rel_error * max|f| (4u default:
//   the user's f is a double computation of unknown length; raise it for long ones), times 2
//   for the growth through the table (prod_j (1 + 2/(4^j - 1)) < 2).
// The estimate with the smallest error over the whole table is kept; the table stops early
// once the newest diagonal entry moves by twice the best error or more (rounding has taken
// over; Ridders' rule, as in Numerical Recipes' dfridr).
// This is an estimate, not a bound; the test suite checks it bounds the true error on
// smooth functions, where it is typically pessimistic by 1-3 digits.
//
// Pass: |user - estimate| <= pass_factor * (error + 2u |estimate|), pass_factor = 4; the
// 2u |estimate| admits a user gradient that is itself correctly rounded (within 1 ulp).
// The initial step is initial_step * max(1, |x_i|) (0.1): f must be defined on that interval.
#pragma once

#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/shape.hpp"

namespace tapegrad::gradcheck {

struct BlackboxOptions {
  double initial_step = 0.1;   // h0 = initial_step * max(1, |x_i|)
  int levels = 10;             // steps h0, h0/2, ..., h0/2^(levels-1)
  double f_rel_error = 4 * 0x1p-53;
  double pass_factor = 4;
};

struct BlackboxElement {
  double user = 0;      // the user's gradient
  double estimate = 0;  // extrapolated finite difference
  double error = 0;     // estimated |estimate - exact|
  double abs_diff = 0;  // |user - estimate|
  double ratio = 0;     // abs_diff / allowed; pass iff ratio <= 1 (NaN fails)
  bool pass = false;
};

struct BlackboxReport {
  std::vector<BlackboxElement> elements;
  bool pass = true;
  index_t worst = -1;  // index of the largest ratio (-1 for no elements)
  double worst_ratio = 0;
  index_t evaluations = 0;
  index_t failing = 0;
};

inline BlackboxReport gradcheck_blackbox(const std::function<double(const std::vector<double>&)>& f,
                                         std::vector<double> x,
                                         const std::vector<double>& user_grad,
                                         const BlackboxOptions& opt = {}) {
  check_arg(user_grad.size() == x.size(), "gradcheck_blackbox", "user_grad has ",
            user_grad.size(), " elements, expected ", x.size(), " = x size");
  check_arg(opt.levels >= 2, "gradcheck_blackbox", "levels must be >= 2, got ", opt.levels);
  check_arg(opt.initial_step > 0, "gradcheck_blackbox", "initial_step must be positive, got ",
            opt.initial_step);
  const double u = 0x1p-53;
  double worst_key = 0;
  BlackboxReport rep;
  rep.elements.resize(x.size());
  const auto levels = static_cast<std::size_t>(opt.levels);
  std::vector<std::vector<double>> a(levels, std::vector<double>(levels, 0.0));

  for (std::size_t k = 0; k < x.size(); ++k) {
    const double xk = x[k];
    double t = opt.initial_step * std::fmax(1.0, std::fabs(xk));
    double best = std::numeric_limits<double>::quiet_NaN();
    double best_err = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < levels; ++i, t /= 2) {
      x[k] = xk + t;
      const double fp = f(x);
      x[k] = xk - t;
      const double fm = f(x);
      x[k] = xk;
      rep.evaluations += 2;
      const double step = (xk + t) - (xk - t);  // the step actually taken
      a[i][0] = (fp - fm) / step;
      const double round = 2 * opt.f_rel_error * std::fmax(std::fabs(fp), std::fabs(fm)) / t;
      double four_j = 1;
      for (std::size_t j = 1; j <= i; ++j) {
        four_j *= 4;
        a[i][j] = a[i][j - 1] + (a[i][j - 1] - a[i - 1][j - 1]) / (four_j - 1);
        const double e = std::fmax(std::fabs(a[i][j] - a[i][j - 1]),
                                   std::fabs(a[i][j] - a[i - 1][j - 1])) + round;
        if (e <= best_err) {
          best_err = e;
          best = a[i][j];
        }
      }
      // The newest diagonal entry drifting away from the previous one: rounding dominates.
      if (i >= 1 && std::fabs(a[i][i] - a[i - 1][i - 1]) >= 2 * best_err)
        break;
    }
    BlackboxElement& el = rep.elements[k];
    el.user = user_grad[k];
    el.estimate = best;
    el.error = best_err;
    el.abs_diff = std::fabs(el.user - el.estimate);
    const double allowed = opt.pass_factor * (el.error + 2 * u * std::fabs(el.estimate));
    el.ratio = el.abs_diff == 0 ? 0 : el.abs_diff / allowed;
    el.pass = el.ratio <= 1;  // NaN fails
    if (!el.pass) {
      rep.pass = false;
      ++rep.failing;
    }
    // Worst element: the largest ratio, NaN ranking above everything.
    const double key = std::isnan(el.ratio) ? std::numeric_limits<double>::infinity() : el.ratio;
    if (rep.worst < 0 || key > worst_key) {
      rep.worst = static_cast<index_t>(k);
      rep.worst_ratio = el.ratio;
      worst_key = key;
    }
  }
  return rep;
}

}  // namespace tapegrad::gradcheck
