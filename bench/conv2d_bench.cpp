// conv2d benches: reference vs fast, float and double, forward / backward-data /
// backward-weights, at 1 and 2 OpenMP threads. Names differ only in what is compared, so every
// ratio (fast/ref, 2 threads/1) is one division over the JSON output:
//   BM_conv2d_forward<float, Impl::fast>/N:8/C:64/H:56/W:56/K:64/R:3/S:3/stride:1/pad:1/threads:1
// The reference runs on the small shapes only (it is plain loops, and slow).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <random>

#include "tapegrad/kernels/conv2d_fast.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"

namespace tapegrad {
namespace {

enum class Impl { ref, fast };
enum class Dir { forward, backward_data, backward_weights };

struct BenchShape {
  index_t n, c, h, w, k, r, s, stride, pad;
  bool small;  // the reference is timed too
};

// (N,C,H,W,K,R,S,stride,pad)
constexpr BenchShape shapes[] = {
    {64, 1, 28, 28, 6, 5, 5, 1, 2, true},     // LeNet conv1
    {64, 6, 14, 14, 16, 5, 5, 1, 0, true},    // LeNet conv2
    {8, 64, 56, 56, 64, 3, 3, 1, 1, false},   // ResNet 3x3
    {4, 3, 224, 224, 64, 7, 7, 2, 3, false},  // ResNet stem
    {8, 128, 28, 28, 128, 3, 3, 1, 1, false}, // VGG-ish
    {1, 1, 3, 3, 1, 3, 3, 1, 0, true},        // tutorial tiny
};

Conv2dGeom geom_of(const benchmark::State& st) {
  Conv2dParams prm;
  prm.stride = {st.range(7), st.range(7)};
  prm.pad = {st.range(8), st.range(8)};
  const Shape bs{st.range(4)};
  return make_conv2d_geom(Shape{st.range(0), st.range(1), st.range(2), st.range(3)},
                          Shape{st.range(4), st.range(1), st.range(5), st.range(6)}, &bs, prm);
}

template <class T>
Tensor<T> random_tensor(const Shape& s, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Tensor<T> t(s);
  for (auto& v : t) v = static_cast<T>(u(rng));
  return t;
}

template <class T, Impl I, Dir D>
void run_conv2d(benchmark::State& st) {
  const Conv2dGeom g = geom_of(st);
  omp_set_num_threads(static_cast<int>(st.range(9)));
  std::mt19937 rng(1);
  const auto x = random_tensor<T>(g.x_shape(), rng);
  const auto w = random_tensor<T>(g.w_shape(), rng);
  const auto b = random_tensor<T>(g.b_shape(), rng);
  const auto dy = random_tensor<T>(g.y_shape(), rng);
  Tensor<T> out;
  for (auto _ : st) {
    if constexpr (I == Impl::fast) {
      if constexpr (D == Dir::forward) fast::conv2d_forward_into(g, x, w, &b, out);
      if constexpr (D == Dir::backward_data) fast::conv2d_backward_data_into(g, dy, w, out);
      if constexpr (D == Dir::backward_weights) fast::conv2d_backward_weights_into(g, x, dy, out);
    } else {
      if constexpr (D == Dir::forward) out = ref::conv2d_forward<T>(g, x, w, &b);
      if constexpr (D == Dir::backward_data) out = ref::conv2d_backward_data<T>(g, dy, w);
      if constexpr (D == Dir::backward_weights) out = ref::conv2d_backward_weights<T>(g, x, dy);
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  st.counters["FLOP/s"] =
      benchmark::Counter(g.flops(), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(g.str() + (I == Impl::fast ? std::string(" isa=") + fast::isa() : std::string()));
}

template <class T, Impl I>
void BM_conv2d_forward(benchmark::State& st) { run_conv2d<T, I, Dir::forward>(st); }
template <class T, Impl I>
void BM_conv2d_backward_data(benchmark::State& st) { run_conv2d<T, I, Dir::backward_data>(st); }
template <class T, Impl I>
void BM_conv2d_backward_weights(benchmark::State& st) {
  run_conv2d<T, I, Dir::backward_weights>(st);
}

template <Impl I>
void shape_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "H", "W", "K", "R", "S", "stride", "pad", "threads"});
  for (const auto& s : shapes) {
    if (I == Impl::ref && !s.small) continue;
    for (index_t threads : {1, 2})
      b->Args({s.n, s.c, s.h, s.w, s.k, s.r, s.s, s.stride, s.pad, threads});
  }
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

#define TAPEGRAD_CONV2D_BENCH(FN)                                        \
  BENCHMARK_TEMPLATE(FN, float, Impl::fast)->Apply(shape_args<Impl::fast>);   \
  BENCHMARK_TEMPLATE(FN, double, Impl::fast)->Apply(shape_args<Impl::fast>);  \
  BENCHMARK_TEMPLATE(FN, float, Impl::ref)->Apply(shape_args<Impl::ref>);     \
  BENCHMARK_TEMPLATE(FN, double, Impl::ref)->Apply(shape_args<Impl::ref>);

TAPEGRAD_CONV2D_BENCH(BM_conv2d_forward)
TAPEGRAD_CONV2D_BENCH(BM_conv2d_backward_data)
TAPEGRAD_CONV2D_BENCH(BM_conv2d_backward_weights)
#undef TAPEGRAD_CONV2D_BENCH

}  // namespace
}  // namespace tapegrad

BENCHMARK_MAIN();
