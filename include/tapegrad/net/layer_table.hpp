// The ONE table of layer kinds. Everything tapegrad knows about a kind of layer is in its entry
// below, and every part that runs networks reads the table instead of naming a kind:
//
//   the spec parser      name, keys (with defaults), infer (output shape, parameter shapes)
//   the op tape          record    (ops:: on the tape: forward through the fast kernels, VJPs;
//                        fuses_activation / activation: which kinds record as one fused op)
//   hand-written layers  hand_written (a layers::Layer with its own backward loops)
//   the scalar tape/f50  reference (ref:: kernels only: runs on Var<U> and f50)
//   the four-way check   magnitude (the backward pass on magnitudes behind its tolerance),
//                        reduction_length (K of gamma(K)), macs (finite-difference cost),
//                        decide (only kinds that are not differentiable everywhere: which
//                        input each output takes, to find the decisions a precision takes
//                        differently from the 50-digit reference; gradcheck/decisions.hpp)
//   profiles, benches    macs (multiply-adds of a forward pass, 2 * macs flops per direction)
//
// Adding a kind is one struct here and one name in LayerKinds; nothing else changes.
//
// The shapes in a LayerSpec are per sample (batch dimension 1); functions that run on a batch
// take the batch's tensors and rebuild geometries from them. Parameters reach a kind as a span
// in the kind's own order (weight, then bias when the layer has one), never copied.
#pragma once

#include <array>
#include <cassert>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/kernels/activation_ref.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/kernels/linear_ref.hpp"
#include "tapegrad/kernels/pool_ref.hpp"
#include "tapegrad/layers/layers.hpp"
#include "tapegrad/net/keys.hpp"
#include "tapegrad/net/visit.hpp"
#include "tapegrad/ops/ops.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/tape/tape.hpp"

namespace tapegrad {

// A parameter a layer declares: its name suffix ("w", "b"), shape and initialization fan-in.
struct ParamDecl {
  std::string suffix;
  Shape shape;
  index_t fan_in = 1;  // inputs feeding one output (C/groups*R*S or in)
  bool bias = false;
};

// One layer line of a spec, parsed and shape-checked (see net/spec.hpp).
struct LayerSpec {
  int kind = 0;          // index into LayerKinds
  int line = 0;          // 1-based line of the spec text
  std::string name;      // "conv1", "fc2", "relu3", ...: the prefix of parameter names
  Keys keys;             // the kind's options, defaults filled in
  Shape in_shape, out_shape;  // per sample (batch dimension 1)
  std::vector<int> params;    // indices into NetSpec::params, in the kind's order
};

template <class T>
using ParamViews = std::span<const Tensor<T>* const>;
template <class T>
using ParamHandles = std::span<const TapeTensor<T>>;

// What the magnitude pass of a layer sees (all in f50): its input a and output y of the signed
// forward pass, its input of the forward pass on |x| and |params|, and |params|.
struct MagnitudeInputs {
  const Tensor<f50>& a;
  const Tensor<f50>& a_abs;
  const Tensor<f50>& y;
  ParamViews<f50> abs_params;
};

// The decisions of a layer that is not differentiable everywhere (relu, max_pool2d), per
// output element o (the arrays have the output's shape):
//   chosen[o]     the flat index into the layer's input of the element y[o] is, or -1: the
//                 constant 0 (a relu that does not pass its input)
//   runner_up[o]  the candidate it beat: an input index, -1 (the constant 0), or -2 when it
//                 had no rival (a one-element window)
// Both kinds are "the largest of a few candidates": relu(x) = max(0, x) with the zero first, so
// that the zero wins a tie (relu'(0) = 0); max_pool2d takes the first maximum of its window in
// row-major order, padding never a candidate. A decision's margin is value(chosen) -
// value(runner_up) >= 0; within rounding of 0 another precision may decide the other way.
struct Decisions {
  Tensor<index_t> chosen, runner_up;
};

namespace layer_detail {

inline Shape with_batch(const Shape& per_sample, index_t n) {
  std::vector<index_t> d = per_sample.dims();
  d[0] = n;
  return Shape(d);
}

inline Tensor<f50> absolute(const Tensor<f50>& t) {
  return map(t, [](const f50& e) { return f50(abs(e)); });
}

}  // namespace layer_detail

// ---------------------------------------------------------------- conv2d
// y[n,k,p,q] = b[k] + sum_{c,r,s} x[n, g*C/G + c, p*sh - ph + r*dh, q*sw - pw + s*dw] w[k,c,r,s]
struct Conv2dLayer {
  static constexpr std::string_view name = "conv2d";
  static constexpr std::string_view param_prefix = "conv";
  static constexpr std::array<KeySpec, 7> keys{{
      {"out", KeyType::integer, "", "output channels K"},
      {"kernel", KeyType::pair, "", "kernel size R,S"},
      {"stride", KeyType::pair, "1", "stride"},
      {"pad", KeyType::pair, "0", "zero padding"},
      {"dilation", KeyType::pair, "1", "dilation"},
      {"groups", KeyType::integer, "1", "groups (C and K divisible by it)"},
      {"bias", KeyType::boolean, "true", "add a bias per output channel"},
  }};

  static Conv2dParams conv_params(const Keys& k) {
    return Conv2dParams{k.pair("stride"), k.pair("pad"), k.pair("dilation"), k.integer("groups")};
  }
  static bool has_bias(const Keys& k) { return k.boolean("bias"); }
  static Shape weight_shape(const Keys& k, const Shape& in) {
    return Shape{k.integer("out"), in[1] / k.integer("groups"), k.pair("kernel")[0],
                 k.pair("kernel")[1]};
  }
  static Conv2dGeom geom(const LayerSpec& L, const Shape& x) {
    const Shape w = weight_shape(L.keys, L.in_shape), b{L.keys.integer("out")};
    return make_conv2d_geom(x, w, has_bias(L.keys) ? &b : nullptr, conv_params(L.keys), "conv2d");
  }

  static Shape infer(const Keys& k, const Shape& in, std::vector<ParamDecl>& params) {
    check_positive("conv2d", "out", k.integer("out"));
    check_positive("conv2d", "kernel", k.pair("kernel")[0]);
    check_positive("conv2d", "kernel", k.pair("kernel")[1]);
    check_positive("conv2d", "groups", k.integer("groups"));
    check_rank("conv2d", "x", in, 4, "(N,C,H,W) (input must be 'input C H W')");
    check_arg(in[1] % k.integer("groups") == 0, "conv2d", "groups ", k.integer("groups"),
              " does not divide the input channels ", in[1]);
    const Shape w = weight_shape(k, in), b{k.integer("out")};
    const Conv2dGeom g =
        make_conv2d_geom(in, w, has_bias(k) ? &b : nullptr, conv_params(k), "conv2d");
    const index_t fan_in = w[1] * w[2] * w[3];
    params.push_back({"w", w, fan_in, false});
    if (has_bias(k)) params.push_back({"b", b, fan_in, true});
    return g.y_shape();
  }

  // record takes the activation of the layer after it, fused (net/network.hpp)
  static constexpr bool fuses_activation = true;
  template <class T>
  static TapeTensor<T> record(const LayerSpec& L, const TapeTensor<T>& x, ParamHandles<T> p,
                              Activation act = Activation::none) {
    std::optional<TapeTensor<T>> b;
    if (p.size() > 1) b = p[1];
    return ops::conv2d(x, p[0], b, conv_params(L.keys), act);
  }

  template <class T>
  static std::unique_ptr<layers::Layer<T>> hand_written(const LayerSpec& L, ParamViews<T> p) {
    std::optional<Tensor<T>> b;
    if (p.size() > 1) b = *p[1];
    return std::make_unique<layers::Conv2d<T>>(L.name, *p[0], std::move(b), conv_params(L.keys));
  }

  template <class T>
  static Tensor<T> reference(const LayerSpec& L, const Tensor<T>& a, ParamViews<T> p) {
    const Tensor<T>* b = p.size() > 1 ? p[1] : nullptr;
    const Conv2dGeom g =
        make_conv2d_geom(a.shape(), p[0]->shape(), b ? &b->shape() : nullptr, conv_params(L.keys));
    return ref::conv2d_forward(g, a, *p[0], b);
  }

  // d_in = backward_data(|dy|, |w|), dW = backward_weights(A_l, |dy|), db = sum |dy|
  static Tensor<f50> magnitude(const LayerSpec& L, const MagnitudeInputs& m, const Tensor<f50>& d,
                               std::span<Tensor<f50>> dp) {
    const Conv2dGeom g = geom(L, m.a.shape());
    dp[0] = ref::conv2d_backward_weights(g, layer_detail::absolute(m.a_abs), d);
    if (dp.size() > 1) dp[1] = ref::conv2d_backward_bias(g, d);
    return ref::conv2d_backward_data(g, d, *m.abs_params[0]);
  }

  // forward (+ bias), backward-data and backward-weights dot-product lengths
  static index_t reduction_length(const LayerSpec& L, index_t n) {
    const Pair ker = L.keys.pair("kernel");
    const index_t rs = ker[0] * ker[1], groups = L.keys.integer("groups");
    return L.in_shape[1] / groups * rs + 1 + L.out_shape[1] / groups * rs +
           n * L.out_shape[2] * L.out_shape[3];
  }

  static double macs(const LayerSpec& L, index_t n) {
    const Pair ker = L.keys.pair("kernel");
    return static_cast<double>(L.out_shape.numel()) * static_cast<double>(n) *
           static_cast<double>(L.in_shape[1] / L.keys.integer("groups") * ker[0] * ker[1]);
  }
};

// ---------------------------------------------------------------- linear
// y[n,o] = b[o] + sum_i x[n,i] w[o,i]
struct LinearLayer {
  static constexpr std::string_view name = "linear";
  static constexpr std::string_view param_prefix = "fc";
  static constexpr std::array<KeySpec, 2> keys{{
      {"out", KeyType::integer, "", "output features"},
      {"bias", KeyType::boolean, "true", "add a bias per output feature"},
  }};

  static LinearGeom geom(const LayerSpec& L, const Shape& x) {
    const Shape w{L.keys.integer("out"), L.in_shape[1]}, b{L.keys.integer("out")};
    return make_linear_geom(x, w, L.keys.boolean("bias") ? &b : nullptr, "linear");
  }

  static Shape infer(const Keys& k, const Shape& in, std::vector<ParamDecl>& params) {
    check_positive("linear", "out", k.integer("out"));
    check_arg(in.rank() == 2, "linear", "x must be 2-d (N,in), got ", in,
              " (add 'flatten' before it)");
    const Shape w{k.integer("out"), in[1]}, b{k.integer("out")};
    const LinearGeom g = make_linear_geom(in, w, k.boolean("bias") ? &b : nullptr, "linear");
    params.push_back({"w", w, w[1], false});
    if (k.boolean("bias")) params.push_back({"b", b, w[1], true});
    return g.y_shape();
  }

  // record takes the activation of the layer after it, fused (net/network.hpp)
  static constexpr bool fuses_activation = true;
  template <class T>
  static TapeTensor<T> record(const LayerSpec&, const TapeTensor<T>& x, ParamHandles<T> p,
                              Activation act = Activation::none) {
    std::optional<TapeTensor<T>> b;
    if (p.size() > 1) b = p[1];
    return ops::linear(x, p[0], b, act);
  }

  template <class T>
  static std::unique_ptr<layers::Layer<T>> hand_written(const LayerSpec& L, ParamViews<T> p) {
    std::optional<Tensor<T>> b;
    if (p.size() > 1) b = *p[1];
    return std::make_unique<layers::Linear<T>>(L.name, *p[0], std::move(b));
  }

  template <class T>
  static Tensor<T> reference(const LayerSpec&, const Tensor<T>& a, ParamViews<T> p) {
    const Tensor<T>* b = p.size() > 1 ? p[1] : nullptr;
    const LinearGeom g = make_linear_geom(a.shape(), p[0]->shape(), b ? &b->shape() : nullptr);
    return ref::linear_forward(g, a, *p[0], b);
  }

  static Tensor<f50> magnitude(const LayerSpec& L, const MagnitudeInputs& m, const Tensor<f50>& d,
                               std::span<Tensor<f50>> dp) {
    const LinearGeom g = geom(L, m.a.shape());
    dp[0] = ref::linear_backward_weights(g, layer_detail::absolute(m.a_abs), d);
    if (dp.size() > 1) dp[1] = ref::linear_backward_bias(g, d);
    return ref::linear_backward_data(g, d, *m.abs_params[0]);
  }

  static index_t reduction_length(const LayerSpec& L, index_t n) {
    return L.in_shape[1] + 1 + L.out_shape[1] + n;
  }

  static double macs(const LayerSpec& L, index_t n) {
    return static_cast<double>(L.out_shape.numel()) * static_cast<double>(n) *
           static_cast<double>(L.in_shape[1]);
  }
};

// ---------------------------------------------------------------- element-wise activations
// The parts every parameter-free, shape-preserving layer shares.
struct ElementwiseLayer {
  static constexpr std::string_view param_prefix = "";
  static constexpr std::array<KeySpec, 0> keys{};
  static Shape infer(const Keys&, const Shape& in, std::vector<ParamDecl>&) { return in; }
  static double macs(const LayerSpec& L, index_t n) {
    return static_cast<double>(L.in_shape.numel()) * static_cast<double>(n);
  }
};

// y = max(x, 0)   NOTE: relu'(0) = 0
struct ReluLayer : ElementwiseLayer {
  static constexpr std::string_view name = "relu";
  static constexpr Activation activation = Activation::relu;  // fused into a conv2d or linear
  template <class T>
  static TapeTensor<T> record(const LayerSpec&, const TapeTensor<T>& x, ParamHandles<T>) {
    return ops::relu(x);
  }
  template <class T>
  static std::unique_ptr<layers::Layer<T>> hand_written(const LayerSpec&, ParamViews<T>) {
    return std::make_unique<layers::ReLU<T>>();
  }
  template <class T>
  static Tensor<T> reference(const LayerSpec&, const Tensor<T>& a, ParamViews<T>) {
    return ref::relu_forward(a);
  }
  // the routing of the signed forward, applied to |dy|
  static Tensor<f50> magnitude(const LayerSpec&, const MagnitudeInputs& m, const Tensor<f50>& d,
                               std::span<Tensor<f50>>) {
    return ref::relu_backward(m.a, d);
  }
  static index_t reduction_length(const LayerSpec&, index_t) { return 0; }
  // y[i] = a[i] if a[i] > 0, else the 0 (which wins the tie)
  static Decisions decide(const LayerSpec&, const Tensor<f50>& a) {
    Decisions d{Tensor<index_t>(a.shape()), Tensor<index_t>(a.shape())};
    for (index_t i = 0; i < a.numel(); ++i) {
      const bool pass = a[i] > 0;
      d.chosen[i] = pass ? i : -1;
      d.runner_up[i] = pass ? -1 : i;
    }
    return d;
  }
};

// y = 1 / (1 + e^-x)
struct SigmoidLayer : ElementwiseLayer {
  static constexpr std::string_view name = "sigmoid";
  static constexpr Activation activation = Activation::sigmoid;
  template <class T>
  static TapeTensor<T> record(const LayerSpec&, const TapeTensor<T>& x, ParamHandles<T>) {
    return ops::sigmoid(x);
  }
  template <class T>
  static std::unique_ptr<layers::Layer<T>> hand_written(const LayerSpec&, ParamViews<T>) {
    return std::make_unique<layers::Sigmoid<T>>();
  }
  template <class T>
  static Tensor<T> reference(const LayerSpec&, const Tensor<T>& a, ParamViews<T>) {
    return ref::sigmoid_forward(a);
  }
  // |dy| y = |dy| (y(1-y) + y^2): the derivative plus the error of y (1-y)
  static Tensor<f50> magnitude(const LayerSpec&, const MagnitudeInputs& m, const Tensor<f50>& d,
                               std::span<Tensor<f50>>) {
    Tensor<f50> out = d;
    for (index_t i = 0; i < out.numel(); ++i) out[i] *= m.y[i];
    return out;
  }
  // exp (a few ulps) forward, and the (1 - y) products backward
  static index_t reduction_length(const LayerSpec&, index_t) { return 8; }
};

// y = tanh(x)
struct TanhLayer : ElementwiseLayer {
  static constexpr std::string_view name = "tanh";
  static constexpr Activation activation = Activation::tanh;
  template <class T>
  static TapeTensor<T> record(const LayerSpec&, const TapeTensor<T>& x, ParamHandles<T>) {
    return ops::tanh(x);
  }
  template <class T>
  static std::unique_ptr<layers::Layer<T>> hand_written(const LayerSpec&, ParamViews<T>) {
    return std::make_unique<layers::Tanh<T>>();
  }
  template <class T>
  static Tensor<T> reference(const LayerSpec&, const Tensor<T>& a, ParamViews<T>) {
    return ref::tanh_forward(a);
  }
  // |dy| = |dy| ((1-y^2) + y^2)
  static Tensor<f50> magnitude(const LayerSpec&, const MagnitudeInputs&, const Tensor<f50>& d,
                               std::span<Tensor<f50>>) {
    return d;
  }
  static index_t reduction_length(const LayerSpec&, index_t) { return 8; }
};

// ---------------------------------------------------------------- pooling
struct PoolLayer {
  static constexpr std::string_view param_prefix = "";
  static constexpr std::array<KeySpec, 3> keys{{
      {"kernel", KeyType::pair, "", "window size"},
      {"stride", KeyType::pair, "", "stride (default: the kernel, as PyTorch)", "kernel"},
      {"pad", KeyType::pair, "0", "padding (never wins a max pool; zeros for avg)"},
  }};
  static Pool2dParams pool_params(const Keys& k) {
    return Pool2dParams{k.pair("kernel"), k.pair("stride"), k.pair("pad")};
  }
  static double macs(const LayerSpec& L, index_t n) {
    return static_cast<double>(L.in_shape.numel()) * static_cast<double>(n);
  }
};

// y = max over each window   NOTE: ties go to the first maximum in row-major window order
struct MaxPool2dLayer : PoolLayer {
  static constexpr std::string_view name = "max_pool2d";
  static Shape infer(const Keys& k, const Shape& in, std::vector<ParamDecl>&) {
    return make_pool2d_geom(in, pool_params(k), name).y_shape();
  }
  template <class T>
  static TapeTensor<T> record(const LayerSpec& L, const TapeTensor<T>& x, ParamHandles<T>) {
    return ops::max_pool2d(x, pool_params(L.keys));
  }
  template <class T>
  static std::unique_ptr<layers::Layer<T>> hand_written(const LayerSpec& L, ParamViews<T>) {
    return std::make_unique<layers::MaxPool2d<T>>(pool_params(L.keys));
  }
  template <class T>
  static Tensor<T> reference(const LayerSpec& L, const Tensor<T>& a, ParamViews<T>) {
    return ref::max_pool2d_forward(make_pool2d_geom(a.shape(), pool_params(L.keys), name), a);
  }
  // the routing decided on the signed f50 forward, applied to |dy|
  static Tensor<f50> magnitude(const LayerSpec& L, const MagnitudeInputs& m, const Tensor<f50>& d,
                               std::span<Tensor<f50>>) {
    return ref::max_pool2d_backward(make_pool2d_geom(m.a.shape(), pool_params(L.keys), name), m.a,
                                    d);
  }
  static index_t reduction_length(const LayerSpec&, index_t) { return 0; }
  // chosen: the reference's argmax (first maximum); runner_up: the first maximum of the rest
  static Decisions decide(const LayerSpec& L, const Tensor<f50>& a) {
    const Pool2dGeom g = make_pool2d_geom(a.shape(), pool_params(L.keys), name);
    Decisions d{Tensor<index_t>(g.y_shape()), Tensor<index_t>(g.y_shape())};
    index_t o = 0;
    for (index_t n = 0; n < g.n; ++n)
      for (index_t c = 0; c < g.c; ++c)
        for (index_t p = 0; p < g.p; ++p)
          for (index_t q = 0; q < g.q; ++q, ++o) {
            const index_t best = ref::detail::max_pool2d_argmax(g, a, n, c, p, q);
            index_t second = -2;
            for (index_t i = 0; i < g.prm.kernel[0]; ++i) {
              const index_t h = p * g.prm.stride[0] - g.prm.pad[0] + i;
              if (h < 0 || h >= g.h) continue;
              for (index_t j = 0; j < g.prm.kernel[1]; ++j) {
                const index_t w = q * g.prm.stride[1] - g.prm.pad[1] + j;
                if (w < 0 || w >= g.w) continue;
                const index_t at = ((n * g.c + c) * g.h + h) * g.w + w;
                if (at != best && (second < 0 || a[at] > a[second])) second = at;
              }
            }
            d.chosen[o] = best;
            d.runner_up[o] = second;
          }
    return d;
  }
};

// y = window sum / (kh*kw)   (count_include_pad)
struct AvgPool2dLayer : PoolLayer {
  static constexpr std::string_view name = "avg_pool2d";
  static Shape infer(const Keys& k, const Shape& in, std::vector<ParamDecl>&) {
    return make_pool2d_geom(in, pool_params(k), name).y_shape();
  }
  template <class T>
  static TapeTensor<T> record(const LayerSpec& L, const TapeTensor<T>& x, ParamHandles<T>) {
    return ops::avg_pool2d(x, pool_params(L.keys));
  }
  template <class T>
  static std::unique_ptr<layers::Layer<T>> hand_written(const LayerSpec& L, ParamViews<T>) {
    return std::make_unique<layers::AvgPool2d<T>>(pool_params(L.keys));
  }
  template <class T>
  static Tensor<T> reference(const LayerSpec& L, const Tensor<T>& a, ParamViews<T>) {
    return ref::avg_pool2d_forward(make_pool2d_geom(a.shape(), pool_params(L.keys), name), a);
  }
  static Tensor<f50> magnitude(const LayerSpec& L, const MagnitudeInputs& m, const Tensor<f50>& d,
                               std::span<Tensor<f50>>) {
    return ref::avg_pool2d_backward(make_pool2d_geom(m.a.shape(), pool_params(L.keys), name), d);
  }
  static index_t reduction_length(const LayerSpec& L, index_t) {
    const Pair k = L.keys.pair("kernel");
    return 2 * k[0] * k[1];
  }
};

// ---------------------------------------------------------------- flatten
// (N, ...) -> (N, prod rest)
struct FlattenLayer {
  static constexpr std::string_view name = "flatten";
  static constexpr std::string_view param_prefix = "";
  static constexpr std::array<KeySpec, 0> keys{};
  static Shape infer(const Keys&, const Shape& in, std::vector<ParamDecl>&) {
    check_arg(in.rank() >= 2, "flatten", "x must have rank >= 2, got ", in);
    index_t m = 1;
    for (index_t d = 1; d < in.rank(); ++d) m = checked_mul(m, in[d], "flatten");
    return Shape{in[0], m};
  }
  template <class T>
  static TapeTensor<T> record(const LayerSpec&, const TapeTensor<T>& x, ParamHandles<T>) {
    return ops::flatten(x);
  }
  template <class T>
  static std::unique_ptr<layers::Layer<T>> hand_written(const LayerSpec&, ParamViews<T>) {
    return std::make_unique<layers::Flatten<T>>();
  }
  template <class T>
  static Tensor<T> reference(const LayerSpec&, const Tensor<T>& a, ParamViews<T>) {
    return ref::flatten_forward(a);
  }
  static Tensor<f50> magnitude(const LayerSpec&, const MagnitudeInputs& m, const Tensor<f50>& d,
                               std::span<Tensor<f50>>) {
    return d.reshaped(m.a.shape());
  }
  static index_t reduction_length(const LayerSpec&, index_t) { return 0; }
  static double macs(const LayerSpec& L, index_t n) {
    return static_cast<double>(L.in_shape.numel()) * static_cast<double>(n);
  }
};

// ---------------------------------------------------------------- the table
using LayerKinds = std::tuple<Conv2dLayer, LinearLayer, ReluLayer, SigmoidLayer, TanhLayer,
                              MaxPool2dLayer, AvgPool2dLayer, FlattenLayer>;
inline constexpr int num_layer_kinds = static_cast<int>(std::tuple_size_v<LayerKinds>);

// Calls f(Kind{}) with the entry of `kind` (an index into LayerKinds); f returns the same type
// for every kind.
template <class F>
decltype(auto) visit_layer_kind(int kind, F&& f) {
  return visit_kind<LayerKinds>(kind, std::forward<F>(f));
}

// The index of the kind named `name`, or -1.
inline int find_layer_kind(std::string_view name) { return find_kind<LayerKinds>(name); }

inline std::string_view layer_kind_name(int kind) {
  return visit_layer_kind(kind, [](auto k) { return decltype(k)::name; });
}

// "conv2d, linear, relu, ..." for messages and help.
inline std::string layer_kind_list() {
  std::string s;
  for (int k = 0; k < num_layer_kinds; ++k) {
    if (k) s += ", ";
    s += layer_kind_name(k);
  }
  return s;
}

}  // namespace tapegrad
