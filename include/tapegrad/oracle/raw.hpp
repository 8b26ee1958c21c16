// The raw-buffer oracle: check a kernel that was not written against tapegrad's types.
//
// You hand over a callback that fills an output buffer from input buffers (plain pointers);
// the oracle generates the inputs (seeded), runs the callback, computes the exact result (the
// exact engine by default, or the 50-digit reference kernels: OracleOptions::engine), and
// judges every element:
//
//   using namespace tapegrad;
//   oracle::Conv2dProblem prob{.x = {2, 3, 9, 9}, .w = {4, 3, 3, 3},
//                              .params = {.pad = {2, 2}, .dilation = {2, 2}}};
//   oracle::OracleReport r = oracle::check_conv2d_backward_data(
//       prob, [](const float* dy, const float* w, float* dx) { my_conv_bwd_data(dy, w, dx); });
//   r.print(std::cout);            // ends in PASS or FAIL
//   if (!r.passed()) return 1;
//
// Shapes are always the logical PyTorch ones -- x (N,C,H,W), w (K,C/groups,R,S), b (K),
// y (N,K,P,Q) -- whatever the layout; Layout only says how the buffers are laid out in memory:
//   Layout::nchw   x, y, dx, dy as (N,C,H,W);  w, dw as (K,C/groups,R,S)   (PyTorch default)
//   Layout::nhwc   x, y, dx, dy as (N,H,W,C);  w, dw as (K,R,S,C/groups)   (PyTorch
//                  channels_last, cuDNN / oneDNN NHWC)
// Every buffer is dense and row-major in its layout. The reference runs in NCHW; NHWC inputs
// are transposed in and the expected output transposed out, so the report's indices are in
// YOUR layout (the report names the letters: "dx NHWC [n,h,w,c]").
//
// Guards (why a buggy kernel cannot slip through):
//  - Forward outputs are pre-filled with NaN: an element the callback never writes stays NaN
//    and is reported as "element [..] was never written".
//  - Gradient outputs are checked as the caller declares them (OracleOptions::grad_mode):
//      GradMode::overwrite   dx = gradient. Run twice: once on a NaN-filled buffer (unwritten
//                            elements stay NaN: judged and reported), once on a buffer
//                            pre-filled with a known seeded value P in [1,2) to tell an
//                            unwritten element (still P) from one the kernel accumulated into
//                            (P + gradient).
//      GradMode::accumulate  dx = P + gradient, P the known prefill; an element still equal to
//                            P is "never written", one equal to the bare gradient "overwrote".
//  - Inputs must not be modified: each input buffer is compared bitwise after every call.
//
// Tolerance (default, derived -- DESIGN.md / gradcheck/tolerance.hpp): every output element is
// a sum of K products (forward: K = C/groups*R*S, +1 with a bias; backward-data: K = K/groups*
// R*S; backward-weights: K = N*P*Q; backward-bias: K = N*P*Q; +1 more in accumulate mode for
// the final "+= "), so in precision T, in ANY summation order, with or without FMA:
//     |actual - exact| <= gamma_T(K) * S,   gamma_T(K) = K u / (1 - K u),
//     S = sum |terms| (+ |P| in accumulate mode), per element
// (Higham eq. 3.5). The error is measured against the exact value, not a rounded one, so
// nothing is added for rounding the reference. A kernel that computes in higher precision than
// T stays inside the bound. Pass OracleOptions::tolerance to judge with compare()'s
// rtol/atol/max_ulps instead. Every rounding on the way to the allowed error is upward: S (a
// bound from the exact engine, or the 50-digit sum converted up), gamma_T(K) and their product.
//
// Tiers (OracleOptions::tier; the report prints both verdicts, the check's passed() is the
// chosen tier's):
//   Tier::probabilistic (default) |actual - exact| <= min(gamma_T(K), gamma~_T(K, lambda)) * S,
//                  gamma~(K, lambda) = exp(lambda sqrt(K) u + K u^2 / (1 - u)) - 1 ~ lambda
//                  sqrt(K) u (Higham and Mary 2019, gradcheck/tolerance.hpp): rounding errors
//                  modelled as independent and of mean zero, a sum of K terms is within it with
//                  probability >= 1 - 2 K exp(-lambda^2 (1 - u)^2 / 2). lambda is chosen per
//                  element so that this failure probability is OracleOptions::
//                  false_fail_probability (1e-9): lambda = sqrt(2 ln(2 K / p)) / (1 - u), 6.55
//                  at K = 1, 7.7 at K = 1000, 8.32 at K = 524288. The report also gives the
//                  whole tensor's chance of a false failure, at most (elements judged) x p (a
//                  union bound). A kernel whose errors grow like K u instead of sqrt(K) u -- an
//                  accumulator in a lower precision (bfloat16 rounding every partial sum), or a
//                  systematic bias -- fails it long before the sound tier notices.
//   Tier::sound    |actual - exact| <= gamma_T(K) * S: a proof, for every input and order.
// Where the model does not hold, the probabilistic tier IS the sound one (the report says so):
// exact-input mode (K = 0: equality in both), and the ops whose bound is not a sum of
// distinct roundings -- a libm call (its error is a fixed function of its argument, up to 2
// ulp, not a mean-zero rounding), softmax's exp amplification of one rounded difference (R
// roundings, perfectly correlated), mse_loss's square of a rounded difference (the same
// rounding twice); src/oracle/bounds.cpp decides per op. The model can also fail for a correct
// kernel on structured data (many equal terms added one by one round the same way every time);
// on the checks' generated inputs (uniform in [-1, 1)) it does not, and the property suite
// checks that (property_tests/tiers_props.cpp).
//
// Engines (OracleOptions::engine; kernels/exact.hpp has the proof):
//   Engine::exact  (default) the exact engine: the exact value within beta ~ n^2 2^-106 S (at
//                  most n 2^-53 of the tolerance gamma_T(K) S, n the number of terms), S
//                  rounded up to double; about 100x sooner than f50.
//   Engine::f50    the reference kernels in 50 digits: the value within ~K 2^-167 S, S in 50
//                  digits.
// Both judge the same errors against the same tolerance; only digits far below it differ.
//
// Inputs: uniform in [-1, 1), rounded to T (so exact in 50 digits), from the project's one
// portable generator (random.hpp's Rng), identical for a given seed on every platform and
// standard library.
//
// The other ops (linear, pools, activations, softmax, losses) have checks of the same shape and
// the same guards in oracle/linear.hpp, oracle/pool.hpp, oracle/activation.hpp and
// oracle/loss.hpp; all of them run through one driver (src/oracle/driver.hpp), and their
// bounds keep the form gamma_T(K) * S per element, with K and S derived per op there.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "tapegrad/gradcheck/compare.hpp"
#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/shape.hpp"

namespace tapegrad::oracle {

enum class Layout { nchw, nhwc };
enum class GradMode { overwrite, accumulate };
enum class Engine { exact, f50 };
enum class Tier { probabilistic, sound };

const char* layout_name(Layout l);   // "NCHW" / "NHWC"
const char* grad_mode_name(GradMode m);  // "overwrite" / "accumulate"
const char* engine_name(Engine e);       // "exact" / "f50"
const char* tier_name(Tier t);           // "probabilistic" / "sound"

struct Conv2dProblem {
  Shape x;                    // logical (N,C,H,W)
  Shape w;                    // logical (K,C/groups,R,S)
  Conv2dParams params;        // stride, pad, dilation, groups
  Layout layout = Layout::nchw;
  bool bias = false;          // forward only: pass a bias buffer (nullptr otherwise)
};

// The values the generated inputs take (OracleOptions::values; the search mixes them):
//   uniform  uniform in [-1, 1), rounded to T (the default)
//   ties     the multiples of 1/2 in [-2, 2]: nine values, so a max-pool window has ties, a
//            softmax row equal entries, relu sees exact zeros (the documented conventions:
//            relu'(0) = 0, the first maximum in row-major window order wins)
//   wide     uniform in [-1, 1) times 2^e, e a uniform integer in [-12, 5] per element:
//            magnitudes from 2^-13 to 32 side by side (|x| <= 32 keeps every exp() of the
//            activations and losses far from underflow, so their relative bounds hold)
// Every value is exact in float and double. Exact-input mode (exact_inputs) takes precedence
// in the checks that support it.
enum class Values { uniform, ties, wide };
const char* values_name(Values v);  // "uniform" / "ties" / "wide"

struct OracleOptions {
  std::uint64_t seed = 1;
  GradMode grad_mode = GradMode::overwrite;  // backward checks only
  // Judge with compare()'s criteria instead of the derived per-element bound.
  std::optional<gradcheck::CompareOptions> tolerance;
  // How the exact results and the sums S are computed (see above).
  Engine engine = Engine::exact;
  // Exact-input mode (the sums: conv2d and linear, every direction). Inputs are integers in
  // [-2^b, 2^b], b = floor((p - ceil(log2 K)) / 2), p = 24 (float) or 53 (double), K the
  // check's reduction length: every product is at most 2^(2b) and every partial sum of K of
  // them at most 2^p, so every product and partial sum is an integer exactly representable in
  // T. Then every correct kernel, in any summation order, with or without FMA, gives the exact
  // result, and the check is EQUALITY (K = 0): an indexing bug of any size is caught, however
  // small its effect. In accumulate mode the final "+=" onto the (non-integer) prefill is one
  // rounding (K = 1). Examples: float, K = 27 (3x3x3): b = 9, values in [-512, 512]; double,
  // K = 576 (3x3x64): b = 21. A K with p - ceil(log2 K) < 0 is std::invalid_argument.
  bool exact_inputs = false;
  // The values of the generated inputs (see Values above); the gradient prefill P stays in
  // [1, 2).
  Values values = Values::uniform;
  // The tier of the verdict (see "Tiers" above), and the probabilistic tier's chance per
  // element that a correct kernel fails it (lambda follows from it and K).
  Tier tier = Tier::probabilistic;
  double false_fail_probability = 1e-9;
};

// The judgment of one output tensor. It IS a CompareReport (ULP histogram, max abs / rel / ULP
// errors, `failing`, computed by gradcheck::compare against the reference rounded once to the
// kernel's precision), with the oracle's additions. With the derived tolerance, `failing`
// counts the elements outside gamma_T(K) * S (rtol/atol read 0); with a caller tolerance it is
// compare()'s count. passed() also requires the inputs to be left unmodified.
struct OracleReport : gradcheck::CompareReport {
  std::string op;            // "conv2d_backward_data"
  std::string problem;       // the geometry string
  std::string output;        // "dx"
  std::string letters;       // the output's layout letters, e.g. "NCHW", "KRSC"
  std::string dtype;         // "float32" / "float64" (/ "float16" / "bfloat16": verify)
  // The precision of the arithmetic the bound assumes (u); `precision` (CompareReport's) is the
  // storage format whose ULPs are counted. They differ when verify is told --accumulate.
  gradcheck::UlpPrecision accumulate = gradcheck::UlpPrecision::float64;
  Layout layout = Layout::nchw;
  GradMode grad_mode = GradMode::overwrite;
  Engine engine = Engine::exact;
  bool is_gradient = false;  // grad_mode applies
  std::uint64_t seed = 0;
  bool generated = true;     // false: judged on the caller's data (tapegrad verify, judge_bound)

  bool derived_tolerance = true;
  index_t reduction_length = 0;  // K of gamma_T(K) (accumulate's extra term included); the
                                 // largest K when it differs between elements
  index_t reduction_length_min = 0;  // the smallest K (== reduction_length for sums)
  std::string model;  // what K and S are for this op ("" for a sum of products: S = sum |terms|)
  // The tiers (derived tolerance only). `failing`, max_ratio and the worst element are the
  // verdict tier's; each tier's failing count is kept.
  Tier tier = Tier::probabilistic;
  bool probabilistic_model = true;      // false: the op's bound is not a sum of distinct
                                        // roundings: the probabilistic tier is the sound one
  double false_fail_probability = 0;    // per element, of the probabilistic tier
  double lambda_min = 0, lambda_max = 0;  // over the elements where gamma~ < gamma
  index_t probabilistic_elements = 0;   // elements where gamma~ < gamma (the others: sound)
  index_t sound_failing = 0, probabilistic_failing = 0;
  // At most probabilistic_elements x false_fail_probability (a union bound), capped at 1.
  double tensor_false_fail_probability() const;
  // Per element, error / allowed (allowed = the verdict tier's bound, or atol + rtol |e| for a
  // caller tolerance); +inf for a non-finite error. The worst is the largest ratio, first in
  // row-major order among equals. Indices are flat, row-major in the user's layout.
  double max_ratio = 0;
  std::optional<index_t> worst_ratio_index;
  double worst_ratio_actual = 0, worst_ratio_expected = 0, worst_ratio_allowed = 0;

  std::vector<index_t> unwritten;        // never written (flat indices, all of them)
  std::vector<index_t> accumulated;      // overwrite declared: came out as prefill + gradient
  std::vector<index_t> overwritten;      // accumulate declared: came out as the bare gradient
  std::vector<std::string> modified_inputs;  // names of input buffers the callback changed
  // Where the failing elements are, one line per index pattern, each true of EVERY failing
  // element, with how many elements it covers: "every element", "only group 1 of 2 (k 3..5)",
  // "only the last q (q = 6)", "only n > 0", "only c mod 4 = 3", "only where the window
  // touches padding", "only where no window reads it". Empty when nothing fails.
  std::vector<std::string> pattern;

  bool passed() const { return failing == 0 && modified_inputs.empty(); }
  // Multi-index of a flat index in the output's layout, "[0,1,4,4]".
  std::string index_str(index_t flat) const;
  // The full report: problem, tolerance, worst element, the pattern of the failing elements,
  // guards' findings, ULP histogram, ending in "PASS" or "FAIL".
  void print(std::ostream& os) const;
};

template <class T>
using Conv2dForwardFn = std::function<void(const T* x, const T* w, const T* b, T* y)>;
template <class T>
using Conv2dBackwardDataFn = std::function<void(const T* dy, const T* w, T* dx)>;
template <class T>
using Conv2dBackwardWeightsFn = std::function<void(const T* x, const T* dy, T* dw)>;
template <class T>
using Conv2dBackwardBiasFn = std::function<void(const T* dy, T* db)>;

// T = float or double (explicitly instantiated in src/oracle/raw.cpp). Invalid problems throw
// std::invalid_argument from make_conv2d_geom ("check_conv2d_forward: w in-channels is ...").
// Write check_conv2d_forward<float>(prob, f), or let the overloads below pick T from f.
template <class T>
OracleReport check_conv2d_forward(const Conv2dProblem& prob,
                                  const std::type_identity_t<Conv2dForwardFn<T>>& f,
                                  const OracleOptions& opt = {});
template <class T>
OracleReport check_conv2d_backward_data(const Conv2dProblem& prob,
                                        const std::type_identity_t<Conv2dBackwardDataFn<T>>& f,
                                        const OracleOptions& opt = {});
template <class T>
OracleReport check_conv2d_backward_weights(
    const Conv2dProblem& prob, const std::type_identity_t<Conv2dBackwardWeightsFn<T>>& f,
    const OracleOptions& opt = {});
template <class T>
OracleReport check_conv2d_backward_bias(const Conv2dProblem& prob,
                                        const std::type_identity_t<Conv2dBackwardBiasFn<T>>& f,
                                        const OracleOptions& opt = {});

// Overloads choosing T from the callback's parameter types (a lambda taking const float*
// picks float). A generic lambda is ambiguous: name T explicitly then. (The macro is used by
// the other oracle headers too.)
#define TAPEGRAD_ORACLE_OVERLOADS(name, Problem, Fn)                                        \
  inline OracleReport name(const Problem& prob, const Fn<float>& f,                       \
                           const OracleOptions& opt = {}) {                               \
    return name<float>(prob, f, opt);                                                     \
  }                                                                                       \
  inline OracleReport name(const Problem& prob, const Fn<double>& f,                      \
                           const OracleOptions& opt = {}) {                               \
    return name<double>(prob, f, opt);                                                    \
  }
TAPEGRAD_ORACLE_OVERLOADS(check_conv2d_forward, Conv2dProblem, Conv2dForwardFn)
TAPEGRAD_ORACLE_OVERLOADS(check_conv2d_backward_data, Conv2dProblem, Conv2dBackwardDataFn)
TAPEGRAD_ORACLE_OVERLOADS(check_conv2d_backward_weights, Conv2dProblem, Conv2dBackwardWeightsFn)
TAPEGRAD_ORACLE_OVERLOADS(check_conv2d_backward_bias, Conv2dProblem, Conv2dBackwardBiasFn)

// The inputs the oracle generates for a seed, so that a caller can reproduce a failure
// outside the oracle: uniform in [-1, 1) rounded to T, `stream` distinguishing the tensors
// (0: x, 1: w, 2: b, 3: dy, 4: the gradient prefill P, which is in [1, 2) instead).
// Row-major in the LOGICAL (NCHW / KCRS) order.
template <class T>
std::vector<T> oracle_values(index_t count, std::uint64_t seed, std::uint64_t stream);
// The same for OracleOptions::values (Values::uniform gives oracle_values' values).
template <class T>
std::vector<T> oracle_values(index_t count, std::uint64_t seed, std::uint64_t stream,
                             Values values);
// Exact-input mode's values (OracleOptions::exact_inputs): integers uniform in [-2^bits, 2^bits].
template <class T>
std::vector<T> exact_input_values(index_t count, std::uint64_t seed, std::uint64_t stream,
                                  int bits);
// The b of exact-input mode for reduction length k in T (see OracleOptions::exact_inputs).
template <class T>
int exact_input_bits(index_t k);

}  // namespace tapegrad::oracle
