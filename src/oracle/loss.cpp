// Raw-buffer checks of loss kernels (oracle/loss.hpp): seeded inputs, the bound of
// oracle/bounds.hpp (the derivations), the one driver (driver.hpp). cross_entropy targets come
// from the same generator: class floor((v + 1) / 2 * C) of a value v in [-1, 1).
#include "tapegrad/oracle/loss.hpp"

#include "driver.hpp"
#include "tapegrad/kernels/loss_ref.hpp"

namespace tapegrad::oracle {

namespace driver {

std::vector<index_t> targets_of(const CrossEntropyProblem& prob, std::uint64_t seed) {
  std::vector<index_t> t;
  for (double v : oracle_values<double>(prob.n, seed, 5)) {
    const auto c = static_cast<index_t>((v + 1) / 2 * double(prob.c));
    t.push_back(std::min(c, prob.c - 1));
  }
  return t;
}

std::string ce_problem(const CrossEntropyProblem& prob) {
  std::string s = "logits";  // piece by piece (GCC 12 -Wrestrict)
  s += Shape{prob.n, prob.c}.str();
  s += " targets[";
  s += std::to_string(prob.n);
  s += "]";
  return s;
}

Tensor<std::int64_t> as_int64(const std::vector<index_t>& t) {
  Tensor<std::int64_t> out(Shape{static_cast<index_t>(t.size())});
  for (std::size_t i = 0; i < t.size(); ++i) out[static_cast<index_t>(i)] = t[i];
  return out;
}

}  // namespace driver

using namespace driver;

template <class T>
OracleReport check_mse_loss_forward(const MseLossProblem& prob,
                                    const std::type_identity_t<MseLossForwardFn<T>>& f,
                                    const OracleOptions& opt) {
  check_mse_loss(prob.x, prob.x, "check_mse_loss_forward");
  const Tensor<T> x = input_values<T>(prob.x, opt, 0);
  const Tensor<T> t = input_values<T>(prob.x, opt, 2);
  Labels l{"mse_loss_forward", std::string("x") + prob.x.str(), "loss", "", Layout::nchw, false};
  Case<T> c = case_of<T>(mse_loss_forward_bound(x.template cast<double>(),
                                                t.template cast<double>()),
                         l, Engine::f50);
  c.inputs.emplace_back("x", x);
  c.inputs.emplace_back("target", t);
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), in[1].as<T>(), out);
  }, opt);
}

template <class T>
OracleReport check_mse_loss_backward(const MseLossProblem& prob,
                                     const std::type_identity_t<MseLossBackwardFn<T>>& f,
                                     const OracleOptions& opt) {
  check_mse_loss(prob.x, prob.x, "check_mse_loss_backward");
  const Tensor<T> x = input_values<T>(prob.x, opt, 0);
  const Tensor<T> t = input_values<T>(prob.x, opt, 2);
  const Tensor<T> dloss = input_values<T>(Shape{}, opt, 3);
  Labels l{"mse_loss_backward", std::string("x") + prob.x.str(), "dx", "", Layout::nchw, true};
  Case<T> c = case_of<T>(mse_loss_backward_bound(x.template cast<double>(),
                                                 t.template cast<double>(), double(dloss[0])),
                         l, Engine::f50);
  c.inputs.emplace_back("x", x);
  c.inputs.emplace_back("target", t);
  c.inputs.emplace_back("dloss", dloss);
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), in[1].as<T>(), in[2].as<T>(), out);
  }, opt);
}

template <class T>
OracleReport check_cross_entropy_forward(const CrossEntropyProblem& prob,
                                         const std::type_identity_t<CrossEntropyForwardFn<T>>& f,
                                         const OracleOptions& opt) {
  const std::vector<index_t> targets = targets_of(prob, opt.seed);
  check_cross_entropy(Shape{prob.n, prob.c}, targets, "check_cross_entropy_forward");
  const Tensor<T> x = input_values<T>(Shape{prob.n, prob.c}, opt, 0);
  Labels l{"cross_entropy_forward", ce_problem(prob), "loss", "", Layout::nchw, false};
  Case<T> c = case_of<T>(cross_entropy_forward_bound(x.template cast<double>(), targets), l,
                         Engine::f50);
  c.inputs.emplace_back("logits", x);
  c.inputs.emplace_back("targets", as_int64(targets));
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), in[1].as<std::int64_t>(), out);
  }, opt);
}

template <class T>
OracleReport check_cross_entropy_backward(
    const CrossEntropyProblem& prob, const std::type_identity_t<CrossEntropyBackwardFn<T>>& f,
    const OracleOptions& opt) {
  const std::vector<index_t> targets = targets_of(prob, opt.seed);
  check_cross_entropy(Shape{prob.n, prob.c}, targets, "check_cross_entropy_backward");
  const Tensor<T> x = input_values<T>(Shape{prob.n, prob.c}, opt, 0);
  const Tensor<T> dloss = input_values<T>(Shape{}, opt, 3);
  Labels l{"cross_entropy_backward", ce_problem(prob), "dx", "N,C", Layout::nchw, true};
  Case<T> c = case_of<T>(
      cross_entropy_backward_bound(x.template cast<double>(), targets, double(dloss[0])), l,
      Engine::f50);
  c.inputs.emplace_back("logits", x);
  c.inputs.emplace_back("targets", as_int64(targets));
  c.inputs.emplace_back("dloss", dloss);
  return run_case(std::move(c), [&](const std::vector<InputBuffer>& in, T* out) {
    f(in[0].as<T>(), in[1].as<std::int64_t>(), in[2].as<T>(), out);
  }, opt);
}

#define TAPEGRAD_INSTANTIATE(T)                                                               \
  template OracleReport check_mse_loss_forward<T>(                                            \
      const MseLossProblem&, const std::type_identity_t<MseLossForwardFn<T>>&,                \
      const OracleOptions&);                                                                  \
  template OracleReport check_mse_loss_backward<T>(                                           \
      const MseLossProblem&, const std::type_identity_t<MseLossBackwardFn<T>>&,               \
      const OracleOptions&);                                                                  \
  template OracleReport check_cross_entropy_forward<T>(                                       \
      const CrossEntropyProblem&, const std::type_identity_t<CrossEntropyForwardFn<T>>&,      \
      const OracleOptions&);                                                                  \
  template OracleReport check_cross_entropy_backward<T>(                                      \
      const CrossEntropyProblem&, const std::type_identity_t<CrossEntropyBackwardFn<T>>&,     \
      const OracleOptions&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad::oracle
