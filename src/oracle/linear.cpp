// Raw-buffer checks of linear kernels (oracle/linear.hpp): seeded inputs, the bound of
// oracle/bounds.hpp, the one driver (driver.hpp).
#include "tapegrad/oracle/linear.hpp"

#include "driver.hpp"

namespace tapegrad::oracle {

namespace driver {
LinearGeom geom_of(const LinearProblem& prob, const char* op) {
  const Shape b{prob.w.rank() >= 1 ? prob.w[0] : 0};
  return make_linear_geom(prob.x, prob.w, prob.bias ? &b : nullptr, op);
}
Labels linear_labels(const char* op, const LinearGeom& g, const char* output,
                     const char* letters, bool is_gradient) {
  return {op, g.str(), output, letters, Layout::nchw, is_gradient};
}
}  // namespace driver

using namespace driver;

template <class T>
OracleReport check_linear_forward(const LinearProblem& prob,
                                  const std::type_identity_t<LinearForwardFn<T>>& f,
                                  const OracleOptions& opt) {
  const LinearGeom g = geom_of(prob, "check_linear_forward");
  const index_t k = g.in + (g.has_bias ? 1 : 0);
  const Tensor<T> x = input_tensor<T>(g.x_shape(), opt, 0, k);
  const Tensor<T> w = input_tensor<T>(g.w_shape(), opt, 1, k);
  const Tensor<T> b = input_tensor<T>(g.b_shape(), opt, 2, k);
  const Tensor<double> bd = b.template cast<double>();
  Case<T> c = case_of<T>(linear_forward_bound(g, x.template cast<double>(),
                                              w.template cast<double>(),
                                              g.has_bias ? &bd : nullptr, opt.engine),
                         linear_labels("linear_forward", g, "y", "N,out", false), opt.engine);
  exact_mode(c, opt, k);
  c.inputs.emplace_back("x", x);
  c.inputs.emplace_back("w", w);
  if (g.has_bias) c.inputs.emplace_back("b", b);
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), in[1].as<T>(), g.has_bias ? in[2].as<T>() : nullptr, out);
  }, opt);
}

template <class T>
OracleReport check_linear_backward_data(const LinearProblem& prob,
                                        const std::type_identity_t<LinearBackwardDataFn<T>>& f,
                                        const OracleOptions& opt) {
  const LinearGeom g = geom_of(prob, "check_linear_backward_data");
  const index_t k = g.out;
  const Tensor<T> dy = input_tensor<T>(g.y_shape(), opt, 3, k);
  const Tensor<T> w = input_tensor<T>(g.w_shape(), opt, 1, k);
  Case<T> c = case_of<T>(
      linear_backward_data_bound(g, dy.template cast<double>(), w.template cast<double>(),
                                 opt.engine),
      linear_labels("linear_backward_data", g, "dx", "N,in", true), opt.engine);
  exact_mode(c, opt, k);
  c.inputs.emplace_back("dy", dy);
  c.inputs.emplace_back("w", w);
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), in[1].as<T>(), out);
  }, opt);
}

template <class T>
OracleReport check_linear_backward_weights(
    const LinearProblem& prob, const std::type_identity_t<LinearBackwardWeightsFn<T>>& f,
    const OracleOptions& opt) {
  const LinearGeom g = geom_of(prob, "check_linear_backward_weights");
  const index_t k = g.n;
  const Tensor<T> x = input_tensor<T>(g.x_shape(), opt, 0, k);
  const Tensor<T> dy = input_tensor<T>(g.y_shape(), opt, 3, k);
  Case<T> c = case_of<T>(
      linear_backward_weights_bound(g, x.template cast<double>(), dy.template cast<double>(),
                                    opt.engine),
      linear_labels("linear_backward_weights", g, "dw", "out,in", true), opt.engine);
  exact_mode(c, opt, k);
  c.inputs.emplace_back("x", x);
  c.inputs.emplace_back("dy", dy);
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), in[1].as<T>(), out);
  }, opt);
}

template <class T>
OracleReport check_linear_backward_bias(const LinearProblem& prob,
                                        const std::type_identity_t<LinearBackwardBiasFn<T>>& f,
                                        const OracleOptions& opt) {
  const LinearGeom g = geom_of(prob, "check_linear_backward_bias");
  const index_t k = g.n;
  const Tensor<T> dy = input_tensor<T>(g.y_shape(), opt, 3, k);
  Case<T> c = case_of<T>(linear_backward_bias_bound(g, dy.template cast<double>(), opt.engine),
                         linear_labels("linear_backward_bias", g, "db", "out", true),
                         opt.engine);
  exact_mode(c, opt, k);
  c.inputs.emplace_back("dy", dy);
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), out);
  }, opt);
}

#define TAPEGRAD_INSTANTIATE(T)                                                               \
  template OracleReport check_linear_forward<T>(                                              \
      const LinearProblem&, const std::type_identity_t<LinearForwardFn<T>>&,                  \
      const OracleOptions&);                                                                  \
  template OracleReport check_linear_backward_data<T>(                                        \
      const LinearProblem&, const std::type_identity_t<LinearBackwardDataFn<T>>&,             \
      const OracleOptions&);                                                                  \
  template OracleReport check_linear_backward_weights<T>(                                     \
      const LinearProblem&, const std::type_identity_t<LinearBackwardWeightsFn<T>>&,          \
      const OracleOptions&);                                                                  \
  template OracleReport check_linear_backward_bias<T>(                                        \
      const LinearProblem&, const std::type_identity_t<LinearBackwardBiasFn<T>>&,             \
      const OracleOptions&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad::oracle
