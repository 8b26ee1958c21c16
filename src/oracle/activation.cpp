// Raw-buffer checks of activation kernels (oracle/activation.hpp): seeded inputs, the bound of
// oracle/bounds.hpp (the derivations), the one driver (driver.hpp).
#include "tapegrad/oracle/activation.hpp"

#include "driver.hpp"
#include "tapegrad/kernels/activation_ref.hpp"

namespace tapegrad::oracle {

namespace driver {

// One activation: its name, which forward bound and backward bound, what its backward takes
// (x, or the forward output y), and whether it reduces over dim 1.
struct ActivationKind {
  const char* forward_op;
  const char* backward_op;
  Bound (*forward)(const Tensor<double>&);
  Bound (*backward)(const Tensor<double>&, const Tensor<double>&);
  bool backward_takes_y;
  bool over_dim1;
};

template <class T>
OracleReport check_activation_forward(const ActivationKind& kind, const ActivationProblem& prob,
                                      const UnaryFn<T>& f, const OracleOptions& opt) {
  if (kind.over_dim1) check_softmax(prob.x, kind.forward_op);
  const Tensor<T> x = input_values<T>(prob.x, opt, 0);
  Labels l{kind.forward_op, std::string("x") + prob.x.str(), "y", kind.over_dim1 ? "dim 1" : "",
           Layout::nchw, false};
  Case<T> c = case_of<T>(kind.forward(x.template cast<double>()), l, Engine::f50);
  c.inputs.emplace_back("x", x);
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), out);
  }, opt);
}

template <class T>
OracleReport check_activation_backward(const ActivationKind& kind,
                                       const ActivationProblem& prob,
                                       const UnaryBackwardFn<T>& f, const OracleOptions& opt) {
  if (kind.over_dim1) check_softmax(prob.x, kind.backward_op);
  const Tensor<T> x = input_values<T>(prob.x, opt, 0);
  const Tensor<T> dy = input_values<T>(prob.x, opt, 3);
  // The forward output, rounded once to T from 50 digits: what a backward kernel is handed.
  const Tensor<T> y = kind.backward_takes_y
                          ? map(kind.forward(x.template cast<double>()).exact, io::round_to<T>)
                          : x;
  Labels l{kind.backward_op, std::string("x") + prob.x.str(), "dx", kind.over_dim1 ? "dim 1" : "",
           Layout::nchw, true};
  Case<T> c = case_of<T>(kind.backward(y.template cast<double>(), dy.template cast<double>()),
                         l, Engine::f50);
  c.inputs.emplace_back(kind.backward_takes_y ? "y" : "x", y);
  c.inputs.emplace_back("dy", dy);
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), in[1].as<T>(), out);
  }, opt);
}

const ActivationKind relu_kind{"relu_forward", "relu_backward", relu_forward_bound,
                               relu_backward_bound, false, false};
const ActivationKind sigmoid_kind{"sigmoid_forward", "sigmoid_backward", sigmoid_forward_bound,
                                  sigmoid_backward_bound, true, false};
const ActivationKind tanh_kind{"tanh_forward", "tanh_backward", tanh_forward_bound,
                               tanh_backward_bound, true, false};
const ActivationKind softmax_kind{"softmax_forward", "softmax_backward", softmax_forward_bound,
                                  softmax_backward_bound, true, true};
const ActivationKind log_softmax_kind{"log_softmax_forward", "log_softmax_backward",
                                      log_softmax_forward_bound, log_softmax_backward_bound, true,
                                      true};

}  // namespace driver

#define TAPEGRAD_ORACLE_ACTIVATION(name)                                                      \
  template <class T>                                                                         \
  OracleReport check_##name##_forward(const ActivationProblem& prob,                         \
                                      const std::type_identity_t<UnaryFn<T>>& f,             \
                                      const OracleOptions& opt) {                            \
    return driver::check_activation_forward<T>(driver::name##_kind, prob, f, opt);           \
  }                                                                                          \
  template <class T>                                                                         \
  OracleReport check_##name##_backward(const ActivationProblem& prob,                        \
                                       const std::type_identity_t<UnaryBackwardFn<T>>& f,    \
                                       const OracleOptions& opt) {                           \
    return driver::check_activation_backward<T>(driver::name##_kind, prob, f, opt);          \
  }                                                                                          \
  template OracleReport check_##name##_forward<float>(                                       \
      const ActivationProblem&, const std::type_identity_t<UnaryFn<float>>&,                 \
      const OracleOptions&);                                                                 \
  template OracleReport check_##name##_forward<double>(                                      \
      const ActivationProblem&, const std::type_identity_t<UnaryFn<double>>&,                \
      const OracleOptions&);                                                                 \
  template OracleReport check_##name##_backward<float>(                                      \
      const ActivationProblem&, const std::type_identity_t<UnaryBackwardFn<float>>&,         \
      const OracleOptions&);                                                                 \
  template OracleReport check_##name##_backward<double>(                                     \
      const ActivationProblem&, const std::type_identity_t<UnaryBackwardFn<double>>&,        \
      const OracleOptions&);
TAPEGRAD_ORACLE_ACTIVATION(relu)
TAPEGRAD_ORACLE_ACTIVATION(sigmoid)
TAPEGRAD_ORACLE_ACTIVATION(tanh)
TAPEGRAD_ORACLE_ACTIVATION(softmax)
TAPEGRAD_ORACLE_ACTIVATION(log_softmax)
#undef TAPEGRAD_ORACLE_ACTIVATION

}  // namespace tapegrad::oracle
