// Tape overhead: one training step of lenet5 through the op tape vs the same step through the
// hand-written layers (and the same kernels chained by hand), float and double, at 1 and 2
// OpenMP threads:
//   BM_train_step<float, Path::tape>/N:64/threads:1/real_time
//   BM_train_step<float, Path::layers>/N:64/threads:1/real_time
// Names differ only in the path, so the tape/layers ratio is one division over the JSON output.
//
// A training step = forward + loss + backward + an in-place SGD update of every parameter
// (the same sgd_update on the same tensors in every path):
//   tape    clear the tape, record the input and parameters as leaves (copies), record the
//           network (ops::, forward through the kernels:: dispatch), backward() through the
//           VJP kernels (kernels::*_backward_*), read each parameter gradient, update.
//   layers  Sequential::forward_loss (forward through the same kernels:: dispatch), then
//           Sequential::backward (the layers' own plain backward loops), update in place.
//   kernels the same forward and VJP kernels as the tape, chained by hand over the spec with
//           no tape: tape/kernels isolates the tape's own cost.
// So tape/layers (what the issue asks) is "tape + VJP kernels" vs "hand-written layers": the
// forward kernels are shared, the backward math is not (the layers' backward is plain loops).
// Every path computes dL/dx of the input too (the layers always return it), so the tape's
// input leaf requires a gradient as well.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "tapegrad/layers/network.hpp"

namespace tapegrad {
namespace {

enum class Path { tape, layers, kernels };

constexpr double learning_rate = 0.01;
constexpr std::uint64_t problem_seed = 1;

// value -= lr * grad, element-wise: the update of every path.
template <class T>
void sgd_update(Tensor<T>& value, const Tensor<T>& grad) {
  const T lr(learning_rate);
  T* v = value.data();
  const T* g = grad.data();
  for (index_t i = 0, n = value.numel(); i < n; ++i) v[i] -= lr * g[i];
}

// The op-tape step. The tape is cleared and re-recorded every step, as in real training.
template <class T>
class TapeStep {
 public:
  TapeStep(const NetSpec& spec, const NetValues<T>& v)
      : spec_(spec), x_(v.x), params_(v.params), targets_(v.targets) {}

  T step() {
    tape_.clear();
    const TapeTensor<T> x = tape_.leaf(x_);
    handles_.clear();
    for (const auto& p : params_) handles_.push_back(tape_.leaf(p));
    const TapeTensor<T> loss = record_network(spec_, x, handles_, targets_);
    tape_.backward(loss);
    for (std::size_t i = 0; i < params_.size(); ++i)
      sgd_update(params_[i], tape_.grad(handles_[i]));
    return loss.value()[0];
  }
  // Gradient of parameter i from the last step.
  Tensor<T> grad(std::size_t i) const { return tape_.grad(handles_[i]); }

 private:
  const NetSpec& spec_;
  Tensor<T> x_;
  std::vector<Tensor<T>> params_;
  Targets<T> targets_;
  Tape<T> tape_;
  std::vector<TapeTensor<T>> handles_;
};

// The hand-written step: the layers own their parameters and gradients.
template <class T>
class LayersStep {
 public:
  LayersStep(const NetSpec& spec, const NetValues<T>& v)
      : net_(build_sequential<T>(spec, v.params)), x_(v.x), targets_(v.targets),
        params_(net_.params()) {}

  T step() {
    const T loss = net_.forward_loss(x_, targets_);
    benchmark::DoNotOptimize(net_.backward());  // dL/dx, computed but unused
    for (auto& p : params_) sgd_update(*p.value, *p.grad);
    return loss;
  }
  Tensor<T> grad(std::size_t i) const { return *params_[i].grad; }

 private:
  layers::Sequential<T> net_;
  Tensor<T> x_;
  Targets<T> targets_;
  std::vector<layers::ParamRef<T>> params_;
};

// The same step with no tape and no layer objects: the forward and VJP kernels the tape calls,
// chained by hand over the spec. tape/kernels is the tape's own overhead (recording, closures,
// std::function calls, leaf copies, gradient slots); tape/layers is what the issue asks.
template <class T>
class KernelsStep {
 public:
  KernelsStep(const NetSpec& spec, const NetValues<T>& v)
      : spec_(spec), x_(v.x), params_(v.params), targets_(v.targets),
        acts_(spec.layers.size() + 1), grads_(v.params.size()) {}

  T step() {
    acts_[0] = x_;
    for (std::size_t i = 0; i < spec_.layers.size(); ++i)
      acts_[i + 1] = forward(spec_.layers[i], acts_[i]);
    const Tensor<T>& out = acts_.back();
    T loss;
    Tensor<T> d;
    if (spec_.loss == LossKind::mse) {
      check_mse_loss(out.shape(), targets_.values.shape());
      loss = kernels::mse_loss_forward(out, targets_.values)[0];
      d = kernels::mse_loss_backward(out, targets_.values, T(1));
    } else {
      check_cross_entropy(out.shape(), targets_.labels);
      loss = kernels::cross_entropy_forward(out, targets_.labels)[0];
      d = kernels::cross_entropy_backward(out, targets_.labels, T(1));
    }
    for (std::size_t i = spec_.layers.size(); i-- > 0;)
      d = backward(spec_.layers[i], acts_[i], acts_[i + 1], d);
    benchmark::DoNotOptimize(d.data());  // dL/dx, computed but unused
    for (std::size_t i = 0; i < params_.size(); ++i) sgd_update(params_[i], grads_[i]);
    return loss;
  }
  Tensor<T> grad(std::size_t i) const { return grads_[i]; }

 private:
  const Tensor<T>* bias(const LayerSpec& L) const {
    return L.b_param >= 0 ? &params_[static_cast<std::size_t>(L.b_param)] : nullptr;
  }
  const Tensor<T>& weight(const LayerSpec& L) const {
    return params_[static_cast<std::size_t>(L.w_param)];
  }
  Conv2dGeom conv_geom(const LayerSpec& L, const Tensor<T>& x) const {
    const Tensor<T>* b = bias(L);
    return make_conv2d_geom(x.shape(), weight(L).shape(), b ? &b->shape() : nullptr, L.conv,
                            "conv2d");
  }
  LinearGeom linear_geom(const LayerSpec& L, const Tensor<T>& x) const {
    const Tensor<T>* b = bias(L);
    return make_linear_geom(x.shape(), weight(L).shape(), b ? &b->shape() : nullptr, "linear");
  }

  Tensor<T> forward(const LayerSpec& L, const Tensor<T>& x) const {
    switch (L.kind) {
      case LayerKind::conv2d:
        return kernels::conv2d_forward(conv_geom(L, x), x, weight(L), bias(L));
      case LayerKind::linear:
        return kernels::linear_forward(linear_geom(L, x), x, weight(L), bias(L));
      case LayerKind::relu: return kernels::relu_forward(x);
      case LayerKind::sigmoid: return kernels::sigmoid_forward(x);
      case LayerKind::tanh: return kernels::tanh_forward(x);
      case LayerKind::max_pool2d:
        return kernels::max_pool2d_forward(make_pool2d_geom(x.shape(), L.pool, "max_pool2d"), x);
      case LayerKind::avg_pool2d:
        return kernels::avg_pool2d_forward(make_pool2d_geom(x.shape(), L.pool, "avg_pool2d"), x);
      case LayerKind::flatten:
        check_flatten(x.shape(), "flatten");
        return kernels::flatten_forward(x);
    }
    return x;
  }

  // dL/dx of layer L from its input x, output y and dL/dy; stores its parameter gradients.
  Tensor<T> backward(const LayerSpec& L, const Tensor<T>& x, const Tensor<T>& y,
                     const Tensor<T>& dy) {
    switch (L.kind) {
      case LayerKind::conv2d: {
        const Conv2dGeom g = conv_geom(L, x);
        grads_[static_cast<std::size_t>(L.w_param)] = kernels::conv2d_backward_weights(g, x, dy);
        if (L.b_param >= 0)
          grads_[static_cast<std::size_t>(L.b_param)] = kernels::conv2d_backward_bias(g, dy);
        return kernels::conv2d_backward_data(g, dy, weight(L));
      }
      case LayerKind::linear: {
        const LinearGeom g = linear_geom(L, x);
        grads_[static_cast<std::size_t>(L.w_param)] = kernels::linear_backward_weights(g, x, dy);
        if (L.b_param >= 0)
          grads_[static_cast<std::size_t>(L.b_param)] = kernels::linear_backward_bias(g, dy);
        return kernels::linear_backward_data(g, dy, weight(L));
      }
      case LayerKind::relu: return kernels::relu_backward(x, dy);
      case LayerKind::sigmoid: return kernels::sigmoid_backward(y, dy);
      case LayerKind::tanh: return kernels::tanh_backward(y, dy);
      case LayerKind::max_pool2d:
        return kernels::max_pool2d_backward(make_pool2d_geom(x.shape(), L.pool, "max_pool2d"), x,
                                            dy);
      case LayerKind::avg_pool2d:
        return kernels::avg_pool2d_backward(make_pool2d_geom(x.shape(), L.pool, "avg_pool2d"),
                                            dy);
      case LayerKind::flatten: return kernels::flatten_backward(x.shape(), dy);
    }
    return dy;
  }

  const NetSpec& spec_;
  Tensor<T> x_;
  std::vector<Tensor<T>> params_;
  Targets<T> targets_;
  std::vector<Tensor<T>> acts_;   // acts_[i] feeds layer i; acts_.back() is the output
  std::vector<Tensor<T>> grads_;  // in NetSpec::params order
};

// Guard, not a precision test (the four-way check, gradcheck/fourway.hpp, is that): one step of
// each path from the same problem must give the same loss and the same gradients up to
// rounding. 1e-3 relative to the tensor's largest gradient is far above any rounding of lenet5
// in float and far below what a mismatched problem or parameter order produces (O(1)).
template <class T>
std::string paths_disagree(const NetSpec& spec, const NetValues<T>& v) {
  TapeStep<T> tape(spec, v);
  LayersStep<T> layers(spec, v);
  KernelsStep<T> kern(spec, v);
  using std::abs;
  const double ll = static_cast<double>(layers.step());
  const double lt = static_cast<double>(tape.step()), lk = static_cast<double>(kern.step());
  if (!(abs(lt - ll) <= 1e-3 * abs(ll)) || !(abs(lk - ll) <= 1e-3 * abs(ll)))
    return "loss differs: tape " + std::to_string(lt) + ", kernels " + std::to_string(lk) +
           ", layers " + std::to_string(ll);
  for (std::size_t i = 0; i < spec.params.size(); ++i) {
    const Tensor<T> gl = layers.grad(i);
    for (const Tensor<T>& g : {tape.grad(i), kern.grad(i)}) {
      if (g.shape() != gl.shape()) return spec.params[i].name + ": gradient shapes differ";
      double scale = 0, diff = 0;
      for (index_t j = 0; j < gl.numel(); ++j) {
        scale = std::fmax(scale, abs(static_cast<double>(gl[j])));
        diff = std::fmax(diff, abs(static_cast<double>(g[j]) - static_cast<double>(gl[j])));
      }
      if (!(diff <= 1e-3 * scale))
        return spec.params[i].name + ": gradients differ by " + std::to_string(diff);
    }
  }
  return {};
}

template <class T, Path P>
void BM_train_step(benchmark::State& st) {
  const index_t n = st.range(0);
  omp_set_num_threads(static_cast<int>(st.range(1)));
  const NetSpec spec = load_spec("lenet5");
  const NetValues<T> v = random_problem(spec, n, problem_seed).template cast<T>();
  // The guard runs once per instantiation and batch (the runner calls this function several
  // times per benchmark while it sizes the iteration count).
  static std::set<index_t> checked;
  if (!checked.count(n)) {
    if (const std::string why = paths_disagree(spec, v); !why.empty()) {
      st.SkipWithError(why.c_str());
      return;
    }
    checked.insert(n);
  }
  std::conditional_t<P == Path::tape, TapeStep<T>,
                     std::conditional_t<P == Path::layers, LayersStep<T>, KernelsStep<T>>>
      step(spec, v);
  for (auto _ : st) {
    T loss = step.step();
    benchmark::DoNotOptimize(loss);
    benchmark::ClobberMemory();
  }
  st.counters["images/s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(std::string("lenet5 ") + (P == Path::tape     ? "op tape + VJP kernels"
                                        : P == Path::layers ? "hand-written layers"
                                                            : "kernels chained by hand, no tape"));
}

void step_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "threads"});
  for (index_t n : {64, 2})  // 2: the bench_smoke shape
    for (index_t threads : {1, 2}) b->Args({n, threads});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK_TEMPLATE(BM_train_step, float, Path::tape)->Apply(step_args);
BENCHMARK_TEMPLATE(BM_train_step, float, Path::layers)->Apply(step_args);
BENCHMARK_TEMPLATE(BM_train_step, float, Path::kernels)->Apply(step_args);
BENCHMARK_TEMPLATE(BM_train_step, double, Path::tape)->Apply(step_args);
BENCHMARK_TEMPLATE(BM_train_step, double, Path::layers)->Apply(step_args);
BENCHMARK_TEMPLATE(BM_train_step, double, Path::kernels)->Apply(step_args);

}  // namespace
}  // namespace tapegrad

BENCHMARK_MAIN();
