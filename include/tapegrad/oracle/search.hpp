// Your kernel as a property-test suite: oracle::search_<op>(kernel, options) runs the op's
// raw-buffer check (oracle/raw.hpp and its siblings) on many random cases that RapidCheck
// generates -- geometries and values -- and, when one fails, shrinks it to the smallest
// failing case and reports it as ONE descriptor line (oracle/descriptor.hpp) plus the check's
// report. Call it from your own GoogleTest / ctest; it never aborts the process:
//
//   #include "tapegrad/oracle/search.hpp"
//   TEST(MyConv, MatchesTheOracle) {
//     using namespace tapegrad::oracle;
//     SearchResult r = search_conv2d_backward_data(
//         [](const Conv2dProblem& p, const float* dy, const float* w, float* dx) {
//           my_conv_bwd_data(p, dy, w, dx);   // p: this case's shapes, stride, pad, ...
//         },
//         {.cases = 200});
//     EXPECT_TRUE(r.passed()) << r;          // or r.print(std::cout)
//   }
//
// A search's callback is the check's callback with the case's problem in front (the same
// struct you would hand the check: Conv2dProblem, Pool2dProblem, LinearProblem,
// ActivationProblem, MseLossProblem, CrossEntropyProblem), so your kernel learns the sizes.
// Its layout is SearchOptions::layout; its bias is set when the forward gets a bias buffer.
//
// Case mix (every case valid by construction; nothing is discarded):
//   conv2d     groups 1-3, 1-3 channels per group in and out, batch 1-2, kernel 1-3 each way,
//              stride 1-3, padding 0-2, dilation 1-2, input from "kernel = padded input"
//              to 5 larger, odd sizes throughout; bias on and off (SearchOptions::bias)
//   pooling    batch 1-2, channels 1-3, kernel 1-3, stride 1-3, padding up to half the kernel,
//              input from the kernel size to 5 larger
//   linear     batch 1-4, in 1-24, out 1-8, bias on and off
//   activations, mse_loss  rank 1-4 (softmax, log_softmax: 2-4), each dimension 1-5
//   cross_entropy          rows 1-6, classes 1-9
// Values (oracle/descriptor.hpp's CaseValues): exact-input mode in half the cases of the ops
// that support it (conv2d and linear: equality, no tolerance), the rest uniform, ties (and
// zeros) and wide magnitudes alike; SearchOptions::values narrows the mix.
//
// Shrinking: every choice shrinks toward its smallest value (groups 1, batch 1, stride 1, no
// padding, the smallest input the window fits, exact inputs, seed 1), and RapidCheck keeps
// every smaller case that still fails, so the reported case is a local minimum: each smaller
// value RapidCheck tried for any one choice passes.
//
// Replay: the failure line is a descriptor; SearchOptions::replay = that line runs exactly
// that case again. The whole search is determined by SearchOptions::seed (printed).
// Batch files (benchdnn style): SearchOptions::batch_file names a file of descriptors, one
// per line, '#' starts a comment; every line is run (no shrinking) and the first failure is
// reported with the count of failing lines.
//
// Exceptions: one thrown by your callback is caught and makes that case a failure whose report
// names the exception (a search never lets it escape). Invalid SearchOptions, an unreadable
// batch file or a bad line in it are std::invalid_argument, thrown by search_<op> itself.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/oracle/activation.hpp"
#include "tapegrad/oracle/descriptor.hpp"
#include "tapegrad/oracle/linear.hpp"
#include "tapegrad/oracle/loss.hpp"
#include "tapegrad/oracle/pool.hpp"
#include "tapegrad/oracle/raw.hpp"

namespace tapegrad::oracle {

struct SearchOptions {
  int cases = 100;            // random cases (RapidCheck's max_success)
  std::uint64_t seed = 1;     // RapidCheck's seed: the same seed, the same cases
  bool shrink = true;         // shrink a failing case to the smallest
  Layout layout = Layout::nchw;              // conv2d and pooling: your kernel's layout
  GradMode grad_mode = GradMode::overwrite;  // backward kernels: overwrite or accumulate
  std::optional<bool> bias;   // conv2d / linear forward: always / never (unset: both)
  std::vector<CaseValues> values;  // the value kinds to draw from (empty: the default mix)
  std::string replay;         // one descriptor: run just that case
  std::string batch_file;     // a file of descriptors: run each line
  OracleOptions check;        // the rest of the checks' options (engine, tolerance); its seed,
                              // exact_inputs and values are set per case, grad_mode from above
};

struct SearchFailure {
  CaseDescriptor descriptor;  // the smallest failing case (the one line to replay)
  OracleReport report;        // its report; empty (op only) when the kernel threw
  std::string exception;      // what the callback threw ("" when it returned)
  int shrinks = 0;            // accepted shrinking steps from the first failing case
};

struct SearchResult {
  std::string op;                 // "conv2d_forward"
  std::string dtype;              // "float32" / "float64"
  std::string source;             // "random", "replay" or the batch file's path
  std::uint64_t seed = 0;
  Layout layout = Layout::nchw;
  GradMode grad_mode = GradMode::overwrite;
  int cases = 0;                  // cases run (passing ones, plus the failing one)
  int failed_cases = 0;           // batch files: how many lines failed; otherwise 0 or 1
  std::optional<SearchFailure> failure;
  std::vector<std::pair<std::string, int>> mix;  // what the passing cases covered

  bool passed() const { return !failure; }
  // "search: <op>, <dtype>, ...: <n> cases PASS", or the failure: one descriptor line, how to
  // replay it, then the check's report (ending in FAIL).
  void print(std::ostream& os) const;
};
std::ostream& operator<<(std::ostream& os, const SearchResult& r);

// A search callback: the check's callback Fn with the problem in front.
template <class Problem, class Fn>
struct WithProblem;
template <class Problem, class... A>
struct WithProblem<Problem, std::function<void(A...)>> {
  using type = std::function<void(const Problem&, A...)>;
};
template <class Problem, class Fn>
using SearchFn = typename WithProblem<Problem, Fn>::type;

// T = float or double; the overloads below pick T from the callback as the checks' do.
#define TAPEGRAD_ORACLE_SEARCH(name, Problem, Fn)                                           \
  template <class T>                                                                        \
  SearchResult search_##name(const std::type_identity_t<SearchFn<Problem, Fn<T>>>& f,      \
                             const SearchOptions& opt = {});                                \
  inline SearchResult search_##name(const SearchFn<Problem, Fn<float>>& f,                 \
                                    const SearchOptions& opt = {}) {                        \
    return search_##name<float>(f, opt);                                                    \
  }                                                                                         \
  inline SearchResult search_##name(const SearchFn<Problem, Fn<double>>& f,                \
                                    const SearchOptions& opt = {}) {                        \
    return search_##name<double>(f, opt);                                                   \
  }
TAPEGRAD_ORACLE_SEARCH(conv2d_forward, Conv2dProblem, Conv2dForwardFn)
TAPEGRAD_ORACLE_SEARCH(conv2d_backward_data, Conv2dProblem, Conv2dBackwardDataFn)
TAPEGRAD_ORACLE_SEARCH(conv2d_backward_weights, Conv2dProblem, Conv2dBackwardWeightsFn)
TAPEGRAD_ORACLE_SEARCH(conv2d_backward_bias, Conv2dProblem, Conv2dBackwardBiasFn)
TAPEGRAD_ORACLE_SEARCH(linear_forward, LinearProblem, LinearForwardFn)
TAPEGRAD_ORACLE_SEARCH(linear_backward_data, LinearProblem, LinearBackwardDataFn)
TAPEGRAD_ORACLE_SEARCH(linear_backward_weights, LinearProblem, LinearBackwardWeightsFn)
TAPEGRAD_ORACLE_SEARCH(linear_backward_bias, LinearProblem, LinearBackwardBiasFn)
TAPEGRAD_ORACLE_SEARCH(max_pool2d_forward, Pool2dProblem, Pool2dForwardFn)
TAPEGRAD_ORACLE_SEARCH(max_pool2d_backward, Pool2dProblem, MaxPool2dBackwardFn)
TAPEGRAD_ORACLE_SEARCH(avg_pool2d_forward, Pool2dProblem, Pool2dForwardFn)
TAPEGRAD_ORACLE_SEARCH(avg_pool2d_backward, Pool2dProblem, AvgPool2dBackwardFn)
TAPEGRAD_ORACLE_SEARCH(relu_forward, ActivationProblem, UnaryFn)
TAPEGRAD_ORACLE_SEARCH(relu_backward, ActivationProblem, UnaryBackwardFn)
TAPEGRAD_ORACLE_SEARCH(sigmoid_forward, ActivationProblem, UnaryFn)
TAPEGRAD_ORACLE_SEARCH(sigmoid_backward, ActivationProblem, UnaryBackwardFn)
TAPEGRAD_ORACLE_SEARCH(tanh_forward, ActivationProblem, UnaryFn)
TAPEGRAD_ORACLE_SEARCH(tanh_backward, ActivationProblem, UnaryBackwardFn)
TAPEGRAD_ORACLE_SEARCH(softmax_forward, ActivationProblem, UnaryFn)
TAPEGRAD_ORACLE_SEARCH(softmax_backward, ActivationProblem, UnaryBackwardFn)
TAPEGRAD_ORACLE_SEARCH(log_softmax_forward, ActivationProblem, UnaryFn)
TAPEGRAD_ORACLE_SEARCH(log_softmax_backward, ActivationProblem, UnaryBackwardFn)
TAPEGRAD_ORACLE_SEARCH(mse_loss_forward, MseLossProblem, MseLossForwardFn)
TAPEGRAD_ORACLE_SEARCH(mse_loss_backward, MseLossProblem, MseLossBackwardFn)
TAPEGRAD_ORACLE_SEARCH(cross_entropy_forward, CrossEntropyProblem, CrossEntropyForwardFn)
TAPEGRAD_ORACLE_SEARCH(cross_entropy_backward, CrossEntropyProblem, CrossEntropyBackwardFn)
#undef TAPEGRAD_ORACLE_SEARCH

}  // namespace tapegrad::oracle
