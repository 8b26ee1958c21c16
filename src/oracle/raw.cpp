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
#include <array>
#include <set>

#include "driver.hpp"
#include "tapegrad/random.hpp"

namespace tapegrad::oracle {

const char* layout_name(Layout l) { return l == Layout::nchw ? "NCHW" : "NHWC"; }
const char* grad_mode_name(GradMode m) {
  return m == GradMode::overwrite ? "overwrite" : "accumulate";
}
const char* engine_name(Engine e) { return e == Engine::exact ? "exact" : "f50"; }
const char* tier_name(Tier t) { return t == Tier::sound ? "sound" : "probabilistic"; }

double OracleReport::tensor_false_fail_probability() const {
  return std::min(1.0, double(probabilistic_elements) * false_fail_probability);
}

namespace driver {

Conv2dGeom geom_of(const Conv2dProblem& prob, const char* op) {
  const Shape b{prob.w.rank() >= 1 ? prob.w[0] : 0};
  return make_conv2d_geom(prob.x, prob.w, prob.bias ? &b : nullptr, prob.params, op);
}

Labels conv_labels(const char* op, const Conv2dGeom& g, const char* output, char kind,
                   const Conv2dProblem& prob, bool is_gradient) {
  return {op, g.str(), output, letters_of(kind, prob.layout), prob.layout, is_gradient};
}

// The windows of a conv2d along height and width.
std::array<WindowAxis, 2> windows_of(const Conv2dGeom& g) {
  return {WindowAxis{g.h, g.p, g.r, g.prm.stride[0], g.prm.pad[0], g.prm.dilation[0]},
          WindowAxis{g.w, g.q, g.s, g.prm.stride[1], g.prm.pad[1], g.prm.dilation[1]}};
}

// Pattern specs in the logical order (pattern.hpp): channel groups and where the padding is.
PatternSpec conv_output_pattern(const Conv2dGeom& g) {  // y (N,K,P,Q)
  const auto win = windows_of(g);
  return {{{"n"}, {"c", g.k_per_group()}, {"h"}, {"w"}},
          {window_output_feature(g.n * g.k, win[0], win[1])}};
}
PatternSpec conv_input_pattern(const Conv2dGeom& g) {  // dx (N,C,H,W)
  const auto win = windows_of(g);
  return {{{"n"}, {"c", g.c_per_group()}, {"h"}, {"w"}},
          window_input_features(g.n * g.c, win[0], win[1])};
}
PatternSpec conv_weight_pattern(const Conv2dGeom& g) {  // dw (K,C/groups,R,S)
  const auto win = windows_of(g);
  return {{{"k", g.k_per_group()}, {"c"}, {"r"}, {"s"}},
          {window_tap_feature(g.k * g.c_per_group(), win[0], win[1])}};
}

}  // namespace driver

using namespace driver;

template <class T>
std::vector<T> oracle_values(index_t count, std::uint64_t seed, std::uint64_t stream) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  check_non_negative("oracle_values", "count", count);
  Rng rng(Rng::derive(seed, stream));  // the one generator (random.hpp): portable bits
  constexpr int bits = std::numeric_limits<T>::digits;  // 24 or 53: every value exact in T
  const T scale = std::ldexp(T(1), -bits);
  std::vector<T> v(static_cast<std::size_t>(count));
  for (auto& e : v) {
    const T u = static_cast<T>(rng.next() >> (64 - bits)) * scale;  // [0, 1), exact
    e = stream == 4 ? T(1) + u : T(2) * u - T(1);                   // [1, 2) or [-1, 1)
  }
  return v;
}

const char* values_name(Values v) {
  switch (v) {
    case Values::uniform: return "uniform";
    case Values::ties: return "ties";
    case Values::wide: return "wide";
  }
  return "?";
}

template <class T>
std::vector<T> oracle_values(index_t count, std::uint64_t seed, std::uint64_t stream,
                             Values values) {
  if (values == Values::uniform || stream == 4) return oracle_values<T>(count, seed, stream);
  check_non_negative("oracle_values", "count", count);
  Rng rng(Rng::derive(seed, stream + (values == Values::ties ? 200 : 300)));
  std::vector<T> v(static_cast<std::size_t>(count));
  if (values == Values::ties) {
    for (auto& e : v) e = static_cast<T>(static_cast<double>(rng.below(9)) * 0.5 - 2.0);
    return v;
  }
  // wide: a uniform [-1, 1) value with 20 significant bits (exact in float), times 2^e.
  for (auto& e : v) {
    const double u = static_cast<double>(rng.next() >> 44) * std::ldexp(1.0, -20);
    const int ex = static_cast<int>(rng.below(18)) - 12;
    e = static_cast<T>(std::ldexp(2.0 * u - 1.0, ex));
  }
  return v;
}

template <class T>
std::vector<T> exact_input_values(index_t count, std::uint64_t seed, std::uint64_t stream,
                                  int bits) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  check_non_negative("exact_input_values", "count", count);
  Rng rng(Rng::derive(seed, stream + 100));
  const std::uint64_t half = std::uint64_t(1) << bits;
  std::vector<T> v(static_cast<std::size_t>(count));
  for (auto& e : v) e = static_cast<T>(static_cast<double>(rng.below(2 * half + 1)) - double(half));
  return v;
}

template <class T>
int exact_input_bits(index_t k) {
  int lg = 0;
  while ((index_t(1) << lg) < std::max<index_t>(k, 1)) ++lg;
  const int p = std::numeric_limits<T>::digits;
  if (p - lg < 0)
    throw std::invalid_argument(std::string("exact_inputs: the reduction length ") + std::to_string(k) +
                                " is too long for exact sums in this precision");
  return (p - lg) / 2;
}


template <class T>
OracleReport check_conv2d_forward(const Conv2dProblem& prob,
                                  const std::type_identity_t<Conv2dForwardFn<T>>& f,
                                  const OracleOptions& opt) {
  const Conv2dGeom g = geom_of(prob, "check_conv2d_forward");
  const index_t k = g.c_per_group() * g.r * g.s + (g.has_bias ? 1 : 0);
  const Tensor<T> x = input_tensor<T>(g.x_shape(), opt, 0, k);
  const Tensor<T> w = input_tensor<T>(g.w_shape(), opt, 1, k);
  const Tensor<T> b = input_tensor<T>(g.b_shape(), opt, 2, k);
  const Tensor<double> bd = b.template cast<double>();
  Case<T> c = case_of<T>(
      conv2d_forward_bound(g, x.template cast<double>(), w.template cast<double>(),
                           g.has_bias ? &bd : nullptr, opt.engine),
      conv_labels("conv2d_forward", g, "y", 'a', prob, false), opt.engine);
  exact_mode(c, opt, k);
  set_pattern(c, conv_output_pattern(g), g.y_shape(), prob.layout);
  c.inputs.emplace_back("x", to_layout(x, prob.layout));
  c.inputs.emplace_back("w", to_layout(w, prob.layout));
  if (g.has_bias) c.inputs.emplace_back("b", b);
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), in[1].as<T>(), g.has_bias ? in[2].as<T>() : nullptr, out);
  }, opt);
}

template <class T>
OracleReport check_conv2d_backward_data(const Conv2dProblem& prob,
                                        const std::type_identity_t<Conv2dBackwardDataFn<T>>& f,
                                        const OracleOptions& opt) {
  const Conv2dGeom g = geom_of(prob, "check_conv2d_backward_data");
  const index_t k = g.k_per_group() * g.r * g.s;
  const Tensor<T> dy = input_tensor<T>(g.y_shape(), opt, 3, k);
  const Tensor<T> w = input_tensor<T>(g.w_shape(), opt, 1, k);
  Case<T> c = case_of<T>(
      conv2d_backward_data_bound(g, dy.template cast<double>(), w.template cast<double>(),
                                 opt.engine),
      conv_labels("conv2d_backward_data", g, "dx", 'a', prob, true), opt.engine);
  exact_mode(c, opt, k);
  set_pattern(c, conv_input_pattern(g), g.x_shape(), prob.layout);
  c.inputs.emplace_back("dy", to_layout(dy, prob.layout));
  c.inputs.emplace_back("w", to_layout(w, prob.layout));
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), in[1].as<T>(), out);
  }, opt);
}

template <class T>
OracleReport check_conv2d_backward_weights(
    const Conv2dProblem& prob, const std::type_identity_t<Conv2dBackwardWeightsFn<T>>& f,
    const OracleOptions& opt) {
  const Conv2dGeom g = geom_of(prob, "check_conv2d_backward_weights");
  const index_t k = g.n * g.p * g.q;
  const Tensor<T> x = input_tensor<T>(g.x_shape(), opt, 0, k);
  const Tensor<T> dy = input_tensor<T>(g.y_shape(), opt, 3, k);
  Case<T> c = case_of<T>(
      conv2d_backward_weights_bound(g, x.template cast<double>(), dy.template cast<double>(),
                                    opt.engine),
      conv_labels("conv2d_backward_weights", g, "dw", 'w', prob, true), opt.engine);
  exact_mode(c, opt, k);
  set_pattern(c, conv_weight_pattern(g), g.w_shape(), prob.layout);
  c.inputs.emplace_back("x", to_layout(x, prob.layout));
  c.inputs.emplace_back("dy", to_layout(dy, prob.layout));
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), in[1].as<T>(), out);
  }, opt);
}

template <class T>
OracleReport check_conv2d_backward_bias(const Conv2dProblem& prob,
                                        const std::type_identity_t<Conv2dBackwardBiasFn<T>>& f,
                                        const OracleOptions& opt) {
  const Conv2dGeom g = geom_of(prob, "check_conv2d_backward_bias");
  const index_t k = g.n * g.p * g.q;
  const Tensor<T> dy = input_tensor<T>(g.y_shape(), opt, 3, k);
  Case<T> c = case_of<T>(conv2d_backward_bias_bound(g, dy.template cast<double>(), opt.engine),
                         conv_labels("conv2d_backward_bias", g, "db", 'b', prob, true),
                         opt.engine);
  exact_mode(c, opt, k);
  c.pattern.axes = {{"k", g.k_per_group()}};
  c.inputs.emplace_back("dy", to_layout(dy, prob.layout));
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), out);
  }, opt);
}

std::string OracleReport::index_str(index_t flat) const {
  return tapegrad::index_str(shape, flat);
}

namespace {
std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
}  // namespace

void OracleReport::print(std::ostream& os) const {
  const char* val = gradcheck::precision_format(precision);
  std::string lower = letters;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (generated) {
    os << "oracle: " << op << ", " << dtype << ", layout " << layout_name(layout);
    if (is_gradient) os << ", GradMode::" << grad_mode_name(grad_mode);
    os << ", seed " << seed << "\n";
  } else {
    os << "verify: " << op << ", " << dtype << "\n";
  }
  os << "  problem          " << problem << "\n";
  os << "  output           " << output << " ";
  if (!letters.empty()) os << letters << " ";
  os << shape.str() << "\n";
  os << "  tolerance        ";
  if (derived_tolerance) {
    os << "derived per element, K = ";
    if (reduction_length_min != reduction_length)
      os << reduction_length_min << ".." << reduction_length << " (per element)";
    else
      os << reduction_length;
    os << ", u = 2^" << std::ilogb(gradcheck::precision_unit_roundoff(accumulate));
    if (accumulate != precision)
      os << " (" << gradcheck::precision_name(accumulate) << " accumulation, then one rounding to "
         << gradcheck::precision_name(precision) << ", u = 2^"
         << std::ilogb(gradcheck::precision_unit_roundoff(precision)) << ")";
    os << ", ";
    if (model.empty())
      os << "S = sum |terms| ";
    else
      os << model << " ";
    os << (engine == Engine::exact ? "(exact engine, rounded up)\n" : "(50 digits)\n");
    auto verdict = [](index_t n) {
      return n == 0 ? std::string("PASS") : "FAIL (" + std::to_string(n) + " failing)";
    };
    // with a separate storage rounding (verify --accumulate): one more u_s |exact|
    const bool store = accumulate != precision;
    const char* tail = store ? " + u_s |exact|" : "";
    const char* lead = store ? "(1 + u_s) " : "";
    os << "  sound            |actual - exact| <= " << lead << "gamma(K) * S" << tail
       << ", gamma(K) = K u / (1 - K u) (a proof, any order): " << verdict(sound_failing) << "\n";
    os << "  probabilistic    ";
    if (!probabilistic_model) {
      os << "the sound bound (this op's K is not a count of independent roundings; "
            "see src/oracle/bounds.cpp): "
         << verdict(probabilistic_failing) << "\n";
    } else if (probabilistic_elements == 0) {
      os << "the sound bound (K too small: gamma~(K, lambda) >= gamma(K) at every element): "
         << verdict(probabilistic_failing) << "\n";
    } else {
      os << "|actual - exact| <= " << lead << "gamma~(K, lambda) * S" << tail
         << ", gamma~ = exp(lambda sqrt(K) u + K u^2 / (1 - u)) - 1 (Higham & Mary 2019), "
            "lambda = "
         << fmt("%.3g", lambda_min);
      if (fmt("%.3g", lambda_min) != fmt("%.3g", lambda_max)) os << ".." << fmt("%.3g", lambda_max);
      os << ": " << verdict(probabilistic_failing) << "\n";
    }
    os << "  tiers            probabilistic";
    if (probabilistic_model && probabilistic_elements > 0) {
      os << " (lambda = " << fmt("%.3g", lambda_min);
      if (fmt("%.3g", lambda_min) != fmt("%.3g", lambda_max)) os << ".." << fmt("%.3g", lambda_max);
      os << ", P(false fail) < " << fmt("%.3g", false_fail_probability) << " per element, < "
         << fmt("%.3g", tensor_false_fail_probability()) << " for the " << probabilistic_elements
         << " element" << (probabilistic_elements == 1 ? "" : "s") << ")";
    } else {
      os << " (= sound here)";
    }
    os << ": " << (probabilistic_failing == 0 ? "PASS" : "FAIL")
       << "; sound: " << (sound_failing == 0 ? "PASS" : "FAIL") << "; verdict by "
       << tier_name(tier) << "\n";
  } else {
    if (rtol > 0 || atol > 0 || default_tolerance)
      os << "rtol=" << fmt("%.3g", rtol) << " atol=" << fmt("%.3g", atol) << " ";
    if (max_ulps) os << "max_ulps=" << *max_ulps;
    os << "(caller's)\n";
  }
  if (worst_ratio_index) {
    os << "  worst element    " << output << index_str(*worst_ratio_index);
    if (!lower.empty()) os << " (" << lower << ")";
    os << ": actual " << fmt(val, worst_ratio_actual) << ", expected "
       << fmt(val, worst_ratio_expected);
    if (std::isfinite(max_ratio))
      os << ", error " << fmt("%.2e", std::fabs(worst_ratio_actual - worst_ratio_expected))
         << " = " << fmt("%.3g", max_ratio) << " x allowed " << fmt("%.2e", worst_ratio_allowed);
    os << "\n";
  }
  // ---- pattern block (issue 12): where the failing elements are (src/oracle/pattern.hpp) ----
  print_pattern(os, pattern);
  // ---- end of the pattern block ----
  // The error statistics are over the elements with a finite value; say so when some are not
  // (else a report could read "actual nan" above and "max abs error 0" here).
  const index_t finite = numel - nonfinite_mismatches - nan_pairs - infinity_pairs;
  if (finite == 0 && numel > 0) {
    os << "  max abs error    none: no element is finite (" << numel << " NaN/Inf)\n";
  } else {
    os << "  max abs error    " << fmt("%.3e", max_abs_error) << "\n";
    os << "  max rel error    " << fmt("%.3e", max_rel_error) << "\n";
    os << "  max ULP error    " << max_ulp_error << " (vs the exact value rounded to " << dtype
       << ")\n";
    if (finite < numel)
      os << "                   (the max errors are over the " << finite
         << " finite elements; " << numel - finite << " are NaN/Inf)\n";
  }
  auto list = [&](const std::vector<index_t>& v, const char* what) {
    if (v.empty()) return;
    const std::size_t shown = std::min<std::size_t>(v.size(), 5);
    for (std::size_t i = 0; i < shown; ++i)
      os << "  element " << output << index_str(v[i]) << " " << what << "\n";
    if (v.size() > shown) os << "  ... and " << v.size() - shown << " more " << what << "\n";
  };
  list(unwritten, generated ? "was never written" : "is NaN");
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
  template std::vector<T> oracle_values<T>(index_t, std::uint64_t, std::uint64_t, Values);     \
  template std::vector<T> exact_input_values<T>(index_t, std::uint64_t, std::uint64_t, int);   \
  template int exact_input_bits<T>(index_t);             \
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
