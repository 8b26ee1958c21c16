// Raw-buffer checks of pooling kernels (oracle/pool.hpp): seeded inputs, the bound of
// oracle/bounds.hpp, the one driver (driver.hpp).
#include "tapegrad/oracle/pool.hpp"

#include <array>

#include "driver.hpp"

namespace tapegrad::oracle {

namespace driver {
Labels pool_labels(const char* op, const Pool2dGeom& g, const char* output,
                   const Pool2dProblem& prob, bool is_gradient) {
  return {op, g.str(), output, letters_of('a', prob.layout), prob.layout, is_gradient};
}
// x (N,C,H,W) -> y (N,C,P,Q): does the window touch the padding (y); is the element read by a
// window that does, or by none (dx).
std::array<WindowAxis, 2> windows_of(const Pool2dGeom& g) {
  return {WindowAxis{g.h, g.p, g.prm.kernel[0], g.prm.stride[0], g.prm.pad[0], 1},
          WindowAxis{g.w, g.q, g.prm.kernel[1], g.prm.stride[1], g.prm.pad[1], 1}};
}
PatternSpec pool_output_pattern(const Pool2dGeom& g) {
  const auto win = windows_of(g);
  return {{{"n"}, {"c"}, {"h"}, {"w"}}, {window_output_feature(g.n * g.c, win[0], win[1])}};
}
PatternSpec pool_input_pattern(const Pool2dGeom& g) {
  const auto win = windows_of(g);
  return {{{"n"}, {"c"}, {"h"}, {"w"}}, window_input_features(g.n * g.c, win[0], win[1])};
}
}  // namespace driver

using namespace driver;

template <class T>
OracleReport check_max_pool2d_forward(const Pool2dProblem& prob,
                                      const std::type_identity_t<Pool2dForwardFn<T>>& f,
                                      const OracleOptions& opt) {
  const Pool2dGeom g = make_pool2d_geom(prob.x, prob.params, "check_max_pool2d_forward");
  const Tensor<T> x = input_values<T>(g.x_shape(), opt, 0);
  Case<T> c = case_of<T>(max_pool2d_forward_bound(g, x.template cast<double>()),
                         pool_labels("max_pool2d_forward", g, "y", prob, false), Engine::f50);
  set_pattern(c, pool_output_pattern(g), g.y_shape(), prob.layout);
  c.inputs.emplace_back("x", to_layout(x, prob.layout));
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), out);
  }, opt);
}

template <class T>
OracleReport check_max_pool2d_backward(const Pool2dProblem& prob,
                                       const std::type_identity_t<MaxPool2dBackwardFn<T>>& f,
                                       const OracleOptions& opt) {
  const Pool2dGeom g = make_pool2d_geom(prob.x, prob.params, "check_max_pool2d_backward");
  const Tensor<T> x = input_values<T>(g.x_shape(), opt, 0);
  const Tensor<T> dy = input_values<T>(g.y_shape(), opt, 3);
  Case<T> c = case_of<T>(
      max_pool2d_backward_bound(g, x.template cast<double>(), dy.template cast<double>()),
      pool_labels("max_pool2d_backward", g, "dx", prob, true), Engine::f50);
  set_pattern(c, pool_input_pattern(g), g.x_shape(), prob.layout);
  c.inputs.emplace_back("x", to_layout(x, prob.layout));
  c.inputs.emplace_back("dy", to_layout(dy, prob.layout));
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), in[1].as<T>(), out);
  }, opt);
}

template <class T>
OracleReport check_avg_pool2d_forward(const Pool2dProblem& prob,
                                      const std::type_identity_t<Pool2dForwardFn<T>>& f,
                                      const OracleOptions& opt) {
  const Pool2dGeom g = make_pool2d_geom(prob.x, prob.params, "check_avg_pool2d_forward");
  const Tensor<T> x = input_values<T>(g.x_shape(), opt, 0);
  Case<T> c = case_of<T>(avg_pool2d_forward_bound(g, x.template cast<double>(), opt.engine),
                         pool_labels("avg_pool2d_forward", g, "y", prob, false), opt.engine);
  set_pattern(c, pool_output_pattern(g), g.y_shape(), prob.layout);
  c.inputs.emplace_back("x", to_layout(x, prob.layout));
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), out);
  }, opt);
}

template <class T>
OracleReport check_avg_pool2d_backward(const Pool2dProblem& prob,
                                       const std::type_identity_t<AvgPool2dBackwardFn<T>>& f,
                                       const OracleOptions& opt) {
  const Pool2dGeom g = make_pool2d_geom(prob.x, prob.params, "check_avg_pool2d_backward");
  const Tensor<T> dy = input_values<T>(g.y_shape(), opt, 3);
  Case<T> c = case_of<T>(avg_pool2d_backward_bound(g, dy.template cast<double>(), opt.engine),
                         pool_labels("avg_pool2d_backward", g, "dx", prob, true), opt.engine);
  set_pattern(c, pool_input_pattern(g), g.x_shape(), prob.layout);
  c.inputs.emplace_back("dy", to_layout(dy, prob.layout));
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), out);
  }, opt);
}

#define TAPEGRAD_INSTANTIATE(T)                                                               \
  template OracleReport check_max_pool2d_forward<T>(                                          \
      const Pool2dProblem&, const std::type_identity_t<Pool2dForwardFn<T>>&,                  \
      const OracleOptions&);                                                                  \
  template OracleReport check_max_pool2d_backward<T>(                                         \
      const Pool2dProblem&, const std::type_identity_t<MaxPool2dBackwardFn<T>>&,              \
      const OracleOptions&);                                                                  \
  template OracleReport check_avg_pool2d_forward<T>(                                          \
      const Pool2dProblem&, const std::type_identity_t<Pool2dForwardFn<T>>&,                  \
      const OracleOptions&);                                                                  \
  template OracleReport check_avg_pool2d_backward<T>(                                         \
      const Pool2dProblem&, const std::type_identity_t<AvgPool2dBackwardFn<T>>&,              \
      const OracleOptions&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad::oracle
