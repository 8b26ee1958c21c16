// The raw-buffer oracle; see include/tapegrad/oracle/raw.hpp for the contract and the
// tolerance derivation. Flow of one check: validate the problem -> generate the inputs in T
// (logical layout) -> exact result and S = sum |terms| (the exact engine, or the reference
// kernels in f50) ->
// buffers in the user's layout -> run the callback on guarded output buffers -> judge every
// element in the user's layout -> label the failures (unwritten / accumulated / overwritten).
#include "tapegrad/oracle/raw.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cctype>
#include <cstring>
#include <limits>
#include <set>

#include "tapegrad/gradcheck/tolerance.hpp"
#include "tapegrad/io/npy.hpp"
#include "tapegrad/kernels/conv2d_exact.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::oracle {

const char* layout_name(Layout l) { return l == Layout::nchw ? "NCHW" : "NHWC"; }
const char* grad_mode_name(GradMode m) {
  return m == GradMode::overwrite ? "overwrite" : "accumulate";
}
const char* engine_name(Engine e) { return e == Engine::exact ? "exact" : "f50"; }

// Helpers in a named namespace: templates with external linkage use them (an anonymous
// namespace would trip -Wsubobject-linkage).
namespace raw_detail {

// splitmix64 (Steele, Lea, Flood 2014): portable, so a seed means the same inputs everywhere.
struct SplitMix64 {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

template <class T>
Tensor<T> random_tensor(const Shape& shape, std::uint64_t seed, std::uint64_t stream) {
  return Tensor<T>(shape, oracle_values<T>(shape.numel(), seed, stream));
}

Tensor<f50> abs_of(const Tensor<f50>& t) {
  return map(t, [](const f50& v) { return f50(abs(v)); });
}

// The exact output of one direction and its S = sum |terms|, as the engine asked for computes
// them: value (within the engine's bound of exact) and S (rounded up by the exact engine).
struct Exact {
  Tensor<f50> value, abs_sum;
};
// ref(x...) runs the reference kernel on f50 tensors, exact_value / exact_abs the exact engine
// on double tensors (Precise and AbsSumUp); the inputs are T tensors, converted exactly.
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

// v as a double rounded up (>= v): the sums S of the tolerance are bounds.
double up_to_double(const f50& v) {
  double d = io::round_to_double(v);
  if (f50(d) < v) d = std::nextafter(d, std::numeric_limits<double>::infinity());
  return d;
}
// gamma * S rounded up, gamma itself taken one ulp up: an upper bound on gamma_T(K) * S.
double allowed_of(double gam, double s) {
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

std::string letters_of(char kind, Layout layout) {
  const bool cl = layout == Layout::nhwc;
  switch (kind) {
    case 'a': return cl ? "NHWC" : "NCHW";  // activations
    case 'w': return cl ? "KRSC" : "KCRS";  // weights
    default: return "K";                    // bias
  }
}

template <class T>
const char* dtype_of() {
  return std::is_same_v<T, float> ? "float32" : "float64";
}

// One input buffer handed to the callback, with a pristine copy to detect modification.
template <class T>
struct InputBuffer {
  std::string name;
  Tensor<T> data, copy;
  InputBuffer(std::string n, Tensor<T> t) : name(std::move(n)), data(t), copy(std::move(t)) {}
  const T* ptr() const { return data.data(); }
};

template <class T>
bool same_bits(const Tensor<T>& a, const Tensor<T>& b) {
  return std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * sizeof(T)) == 0;
}
template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// After a call: record (once) and undo any modification of an input buffer.
template <class T>
void audit_inputs(std::vector<InputBuffer<T>>& ins, OracleReport& r) {
  for (auto& in : ins) {
    if (same_bits(in.data, in.copy)) continue;
    if (std::find(r.modified_inputs.begin(), r.modified_inputs.end(), in.name) ==
        r.modified_inputs.end())
      r.modified_inputs.push_back(in.name);
    in.data = in.copy;
  }
}

// Per-element judgment of `actual` against the exact `expected` (both in the user's layout):
// the compare() statistics, then the ratio error / allowed and the failing flags.
template <class T>
std::vector<bool> judge(OracleReport& r, const Tensor<T>& actual, const Tensor<f50>& expected,
                        const Tensor<f50>& abs_sum, index_t k, const OracleOptions& opt) {
  // The exact value rounded once to T (io::round_to_*: correctly, never through another format).
  const Tensor<T> expected_t = map(expected, [](const f50& v) {
    if constexpr (std::is_same_v<T, float>) {
      return io::round_to_float(v);
    } else {
      return io::round_to_double(v);
    }
  });
  gradcheck::CompareOptions co;
  if (opt.tolerance) {
    co = *opt.tolerance;
  } else {
    co.max_ulps = std::numeric_limits<std::uint64_t>::max();  // statistics only
  }
  static_cast<gradcheck::CompareReport&>(r) = gradcheck::compare(actual, expected_t, co);
  r.derived_tolerance = !opt.tolerance;
  r.reduction_length = k;
  if (r.derived_tolerance) r.max_ulps.reset();
  const bool use_tol = r.derived_tolerance || r.default_tolerance || co.rtol || co.atol;
  const double gam = gradcheck::gamma<T>(static_cast<double>(k));
  const double inf = std::numeric_limits<double>::infinity();

  std::vector<bool> fail(static_cast<std::size_t>(actual.numel()), false);
  index_t failing = 0;
  r.max_ratio = 0;
  r.worst_ratio_index.reset();
  for (index_t i = 0; i < actual.numel(); ++i) {
    const T a = actual[i];
    double err = inf, allowed = 0, ratio = inf;
    bool bad = false;
    if (std::isfinite(a)) {
      err = static_cast<double>(abs(f50(a) - expected[i]));
      if (r.derived_tolerance) {
        allowed = allowed_of(gam, up_to_double(abs_sum[i]));
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
        const std::uint64_t u = gradcheck::ulp_distance(a, expected_t[i]);
        const double ur = *r.max_ulps > 0 ? double(u) / double(*r.max_ulps) : (u ? inf : 0);
        ratio = std::max(use_tol ? ratio : 0.0, ur);
        if (u > *r.max_ulps) bad = true;
      }
    } else {
      bad = true;  // the exact value is always finite here
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
  return fail;
}

template <class T>
OracleReport make_report(const char* op, const Conv2dGeom& g, const char* output, char kind,
                         const Conv2dProblem& prob, bool is_gradient, const OracleOptions& opt) {
  OracleReport r;
  r.op = op;
  r.problem = g.str();
  r.output = output;
  r.letters = letters_of(kind, prob.layout);
  r.dtype = dtype_of<T>();
  r.layout = prob.layout;
  r.grad_mode = opt.grad_mode;
  r.engine = opt.engine;
  r.is_gradient = is_gradient;
  r.seed = opt.seed;
  return r;
}

// Runs `call(out)` on guarded output buffers and judges the result into r. exact and abs_sum
// are the exact output (gradient, without any prefill) and S, both in the user's layout; k the
// reduction length.
template <class T, class Call>
void run_and_judge(OracleReport& r, const Tensor<f50>& exact, const Tensor<f50>& abs_sum,
                   index_t k, Call&& call, const OracleOptions& opt) {
  const Shape shape = exact.shape();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const double gam = gradcheck::gamma<T>(static_cast<double>(k));
  const double gam1 = gradcheck::gamma<T>(static_cast<double>(k + 1));
  auto near = [](T a, const f50& e, double allowed) {
    return std::isfinite(a) && static_cast<double>(abs(f50(a) - e)) <= allowed;
  };
  auto allowed_at = [](double gamma_k, const f50& s) { return allowed_of(gamma_k, up_to_double(s)); };

  if (!r.is_gradient) {
    Tensor<T> out(shape, nan);
    call(out.data());
    const auto fail = judge<T>(r, out, exact, abs_sum, k, opt);
    for (index_t i = 0; i < out.numel(); ++i)
      if (fail[static_cast<std::size_t>(i)] && std::isnan(out[i])) r.unwritten.push_back(i);
    return;
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
    const auto fail = judge<T>(r, out_nan, exact, abs_sum, k, opt);
    for (index_t i = 0; i < shape.numel(); ++i) {
      if (!fail[static_cast<std::size_t>(i)] || !std::isnan(out_nan[i])) continue;
      if (exact[i] != 0 && near(out_p[i], with_p[i], allowed_at(gam1, s_with_p[i])))
        r.accumulated.push_back(i);
      else if (same_bits(out_p[i], prefill[i]))
        r.unwritten.push_back(i);
    }
  } else {
    Tensor<T> out = prefill;
    call(out.data());
    const auto fail = judge<T>(r, out, with_p, s_with_p, k + 1, opt);
    for (index_t i = 0; i < shape.numel(); ++i) {
      if (!fail[static_cast<std::size_t>(i)]) continue;
      if (exact[i] != 0 && near(out[i], exact[i], allowed_at(gam, abs_sum[i])))
        r.overwritten.push_back(i);
      else if (same_bits(out[i], prefill[i]))
        r.unwritten.push_back(i);
    }
  }
}

Conv2dGeom geom_of(const Conv2dProblem& prob, const char* op) {
  const Shape b{prob.w.rank() >= 1 ? prob.w[0] : 0};
  return make_conv2d_geom(prob.x, prob.w, prob.bias ? &b : nullptr, prob.params, op);
}

}  // namespace raw_detail

using namespace raw_detail;

template <class T>
std::vector<T> oracle_values(index_t count, std::uint64_t seed, std::uint64_t stream) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  check_non_negative("oracle_values", "count", count);
  SplitMix64 rng{seed * 0xD1B54A32D192ED03ull + stream * 0x9E3779B97F4A7C15ull + stream};
  constexpr int bits = std::numeric_limits<T>::digits;  // 24 or 53: every value exact in T
  const T scale = std::ldexp(T(1), -bits);
  std::vector<T> v(static_cast<std::size_t>(count));
  for (auto& e : v) {
    const T u = static_cast<T>(rng.next() >> (64 - bits)) * scale;  // [0, 1), exact
    e = stream == 4 ? T(1) + u : T(2) * u - T(1);                   // [1, 2) or [-1, 1)
  }
  return v;
}

template <class T>
OracleReport check_conv2d_forward(const Conv2dProblem& prob,
                                  const std::type_identity_t<Conv2dForwardFn<T>>& f,
                                  const OracleOptions& opt) {
  const Conv2dGeom g = geom_of(prob, "check_conv2d_forward");
  const Tensor<T> x = random_tensor<T>(g.x_shape(), opt.seed, 0);
  const Tensor<T> w = random_tensor<T>(g.w_shape(), opt.seed, 1);
  const Tensor<T> b = random_tensor<T>(g.b_shape(), opt.seed, 2);
  const Exact ex = exact_of<T>(
      opt.engine, {&x, &w, &b},
      [&](const auto& v) {
        return ref::conv2d_forward(g, v[0], v[1], g.has_bias ? &v[2] : nullptr);
      },
      [&](const auto& d) {
        return exact::conv2d_forward<exact::Precise>(g, d[0], d[1], g.has_bias ? &d[2] : nullptr);
      },
      [&](const auto& d) {
        return exact::conv2d_forward<exact::AbsSumUp>(g, d[0], d[1], g.has_bias ? &d[2] : nullptr);
      });
  const Tensor<f50>&y = ex.value, &s = ex.abs_sum;
  std::vector<InputBuffer<T>> ins;
  ins.emplace_back("x", to_layout(x, prob.layout));
  ins.emplace_back("w", to_layout(w, prob.layout));
  if (g.has_bias) ins.emplace_back("b", b);
  OracleReport r = make_report<T>("conv2d_forward", g, "y", 'a', prob, false, opt);
  auto call = [&](T* out) {
    f(ins[0].ptr(), ins[1].ptr(), g.has_bias ? ins[2].ptr() : nullptr, out);
    audit_inputs(ins, r);
  };
  const index_t k = g.c_per_group() * g.r * g.s + (g.has_bias ? 1 : 0);
  run_and_judge<T>(r, to_layout(y, prob.layout), to_layout(s, prob.layout), k, call, opt);
  return r;
}

template <class T>
OracleReport check_conv2d_backward_data(const Conv2dProblem& prob,
                                        const std::type_identity_t<Conv2dBackwardDataFn<T>>& f,
                                        const OracleOptions& opt) {
  const Conv2dGeom g = geom_of(prob, "check_conv2d_backward_data");
  const Tensor<T> dy = random_tensor<T>(g.y_shape(), opt.seed, 3);
  const Tensor<T> w = random_tensor<T>(g.w_shape(), opt.seed, 1);
  const Exact ex = exact_of<T>(
      opt.engine, {&dy, &w},
      [&](const auto& v) { return ref::conv2d_backward_data(g, v[0], v[1]); },
      [&](const auto& d) {
        return exact::conv2d_backward_data<exact::Precise>(g, d[0], d[1]);
      },
      [&](const auto& d) {
        return exact::conv2d_backward_data<exact::AbsSumUp>(g, d[0], d[1]);
      });
  const Tensor<f50>&dx = ex.value, &s = ex.abs_sum;
  std::vector<InputBuffer<T>> ins;
  ins.emplace_back("dy", to_layout(dy, prob.layout));
  ins.emplace_back("w", to_layout(w, prob.layout));
  OracleReport r = make_report<T>("conv2d_backward_data", g, "dx", 'a', prob, true, opt);
  auto call = [&](T* out) {
    f(ins[0].ptr(), ins[1].ptr(), out);
    audit_inputs(ins, r);
  };
  const index_t k = g.k_per_group() * g.r * g.s;
  run_and_judge<T>(r, to_layout(dx, prob.layout), to_layout(s, prob.layout), k, call, opt);
  return r;
}

template <class T>
OracleReport check_conv2d_backward_weights(
    const Conv2dProblem& prob, const std::type_identity_t<Conv2dBackwardWeightsFn<T>>& f,
    const OracleOptions& opt) {
  const Conv2dGeom g = geom_of(prob, "check_conv2d_backward_weights");
  const Tensor<T> x = random_tensor<T>(g.x_shape(), opt.seed, 0);
  const Tensor<T> dy = random_tensor<T>(g.y_shape(), opt.seed, 3);
  const Exact ex = exact_of<T>(
      opt.engine, {&x, &dy},
      [&](const auto& v) { return ref::conv2d_backward_weights(g, v[0], v[1]); },
      [&](const auto& d) {
        return exact::conv2d_backward_weights<exact::Precise>(g, d[0], d[1]);
      },
      [&](const auto& d) {
        return exact::conv2d_backward_weights<exact::AbsSumUp>(g, d[0], d[1]);
      });
  const Tensor<f50>&dw = ex.value, &s = ex.abs_sum;
  std::vector<InputBuffer<T>> ins;
  ins.emplace_back("x", to_layout(x, prob.layout));
  ins.emplace_back("dy", to_layout(dy, prob.layout));
  OracleReport r = make_report<T>("conv2d_backward_weights", g, "dw", 'w', prob, true, opt);
  auto call = [&](T* out) {
    f(ins[0].ptr(), ins[1].ptr(), out);
    audit_inputs(ins, r);
  };
  const index_t k = g.n * g.p * g.q;
  run_and_judge<T>(r, to_layout(dw, prob.layout), to_layout(s, prob.layout), k, call, opt);
  return r;
}

template <class T>
OracleReport check_conv2d_backward_bias(const Conv2dProblem& prob,
                                        const std::type_identity_t<Conv2dBackwardBiasFn<T>>& f,
                                        const OracleOptions& opt) {
  const Conv2dGeom g = geom_of(prob, "check_conv2d_backward_bias");
  const Tensor<T> dy = random_tensor<T>(g.y_shape(), opt.seed, 3);
  const Exact ex = exact_of<T>(
      opt.engine, {&dy}, [&](const auto& v) { return ref::conv2d_backward_bias(g, v[0]); },
      [&](const auto& d) { return exact::conv2d_backward_bias<exact::Precise>(g, d[0]); },
      [&](const auto& d) {
        return exact::conv2d_backward_bias<exact::AbsSumUp>(g, d[0]);
      });
  const Tensor<f50>&db = ex.value, &s = ex.abs_sum;
  std::vector<InputBuffer<T>> ins;
  ins.emplace_back("dy", to_layout(dy, prob.layout));
  OracleReport r = make_report<T>("conv2d_backward_bias", g, "db", 'b', prob, true, opt);
  auto call = [&](T* out) {
    f(ins[0].ptr(), out);
    audit_inputs(ins, r);
  };
  run_and_judge<T>(r, db, s, g.n * g.p * g.q, call, opt);
  return r;
}

std::string OracleReport::index_str(index_t flat) const {
  std::vector<index_t> idx(static_cast<std::size_t>(shape.rank()));
  for (index_t d = shape.rank() - 1; d >= 0; --d) {
    idx[static_cast<std::size_t>(d)] = flat % shape[d];
    flat /= shape[d];
  }
  std::string s = "[";
  for (std::size_t i = 0; i < idx.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(idx[i]);
  }
  return s + "]";
}

namespace {
std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
}  // namespace

void OracleReport::print(std::ostream& os) const {
  const bool f32 = precision == gradcheck::UlpPrecision::float32;
  const char* val = f32 ? "%.9g" : "%.17g";
  std::string lower = letters;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  os << "oracle: " << op << ", " << dtype << ", layout " << layout_name(layout);
  if (is_gradient) os << ", GradMode::" << grad_mode_name(grad_mode);
  os << ", seed " << seed << "\n";
  os << "  problem          " << problem << "\n";
  os << "  output           " << output << " " << letters << " " << shape.str() << "\n";
  os << "  tolerance        ";
  if (derived_tolerance) {
    os << "derived per element: |actual - exact| <= gamma(K) * S, K = " << reduction_length
       << ", u = 2^" << (f32 ? -24 : -53) << ", S = sum |terms| "
       << (engine == Engine::exact ? "(exact engine, rounded up)\n" : "(50 digits)\n");
  } else {
    if (rtol > 0 || atol > 0 || default_tolerance)
      os << "rtol=" << fmt("%.3g", rtol) << " atol=" << fmt("%.3g", atol) << " ";
    if (max_ulps) os << "max_ulps=" << *max_ulps;
    os << "(caller's)\n";
  }
  if (worst_ratio_index) {
    os << "  worst element    " << output << index_str(*worst_ratio_index) << " (" << lower
       << "): actual " << fmt(val, worst_ratio_actual) << ", expected "
       << fmt(val, worst_ratio_expected);
    if (std::isfinite(max_ratio))
      os << ", error " << fmt("%.2e", std::fabs(worst_ratio_actual - worst_ratio_expected))
         << " = " << fmt("%.3g", max_ratio) << " x allowed " << fmt("%.2e", worst_ratio_allowed);
    os << "\n";
  }
  os << "  max abs error    " << fmt("%.3e", max_abs_error) << "\n";
  os << "  max rel error    " << fmt("%.3e", max_rel_error) << "\n";
  os << "  max ULP error    " << max_ulp_error << " (vs the exact value rounded to " << dtype
     << ")\n";
  auto list = [&](const std::vector<index_t>& v, const char* what) {
    if (v.empty()) return;
    const std::size_t shown = std::min<std::size_t>(v.size(), 5);
    for (std::size_t i = 0; i < shown; ++i)
      os << "  element " << output << index_str(v[i]) << " " << what << "\n";
    if (v.size() > shown) os << "  ... and " << v.size() - shown << " more " << what << "\n";
  };
  list(unwritten, "was never written");
  list(accumulated,
       "was accumulated into (came out as prefill + gradient); GradMode::overwrite was declared");
  list(overwritten,
       "was overwritten (came out as the bare gradient); GradMode::accumulate was declared");
  for (const auto& name : modified_inputs)
    os << "  input " << name << " was modified by the kernel\n";
  os << "  ULP histogram (non-empty buckets)\n";
  for (std::size_t b = 0; b < histogram.size(); ++b) {
    if (!histogram[b]) continue;
    std::string label = bucket_label(b);
    label.resize(std::max<std::size_t>(label.size(), 16), ' ');
    os << "    " << label << " " << histogram[b] << "\n";
  }
  os << "    NaN/Inf          " << nonfinite_mismatches << "\n";
  os << "  failing          " << failing << " of " << numel << "\n";
  os << (passed() ? "PASS" : "FAIL") << "\n";
}

#define TAPEGRAD_INSTANTIATE(T)                                                                \
  template std::vector<T> oracle_values<T>(index_t, std::uint64_t, std::uint64_t);             \
  template OracleReport check_conv2d_forward<T>(                                               \
      const Conv2dProblem&, const std::type_identity_t<Conv2dForwardFn<T>>&,                   \
      const OracleOptions&);                                                                   \
  template OracleReport check_conv2d_backward_data<T>(                                         \
      const Conv2dProblem&, const std::type_identity_t<Conv2dBackwardDataFn<T>>&,              \
      const OracleOptions&);                                                                   \
  template OracleReport check_conv2d_backward_weights<T>(                                      \
      const Conv2dProblem&, const std::type_identity_t<Conv2dBackwardWeightsFn<T>>&,           \
      const OracleOptions&);                                                                   \
  template OracleReport check_conv2d_backward_bias<T>(                                         \
      const Conv2dProblem&, const std::type_identity_t<Conv2dBackwardBiasFn<T>>&,              \
      const OracleOptions&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad::oracle
