// The one driver behind every raw-buffer check (include/tapegrad/oracle/*.hpp): an op's check
// function builds a Case -- the input buffers in the user's layout, the exact output, and per
// element the two numbers of the bound, K (rounding count) and S (magnitude) -- and run_case
// does the rest for every op alike:
//   run the callback on guarded output buffers (NaN prefill; for gradients also a known prefill
//   P, twice in overwrite mode) -> audit the inputs (bitwise unchanged) -> judge every element
//   |actual - exact| <= gamma_T(K_i) * S_i (or the caller's compare() criteria) -> label the
//   failures (never written / accumulated into / overwritten).
// Accumulate mode judges P + gradient with K_i + 1 and S_i + |P_i|: one more rounding, the
// final "+=". That holds whenever S_i >= |gradient_i|, which every op's S guarantees:
//   |fl(P + g~) - (P + g)| <= |g~ - g| + u |P + g~| <= gamma(K) S (1 + u) + u (|P| + S)
//                          <= gamma(K + 1) (S + |P|).
// Internal to src/oracle; not installed.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "tapegrad/gradcheck/tolerance.hpp"
#include "tapegrad/io/npy.hpp"
#include "pattern.hpp"
#include "tapegrad/oracle/bounds.hpp"
#include "tapegrad/oracle/raw.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/tensor.hpp"

// Helpers in a named namespace: templates with external linkage use them (an anonymous
// namespace would trip -Wsubobject-linkage).
namespace tapegrad::oracle::driver {

template <class T>
Tensor<T> random_tensor(const Shape& shape, std::uint64_t seed, std::uint64_t stream) {
  return Tensor<T>(shape, oracle_values<T>(shape.numel(), seed, stream));
}

// A generated input tensor: OracleOptions::values' kind (never for the prefill, stream 4).
template <class T>
Tensor<T> input_values(const Shape& shape, const OracleOptions& opt, std::uint64_t stream) {
  return Tensor<T>(shape, oracle_values<T>(shape.numel(), opt.seed, stream, opt.values));
}

inline Tensor<f50> abs_of(const Tensor<f50>& t) {
  return map(t, [](const f50& v) { return f50(abs(v)); });
}

template <class T>
const char* dtype_of() {
  return std::is_same_v<T, float> ? "float32" : "float64";
}

// v as a double rounded up (>= v): the magnitudes S of the tolerance are bounds.
inline double up_to_double(const f50& v) {
  double d = io::round_to_double(v);
  if (f50(d) < v) d = std::nextafter(d, std::numeric_limits<double>::infinity());
  return d;
}
// gamma * S rounded up, gamma itself taken one ulp up: an upper bound on gamma_T(K) * S.
inline double allowed_of(double gam, double s) {
  const double inf = std::numeric_limits<double>::infinity();
  return std::nextafter(std::nextafter(gam, inf) * s, inf);
}

// Logical (A,B,C,D) <-> channels-last (A,C,D,B): NCHW <-> NHWC and KCRS <-> KRSC.
template <class U>
Tensor<U> to_channels_last(const Tensor<U>& t) {
  const index_t a = t.size(0), b = t.size(1), c = t.size(2), d = t.size(3);
  Tensor<U> out(Shape{a, c, d, b});
  for (index_t i = 0; i < a; ++i)
    for (index_t j = 0; j < b; ++j)
      for (index_t k = 0; k < c; ++k)
        for (index_t l = 0; l < d; ++l) out(i, k, l, j) = t(i, j, k, l);
  return out;
}
template <class U>
Tensor<U> to_layout(const Tensor<U>& t, Layout layout) {
  return layout == Layout::nhwc && t.rank() == 4 ? to_channels_last(t) : t;
}

// One input buffer handed to the callback (any element type: float, double, int64 targets),
// with a pristine copy to detect modification.
struct InputBuffer {
  std::string name;
  std::vector<unsigned char> data, copy;
  template <class U>
  InputBuffer(std::string n, const Tensor<U>& t) : name(std::move(n)) {
    const auto* p = reinterpret_cast<const unsigned char*>(t.data());
    data.assign(p, p + static_cast<std::size_t>(t.numel()) * sizeof(U));
    copy = data;
  }
  template <class U>
  const U* as() const {
    return data.empty() ? nullptr : reinterpret_cast<const U*>(data.data());
  }
};

// The layout letters of a buffer kind: 'a' activations, 'w' conv weights, 'b' a bias.
inline std::string letters_of(char kind, Layout layout) {
  const bool cl = layout == Layout::nhwc;
  switch (kind) {
    case 'a': return cl ? "NHWC" : "NCHW";
    case 'w': return cl ? "KRSC" : "KCRS";
    default: return "K";
  }
}

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// After a call: record (once) and undo any modification of an input buffer.
inline void audit_inputs(std::vector<InputBuffer>& ins, OracleReport& r) {
  for (auto& in : ins) {
    if (in.data == in.copy) continue;
    if (std::find(r.modified_inputs.begin(), r.modified_inputs.end(), in.name) ==
        r.modified_inputs.end())
      r.modified_inputs.push_back(in.name);
    in.data = in.copy;
  }
}

// What one check hands the driver. exact, s and k are per element of the output, in the
// user's layout (row-major in it); the report's op, problem, output, letters, layout and
// is_gradient are set by the op.
template <class T>
struct Case {
  OracleReport report;
  std::vector<InputBuffer> inputs;
  Tensor<f50> exact;           // the exact output (a gradient without any prefill)
  Tensor<f50> s;               // S_i >= |exact_i|: the magnitude of the bound
  std::vector<index_t> k;      // K_i: the rounding count of the bound
  std::string model;           // what K and S are, for the report ("" for sums of products)
  bool probabilistic = false;  // Bound::probabilistic: the probabilistic tier applies
  PatternSpec pattern;         // how the report names where the failures are (pattern.hpp)
};

// K the same for every element.
inline std::vector<index_t> constant_k(const Shape& s, index_t k) {
  return std::vector<index_t>(static_cast<std::size_t>(s.numel()), k);
}

// Labels of a check's report.
struct Labels {
  const char* op;           // "linear_forward"
  std::string problem;      // the geometry string
  const char* output;       // "y"
  std::string letters;      // "NCHW", "N,C" ...
  Layout layout = Layout::nchw;
  bool is_gradient = false;
};

// A Case from an op's Bound: the exact value, S and K moved to the user's layout (NHWC: a rank-4
// output transposed; K is reordered alike).
template <class T>
Case<T> case_of(Bound b, const Labels& l, Engine engine) {
  Case<T> c;
  c.report.op = l.op;
  c.report.problem = l.problem;
  c.report.output = l.output;
  c.report.letters = l.letters;
  c.report.layout = l.layout;
  c.report.engine = engine;
  c.report.is_gradient = l.is_gradient;
  c.model = b.model;
  c.probabilistic = b.probabilistic;
  if (l.layout == Layout::nhwc && b.exact.rank() == 4) {
    Tensor<double> k(b.exact.shape());
    for (index_t i = 0; i < k.numel(); ++i) k[i] = double(b.k[static_cast<std::size_t>(i)]);
    const Tensor<double> kt = to_channels_last(k);
    for (index_t i = 0; i < k.numel(); ++i) b.k[static_cast<std::size_t>(i)] = index_t(kt[i]);
    c.exact = to_channels_last(b.exact);
    c.s = to_channels_last(b.s);
  } else {
    c.exact = std::move(b.exact);
    c.s = std::move(b.s);
  }
  c.k = std::move(b.k);
  c.pattern.axes = axes_of(l.letters, c.exact.rank());
  return c;
}

// The two tiers' allowed errors of one element with k roundings and magnitude s, in a
// precision of unit roundoff u (raw.hpp, "Tiers"): sound = gamma(k) s; probabilistic =
// gamma~(k, lambda) s where the op's model allows it and gamma~ < gamma, else the sound one.
struct TierAllowed {
  double sound = 0, probabilistic = 0;
  double lambda = 0;         // 0: the probabilistic tier used the sound bound here
  double of(Tier t) const { return t == Tier::sound ? sound : probabilistic; }
};
// u_store > 0: the result was computed with unit roundoff u (the declared accumulation) and
// then rounded once to a storage format of unit roundoff u_store: with |y^ - y| <= g S,
//   |fl(y^) - y| <= g S + u_store |y^| <= g S + u_store (|y| + g S)
//                 = (1 + u_store) g S + u_store |y|
// (the rounding to storage is one rounding of the result, a sure bound in either tier).
inline double with_store(double gs, double u_store, double y_up) {
  if (u_store == 0) return gs;
  const double inf = std::numeric_limits<double>::infinity();
  return std::nextafter(std::nextafter((1 + u_store) * gs, inf) +
                            std::nextafter(u_store * y_up, inf),
                        inf);
}
inline TierAllowed tier_allowed(index_t k, const f50& s, double u, bool model, double p,
                                double u_store = 0, const f50& y = f50(0)) {
  TierAllowed a;
  const double kd = static_cast<double>(k), s_up = up_to_double(s);
  const double y_up = u_store > 0 ? up_to_double(abs(y)) : 0;
  const double gam = gradcheck::gamma(kd, u);
  a.sound = a.probabilistic = with_store(allowed_of(gam, s_up), u_store, y_up);
  if (model && k > 0) {
    const double lambda = gradcheck::probabilistic_lambda(kd, p, u);
    const double gt = gradcheck::gamma_tilde(kd, lambda, u);
    if (gt < gam) {
      a.probabilistic = with_store(allowed_of(gt, s_up), u_store, y_up);
      a.lambda = lambda;
    }
  }
  return a;
}

// The precisions of a judgment: the storage format of the results, and the unit roundoff of
// the arithmetic that made them (the declared accumulation; by default the storage's, and
// then no separate rounding to storage is counted: it is one of the K).
struct Precisions {
  gradcheck::UlpPrecision storage = gradcheck::UlpPrecision::float64;
  gradcheck::UlpPrecision accumulate = gradcheck::UlpPrecision::float64;
  double u() const { return gradcheck::precision_unit_roundoff(accumulate); }
  double u_store() const {
    return storage == accumulate ? 0 : gradcheck::precision_unit_roundoff(storage);
  }
};
template <class T>
Precisions precisions_of() {
  const auto p = std::is_same_v<T, float> ? gradcheck::UlpPrecision::float32
                                          : gradcheck::UlpPrecision::float64;
  return {p, p};
}
// The exact value rounded once to the storage format, as a T (float16 and bfloat16 values are
// floats).
template <class T>
T round_to_storage(const f50& v, gradcheck::UlpPrecision storage) {
  if constexpr (std::is_same_v<T, float>) {
    if (storage == gradcheck::UlpPrecision::float16) return io::round_to_half(v);
    if (storage == gradcheck::UlpPrecision::bfloat16) return io::round_to_bfloat16(v);
  }
  return io::round_to<T>(v);
}

// The pattern spec of an op whose output is 4-d, given in the LOGICAL order (NCHW / KCRS: axis
// names, channel groups, features), moved to the user's layout.
template <class T>
void set_pattern(Case<T>& c, const PatternSpec& logical, const Shape& logical_shape,
                 Layout layout) {
  c.pattern = layout == Layout::nhwc && logical_shape.rank() == 4
                  ? to_channels_last(logical, logical_shape)
                  : logical;
}

// Per-element judgment of `actual` against the exact `expected` (both in the user's layout):
// the compare() statistics, then the ratio error / allowed (the verdict tier's) and the
// failing flags (the verdict tier's; both tiers' counts in the report). extra: 1 in accumulate
// mode (K_i + 1). model: the op's bound admits the probabilistic tier (Bound::probabilistic).
template <class T>
std::vector<bool> judge(OracleReport& r, const Tensor<T>& actual, const Tensor<f50>& expected,
                        const Tensor<f50>& abs_sum, const std::vector<index_t>& k, index_t extra,
                        const OracleOptions& opt, bool model,
                        const Precisions& prec = precisions_of<T>()) {
  // The exact value rounded once to the storage format (io::round_to_*: correctly, never
  // through another format).
  const Tensor<T> expected_t =
      map(expected, [&](const f50& v) { return round_to_storage<T>(v, prec.storage); });
  gradcheck::CompareOptions co;
  co.precision = prec.storage;
  if (opt.tolerance) {
    co = *opt.tolerance;
  } else {
    co.max_ulps = std::numeric_limits<std::uint64_t>::max();  // statistics only
  }
  static_cast<gradcheck::CompareReport&>(r) = gradcheck::compare(actual, expected_t, co);
  r.derived_tolerance = !opt.tolerance;
  r.reduction_length = 0;
  r.reduction_length_min = k.empty() ? 0 : std::numeric_limits<index_t>::max();
  for (index_t v : k) {
    r.reduction_length = std::max(r.reduction_length, v + extra);
    r.reduction_length_min = std::min(r.reduction_length_min, v + extra);
  }
  if (r.derived_tolerance) r.max_ulps.reset();
  const bool use_tol = r.derived_tolerance || r.default_tolerance || co.rtol || co.atol;
  const double inf = std::numeric_limits<double>::infinity();

  r.tier = opt.tier;
  r.probabilistic_model = model;
  r.false_fail_probability = opt.false_fail_probability;
  r.lambda_min = r.lambda_max = 0;
  r.probabilistic_elements = 0;
  const double u = prec.u(), u_store = prec.u_store();
  r.accumulate = prec.accumulate;
  std::vector<bool> fail(static_cast<std::size_t>(actual.numel()), false);
  index_t failing = 0, failing_sound = 0, failing_prob = 0;
  r.max_ratio = 0;
  r.worst_ratio_index.reset();
  for (index_t i = 0; i < actual.numel(); ++i) {
    const T a = actual[i];
    double err = inf, allowed = 0, ratio = inf;
    bool bad = false;
    TierAllowed ta;
    if (r.derived_tolerance) {
      ta = tier_allowed(k[static_cast<std::size_t>(i)] + extra, abs_sum[i], u, model,
                        opt.false_fail_probability, u_store, expected[i]);
      if (ta.lambda > 0) {
        r.lambda_min = r.probabilistic_elements ? std::min(r.lambda_min, ta.lambda) : ta.lambda;
        r.lambda_max = std::max(r.lambda_max, ta.lambda);
        ++r.probabilistic_elements;
      }
    }
    if (std::isfinite(a)) {
      err = static_cast<double>(abs(f50(a) - expected[i]));
      if (r.derived_tolerance) {
        allowed = ta.of(opt.tier);
        if (!(err <= ta.sound)) ++failing_sound;
        if (!(err <= ta.probabilistic)) ++failing_prob;
      } else {
        allowed = r.atol + r.rtol * std::fabs(static_cast<double>(expected_t[i]));
      }
      if (use_tol) {
        ratio = err == 0 ? 0 : (allowed > 0 ? err / allowed : inf);
        bad = !(err <= allowed);
      } else {
        ratio = 0;
      }
      if (!r.derived_tolerance && r.max_ulps) {
        const std::uint64_t u = gradcheck::ulp_distance(double(a), double(expected_t[i]),
                                                        prec.storage);
        const double ur = *r.max_ulps > 0 ? double(u) / double(*r.max_ulps) : (u ? inf : 0);
        ratio = std::max(use_tol ? ratio : 0.0, ur);
        if (u > *r.max_ulps) bad = true;
      }
    } else {
      bad = true;  // the exact value is always finite here
      ++failing_sound, ++failing_prob;
      if (r.derived_tolerance) allowed = ta.of(opt.tier);
    }
    fail[static_cast<std::size_t>(i)] = bad;
    if (bad) ++failing;
    if (!r.worst_ratio_index || ratio > r.max_ratio) {
      r.max_ratio = ratio;
      r.worst_ratio_index = i;
      r.worst_ratio_actual = static_cast<double>(a);
      r.worst_ratio_expected = static_cast<double>(expected[i]);
      r.worst_ratio_allowed = allowed;
    }
  }
  r.failing = failing;
  r.sound_failing = r.derived_tolerance ? failing_sound : failing;
  r.probabilistic_failing = r.derived_tolerance ? failing_prob : failing;
  return fail;
}

// Runs the check: invoke(inputs, out) calls the user's callback with the input buffers and an
// output buffer; see the top of this file for the flow.
template <class T, class Invoke>
OracleReport run_case(Case<T> c, Invoke&& invoke, const OracleOptions& opt) {
  OracleReport& r = c.report;
  r.dtype = dtype_of<T>();
  r.grad_mode = opt.grad_mode;
  r.seed = opt.seed;
  r.model = c.model;
  auto call = [&](T* out) {
    invoke(static_cast<const std::vector<InputBuffer>&>(c.inputs), out);
    audit_inputs(c.inputs, r);
  };
  const Tensor<f50>& exact = c.exact;
  const Tensor<f50>& abs_sum = c.s;
  const std::vector<index_t>& k = c.k;
  const Shape shape = exact.shape();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  auto near = [](T a, const f50& e, double allowed) {
    return std::isfinite(a) && static_cast<double>(abs(f50(a) - e)) <= allowed;
  };
  // The labels below (accumulated into / overwritten) test the other reading of an element
  // with the sound bound: the most lenient, so a label is never missed for the tier's sake.
  auto allowed_at = [&](index_t i, index_t extra, const f50& s) {
    return tier_allowed(k[static_cast<std::size_t>(i)] + extra, s, gradcheck::unit_roundoff<T>(),
                        false, opt.false_fail_probability)
        .sound;
  };

  if (!r.is_gradient) {
    Tensor<T> out(shape, nan);
    call(out.data());
    const auto fail = judge<T>(r, out, exact, abs_sum, k, 0, opt, c.probabilistic);
    for (index_t i = 0; i < out.numel(); ++i)
      if (fail[static_cast<std::size_t>(i)] && std::isnan(out[i])) r.unwritten.push_back(i);
    r.pattern = failure_pattern(shape, fail, c.pattern);
    return r;
  }

  const Tensor<T> prefill = random_tensor<T>(shape, opt.seed, 4);
  const Tensor<f50> p50 = prefill.template cast<f50>();
  Tensor<f50> with_p(shape), s_with_p(shape);
  for (index_t i = 0; i < shape.numel(); ++i) {
    with_p[i] = p50[i] + exact[i];
    s_with_p[i] = abs(p50[i]) + abs_sum[i];
  }

  if (r.grad_mode == GradMode::overwrite) {
    Tensor<T> out_nan(shape, nan);
    call(out_nan.data());
    Tensor<T> out_p = prefill;
    call(out_p.data());
    const auto fail = judge<T>(r, out_nan, exact, abs_sum, k, 0, opt, c.probabilistic);
    for (index_t i = 0; i < shape.numel(); ++i) {
      if (!fail[static_cast<std::size_t>(i)] || !std::isnan(out_nan[i])) continue;
      if (exact[i] != 0 && near(out_p[i], with_p[i], allowed_at(i, 1, s_with_p[i])))
        r.accumulated.push_back(i);
      else if (same_bits(out_p[i], prefill[i]))
        r.unwritten.push_back(i);
    }
    r.pattern = failure_pattern(shape, fail, c.pattern);
  } else {
    Tensor<T> out = prefill;
    call(out.data());
    const auto fail = judge<T>(r, out, with_p, s_with_p, k, 1, opt, c.probabilistic);
    for (index_t i = 0; i < shape.numel(); ++i) {
      if (!fail[static_cast<std::size_t>(i)]) continue;
      if (exact[i] != 0 && near(out[i], exact[i], allowed_at(i, 0, abs_sum[i])))
        r.overwritten.push_back(i);
      else if (same_bits(out[i], prefill[i]))
        r.unwritten.push_back(i);
    }
    r.pattern = failure_pattern(shape, fail, c.pattern);
  }
  return r;
}

// The input tensors of a sum check: seeded uniform, or exact-input mode's integers for
// reduction length k.
template <class T>
Tensor<T> input_tensor(const Shape& s, const OracleOptions& opt, std::uint64_t stream,
                       index_t k) {
  if (!opt.exact_inputs) return input_values<T>(s, opt, stream);
  return Tensor<T>(s, exact_input_values<T>(s.numel(), opt.seed, stream,
                                            exact_input_bits<T>(k)));
}
// Exact-input mode: equality (K = 0), said in the report.
template <class T>
void exact_mode(Case<T>& c, const OracleOptions& opt, index_t k) {
  if (!opt.exact_inputs) return;
  c.k = constant_k(c.exact.shape(), 0);
  c.model = "exact inputs (integers in [-2^";
  c.model += std::to_string(exact_input_bits<T>(k));
  c.model += ", 2^";
  c.model += std::to_string(exact_input_bits<T>(k));
  c.model += "], every partial sum exact): equality";
}

// The exact output of a linear op (conv2d, linear, avg_pool2d) and its S = sum |terms|, as the
// engine asked for computes them: ref(v) runs the reference kernel on f50 tensors, exact_value /
// exact_abs the exact engine on double tensors (Precise and AbsSumUp); the inputs are T
// tensors, converted exactly.
struct Exact {
  Tensor<f50> value, abs_sum;
};
template <class T, class Ref, class ExactValue, class ExactAbs>
Exact exact_of(Engine e, const std::vector<const Tensor<T>*>& in, Ref ref_fn,
               ExactValue exact_value, ExactAbs exact_abs) {
  if (e == Engine::f50) {
    std::vector<Tensor<f50>> v, a;
    for (const Tensor<T>* t : in) {
      v.push_back(t->template cast<f50>());
      a.push_back(abs_of(v.back()));
    }
    return {ref_fn(v), ref_fn(a)};
  }
  std::vector<Tensor<double>> d;
  for (const Tensor<T>* t : in) d.push_back(t->template cast<double>());
  return {exact_value(d), exact_abs(d).template cast<f50>()};
}

}  // namespace tapegrad::oracle::driver
