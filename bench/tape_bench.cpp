// Tape cost: one training step of lenet5 through the op tape vs the same step through the
// hand-written layers, float and double, at 1 and 2 OpenMP threads:
//   BM_train_step<float, Path::tape>/N:64/threads:1/real_time
//   BM_train_step<float, Path::layers>/N:64/threads:1/real_time
// Names differ only in the path, so the tape/layers ratio is one division over the JSON output.
//
// A training step = forward + loss + backward + an in-place SGD update of every parameter
// (the same sgd_update on the same tensors in every path):
//   tape    clear the tape, record the input and the parameter set as view leaves (no copies),
//           record the network through the layer table (ops::, forward through the kernels::
//           dispatch), backward() through the VJP kernels, move each gradient into the
//           parameter set, update.
//   layers  Sequential::forward_loss (forward through the same kernels:: dispatch), then
//           Sequential::backward (the layers' own plain backward loops), update in place.
// So tape/layers is "tape + VJP kernels" vs "hand-written layers": the forward kernels are
// shared, the backward math is not (the layers' backward is plain loops, kept on purpose as an
// independent check). Every path computes dL/dx of the input too (the layers always return
// it), so the tape's input leaf requires a gradient as well. (An earlier third path chained the
// kernels by hand with no tape; it needed a second switch over the layer kinds, and the
// profiler's op spans now show the tape's own share of a step directly.)
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "tapegrad/net/network.hpp"
#include "tapegrad/net/problem.hpp"
#include "tapegrad/net/reference.hpp"
#include "tapegrad/net/sequential.hpp"

namespace tapegrad {
namespace {

enum class Path { tape, layers };

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
      : spec_(spec), x_(v.x), params_(make_params(spec, v.params)), targets_(v.targets) {}

  T step() {
    tape_.clear();
    const TapeTensor<T> x = tape_.view(x_);
    handles_ = record_params(tape_, params_);
    const TapeTensor<T> loss = record_network(spec_, x, handles_, targets_);
    tape_.backward(loss);
    take_grads(tape_, handles_, params_);
    for (auto& p : params_) sgd_update(p.value, p.grad);
    return loss.value()[0];
  }
  // Gradient of parameter i from the last step.
  Tensor<T> grad(std::size_t i) const { return params_[i].grad; }

 private:
  const NetSpec& spec_;
  Tensor<T> x_;
  ParamSet<T> params_;
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

// Guard, not a precision test (the four-way check, gradcheck/fourway.hpp, is that): one step of
// each path from the same problem must give the same loss and the same gradients up to
// rounding. 1e-3 relative to the tensor's largest gradient is far above any rounding of lenet5
// in float and far below what a mismatched problem or parameter order produces (O(1)).
template <class T>
std::string paths_disagree(const NetSpec& spec, const NetValues<T>& v) {
  TapeStep<T> tape(spec, v);
  LayersStep<T> layers(spec, v);
  using std::abs;
  const double ll = static_cast<double>(layers.step());
  const double lt = static_cast<double>(tape.step());
  if (!(abs(lt - ll) <= 1e-3 * abs(ll)))
    return "loss differs: tape " + std::to_string(lt) + ", layers " + std::to_string(ll);
  for (std::size_t i = 0; i < spec.params.size(); ++i) {
    const Tensor<T> gl = layers.grad(i);
    for (const Tensor<T>& g : {tape.grad(i)}) {
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
  std::conditional_t<P == Path::tape, TapeStep<T>, LayersStep<T>> step(spec, v);
  for (auto _ : st) {
    T loss = step.step();
    benchmark::DoNotOptimize(loss);
    benchmark::ClobberMemory();
  }
  st.counters["images/s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(std::string("lenet5 ") +
              (P == Path::tape ? "op tape + VJP kernels" : "hand-written layers"));
}

void step_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "threads"});
  for (index_t n : {64, 2})  // 2: the bench_smoke shape
    for (index_t threads : {1, 2}) b->Args({n, threads});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK_TEMPLATE(BM_train_step, float, Path::tape)->Apply(step_args);
BENCHMARK_TEMPLATE(BM_train_step, float, Path::layers)->Apply(step_args);
BENCHMARK_TEMPLATE(BM_train_step, double, Path::tape)->Apply(step_args);
BENCHMARK_TEMPLATE(BM_train_step, double, Path::layers)->Apply(step_args);

}  // namespace
}  // namespace tapegrad

BENCHMARK_MAIN();
