// The two engines of `tapegrad ref` side by side: the exact engine (kernels/conv2d_exact.hpp)
// and the 50-digit reference (ref::conv2d_* on f50 tensors, then rounded once) -- the same
// bits, at very different speeds. conv2d forward / backward-data / backward-weights, double
// outputs, 1 and 2 OpenMP threads (the f50 engine is single-threaded: it ignores them):
//   BM_exact_conv2d_forward<Engine::exact>/N:8/C:64/H:56/W:56/K:64/R:3/S:3/stride:1/pad:1/threads:1
// FLOP/s counts 2*N*K*C*R*S*P*Q per direction, as conv2d_bench does; `fallbacks` is the number
// of elements the exact engine sent to the 50-digit fallback. The f50 engine runs on the
// small shapes only (the ResNet layer takes it minutes).
#include <benchmark/benchmark.h>
#include <omp.h>

#include "tapegrad/io/npy.hpp"
#include "tapegrad/kernels/conv2d_exact.hpp"
#include "tapegrad/kernels/conv2d_fast.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/random.hpp"

namespace tapegrad {
namespace {

enum class Engine { exact, f50 };
enum class Dir { forward, backward_data, backward_weights };

struct BenchShape {
  index_t n, c, h, w, k, r, s, stride, pad;
  bool small;  // the f50 engine is timed too
};

// (N,C,H,W,K,R,S,stride,pad)
constexpr BenchShape shapes[] = {
    {1, 1, 3, 3, 1, 3, 3, 1, 0, true},       // tutorial tiny
    {64, 6, 14, 14, 16, 5, 5, 1, 0, false},  // LeNet conv2
    {8, 16, 28, 28, 32, 3, 3, 1, 1, true},   // issue 13's small problem
    {8, 64, 56, 56, 64, 3, 3, 1, 1, false},  // ResNet 3x3 (issue 13's large problem)
};

Conv2dGeom geom_of(const benchmark::State& st) {
  Conv2dParams prm;
  prm.stride = {st.range(7), st.range(7)};
  prm.pad = {st.range(8), st.range(8)};
  const Shape bs{st.range(4)};
  return make_conv2d_geom(Shape{st.range(0), st.range(1), st.range(2), st.range(3)},
                          Shape{st.range(4), st.range(1), st.range(5), st.range(6)}, &bs, prm);
}

// The f50 engine: the reference on f50 tensors, rounded once to double, as tapegrad ref does.
Tensor<double> rounded(const Tensor<f50>& t) {
  return map(t, [](const f50& v) { return io::round_to_double(v); });
}

template <Engine E, Dir D>
void run(benchmark::State& st) {
  const Conv2dGeom g = geom_of(st);
  omp_set_num_threads(static_cast<int>(st.range(9)));
  Rng rng(1);
  const auto x = uniform_tensor<double>(g.x_shape(), rng, -1, 1);
  const auto w = uniform_tensor<double>(g.w_shape(), rng, -1, 1);
  const auto b = uniform_tensor<double>(g.b_shape(), rng, -1, 1);
  const auto dy = uniform_tensor<double>(g.y_shape(), rng, -1, 1);
  exact::Stats stats;
  Tensor<double> out;
  for (auto _ : st) {
    if constexpr (E == Engine::exact) {
      using Tag = exact::Nearest<double>;
      if constexpr (D == Dir::forward) out = exact::conv2d_forward<Tag>(g, x, w, &b, &stats);
      if constexpr (D == Dir::backward_data)
        out = exact::conv2d_backward_data<Tag>(g, dy, w, &stats);
      if constexpr (D == Dir::backward_weights)
        out = exact::conv2d_backward_weights<Tag>(g, x, dy, &stats);
    } else {
      // Converting the inputs to f50 is part of the engine's work, as in tapegrad ref.
      const Tensor<f50> x5 = x.cast<f50>(), w5 = w.cast<f50>(), b5 = b.cast<f50>(),
                        dy5 = dy.cast<f50>();
      if constexpr (D == Dir::forward) out = rounded(ref::conv2d_forward(g, x5, w5, &b5));
      if constexpr (D == Dir::backward_data) out = rounded(ref::conv2d_backward_data(g, dy5, w5));
      if constexpr (D == Dir::backward_weights)
        out = rounded(ref::conv2d_backward_weights(g, x5, dy5));
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  st.counters["FLOP/s"] =
      benchmark::Counter(g.flops(), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["fallbacks"] = benchmark::Counter(static_cast<double>(stats.fallbacks),
                                                benchmark::Counter::kAvgIterations);
  st.SetLabel(g.str() +
              (E == Engine::exact ? std::string(" isa=") + fast::isa() : std::string(" f50")));
}

template <Engine E>
void BM_exact_conv2d_forward(benchmark::State& st) { run<E, Dir::forward>(st); }
template <Engine E>
void BM_exact_conv2d_backward_data(benchmark::State& st) { run<E, Dir::backward_data>(st); }
template <Engine E>
void BM_exact_conv2d_backward_weights(benchmark::State& st) { run<E, Dir::backward_weights>(st); }

template <Engine E>
void shape_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "H", "W", "K", "R", "S", "stride", "pad", "threads"});
  for (const auto& s : shapes) {
    if (E == Engine::f50 && !s.small) continue;
    for (index_t threads : {1, 2}) {
      if (E == Engine::f50 && threads > 1) continue;  // single-threaded
      b->Args({s.n, s.c, s.h, s.w, s.k, s.r, s.s, s.stride, s.pad, threads});
    }
  }
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

#define TAPEGRAD_EXACT_BENCH(FN)                                             \
  BENCHMARK_TEMPLATE(FN, Engine::exact)->Apply(shape_args<Engine::exact>);   \
  BENCHMARK_TEMPLATE(FN, Engine::f50)->Apply(shape_args<Engine::f50>);

TAPEGRAD_EXACT_BENCH(BM_exact_conv2d_forward)
TAPEGRAD_EXACT_BENCH(BM_exact_conv2d_backward_data)
TAPEGRAD_EXACT_BENCH(BM_exact_conv2d_backward_weights)
#undef TAPEGRAD_EXACT_BENCH

}  // namespace
}  // namespace tapegrad

BENCHMARK_MAIN();
