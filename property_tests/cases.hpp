// The case descriptors of the property suite and the generators that BUILD them valid (no
// discarding): every size is chosen from ranges that the earlier choices make valid. Each case
// prints as one line (benchdnn-style descriptor + the values triple), which is what RapidCheck
// shows for a shrunk counterexample.
//
// Sizes are kept small so that the 50-digit type and Var<f50> stay fast: the point is the
// variety of geometries (strides, padding, dilation, groups, 1x1 inputs, kernels as large as
// the padded input), not their size.
#pragma once

#include <rapidcheck.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include "prop_support.hpp"
#include "tapegrad/kernels/geometry.hpp"

namespace tapegrad::props {

// ---------------------------------------------------------------- conv2d
struct Conv2dCase {
  Conv2dGeom g;
  Values values;
  Tensor<double> x, w, b, gy;  // b: shape [k] (ignored without bias); gy: a cotangent of y

  const Tensor<double>* bias() const { return g.has_bias ? &b : nullptr; }
  // The dilated kernel spans the whole padded input in some direction (one output row/col).
  bool kernel_fills_input() const {
    return g.prm.dilation[0] * (g.r - 1) + 1 == g.h + 2 * g.prm.pad[0] ||
           g.prm.dilation[1] * (g.s - 1) + 1 == g.w + 2 * g.prm.pad[1];
  }
  std::string descriptor() const { return g.descriptor() + (g.has_bias ? "b1" : "b0"); }
};

// The same geometry without a bias (for laws about the linear part).
inline Conv2dGeom without_bias(Conv2dGeom g) {
  g.has_bias = false;
  return g;
}

inline void showValue(const Conv2dCase& c, std::ostream& os) {
  os << c.descriptor() << " " << c.values.str() << "\n    " << c.g.str();
}

// One spatial axis: kernel, stride, pad, dilation and an input extent that fits.
struct AxisChoice {
  index_t kernel, stride, pad, dilation, in;
};
inline AxisChoice pick_axis(index_t max_kernel, bool allow_dilation, index_t max_extra = 3) {
  AxisChoice a{};
  a.kernel = *rc::gen::inRange<index_t>(1, max_kernel + 1);
  a.stride = *rc::gen::weightedOneOf<index_t>(
      {{3, rc::gen::just<index_t>(1)}, {2, rc::gen::inRange<index_t>(2, 4)}});
  a.dilation = allow_dilation ? *rc::gen::weightedOneOf<index_t>(
                                    {{3, rc::gen::just<index_t>(1)}, {1, rc::gen::just<index_t>(2)}})
                              : 1;
  a.pad = *rc::gen::weightedElement<index_t>({{3, 0}, {2, 1}, {1, 2}});
  const index_t span = a.dilation * (a.kernel - 1) + 1;
  const index_t min_in = std::max<index_t>(1, span - 2 * a.pad);
  // 1 in 5: the kernel exactly as large as the padded input (when the pad allows it)
  const bool tight = *rc::gen::weightedElement<bool>({{1, true}, {4, false}});
  a.in = tight ? min_in : min_in + *rc::gen::inRange<index_t>(0, max_extra + 1);
  return a;
}

// max_per_group: channels per group (in and out) up to this; max_extra: input extent up to
// this much above the smallest valid one. The defaults keep f50 and Var<f50> fast; the fast-
// kernel properties ask for more to cross the kernels' blocking boundaries.
inline rc::Gen<Conv2dCase> gen_conv2d_case(bool allow_groups = true, index_t max_per_group = 2,
                                           index_t max_extra = 3) {
  return rc::gen::exec([=] {
    Conv2dParams prm;
    prm.groups = allow_groups ? *rc::gen::weightedOneOf<index_t>(
                                    {{4, rc::gen::just<index_t>(1)},
                                     {1, rc::gen::just<index_t>(2)},
                                     {1, rc::gen::just<index_t>(3)}})
                              : 1;
    const index_t cg = *rc::gen::inRange<index_t>(1, max_per_group + 1);
    const index_t kg = *rc::gen::inRange<index_t>(1, max_per_group + 1);
    const index_t n = *rc::gen::inRange<index_t>(1, 3);
    const AxisChoice ah = pick_axis(3, true, max_extra), aw = pick_axis(3, true, max_extra);
    prm.stride = {ah.stride, aw.stride};
    prm.pad = {ah.pad, aw.pad};
    prm.dilation = {ah.dilation, aw.dilation};
    const bool has_bias = *rc::gen::arbitrary<bool>();
    const Shape xs{n, prm.groups * cg, ah.in, aw.in};
    const Shape ws{prm.groups * kg, cg, ah.kernel, aw.kernel};
    const Shape bs{prm.groups * kg};
    Conv2dCase c;
    c.g = make_conv2d_geom(xs, ws, has_bias ? &bs : nullptr, prm);
    c.values = *gen_values();
    c.x = make_tensor(xs, c.values, 1);
    c.w = make_tensor(ws, c.values, 2);
    c.b = make_tensor(bs, c.values, 3);
    c.gy = make_tensor(c.g.y_shape(), c.values, 4);
    return c;
  });
}

inline void classify_conv(const Conv2dCase& c) {
  RC_CLASSIFY(c.g.prm.stride[0] > 1 || c.g.prm.stride[1] > 1, "stride>1");
  RC_CLASSIFY(c.g.prm.pad[0] > 0 || c.g.prm.pad[1] > 0, "padding");
  RC_CLASSIFY(c.g.prm.dilation[0] > 1 || c.g.prm.dilation[1] > 1, "dilation>1");
  RC_CLASSIFY(c.g.prm.groups > 1, "groups>1");
  RC_CLASSIFY(c.g.n > 1, "batch>1");
  RC_CLASSIFY(c.kernel_fills_input(), "kernel=padded input");
  RC_CLASSIFY(c.g.h == 1 || c.g.w == 1, "1-wide input");
  RC_CLASSIFY(c.g.has_bias, "bias");
}

// ---------------------------------------------------------------- linear
struct LinearCase {
  LinearGeom g;
  Values values;
  Tensor<double> x, w, b, gy;
  const Tensor<double>* bias() const { return g.has_bias ? &b : nullptr; }
};

inline void showValue(const LinearCase& c, std::ostream& os) {
  os << c.g.descriptor() << " " << c.values.str() << "\n    " << c.g.str();
}

inline rc::Gen<LinearCase> gen_linear_case() {
  return rc::gen::exec([] {
    const index_t n = *rc::gen::inRange<index_t>(1, 4);
    const index_t in = *rc::gen::inRange<index_t>(1, 8);
    const index_t out = *rc::gen::inRange<index_t>(1, 6);
    const bool has_bias = *rc::gen::arbitrary<bool>();
    const Shape xs{n, in}, ws{out, in}, bs{out};
    LinearCase c;
    c.g = make_linear_geom(xs, ws, has_bias ? &bs : nullptr);
    c.values = *gen_values();
    c.x = make_tensor(xs, c.values, 1);
    c.w = make_tensor(ws, c.values, 2);
    c.b = make_tensor(bs, c.values, 3);
    c.gy = make_tensor(c.g.y_shape(), c.values, 4);
    return c;
  });
}

// ---------------------------------------------------------------- pooling
struct PoolCase {
  Pool2dGeom g;
  Values values;
  Tensor<double> x, gy;
  bool has_ties() const;  // some window's maximum appears twice
  bool kernel_fills_input() const {
    return g.prm.kernel[0] == g.h + 2 * g.prm.pad[0] || g.prm.kernel[1] == g.w + 2 * g.prm.pad[1];
  }
};

inline void showValue(const PoolCase& c, std::ostream& os) {
  os << c.g.descriptor() << " " << c.values.str() << "\n    " << c.g.str();
}

inline rc::Gen<PoolCase> gen_pool_case() {
  return rc::gen::exec([] {
    Pool2dParams prm;
    index_t in[2];
    for (int a = 0; a < 2; ++a) {
      prm.kernel[a] = *rc::gen::inRange<index_t>(1, 4);
      prm.stride[a] = *rc::gen::inRange<index_t>(1, 4);
      prm.pad[a] = *rc::gen::inRange<index_t>(0, prm.kernel[a] / 2 + 1);  // pad <= kernel/2
      const index_t min_in = std::max<index_t>(1, prm.kernel[a] - 2 * prm.pad[a]);
      const bool tight = *rc::gen::weightedElement<bool>({{1, true}, {4, false}});
      in[a] = tight ? min_in : min_in + *rc::gen::inRange<index_t>(0, 5);
    }
    const index_t n = *rc::gen::inRange<index_t>(1, 3);
    const index_t ch = *rc::gen::inRange<index_t>(1, 4);
    const Shape xs{n, ch, in[0], in[1]};
    PoolCase c;
    c.g = make_pool2d_geom(xs, prm, "pool");
    c.values = *gen_values();
    c.x = make_tensor(xs, c.values, 1);
    c.gy = make_tensor(c.g.y_shape(), c.values, 4);
    return c;
  });
}

inline bool PoolCase::has_ties() const {
  for (index_t n = 0; n < g.n; ++n)
    for (index_t ch = 0; ch < g.c; ++ch)
      for (index_t p = 0; p < g.p; ++p)
        for (index_t q = 0; q < g.q; ++q) {
          double m = -1e300;
          int count = 0;
          for (index_t i = 0; i < g.prm.kernel[0]; ++i)
            for (index_t j = 0; j < g.prm.kernel[1]; ++j) {
              const index_t h = p * g.prm.stride[0] - g.prm.pad[0] + i;
              const index_t w = q * g.prm.stride[1] - g.prm.pad[1] + j;
              if (h < 0 || h >= g.h || w < 0 || w >= g.w) continue;
              const double v = x(n, ch, h, w);
              if (v > m) m = v, count = 1;
              else if (v == m) ++count;
            }
          if (count > 1) return true;
        }
  return false;
}

inline void classify_pool(const PoolCase& c) {
  RC_CLASSIFY(c.g.prm.stride[0] > 1 || c.g.prm.stride[1] > 1, "stride>1");
  RC_CLASSIFY(c.g.prm.pad[0] > 0 || c.g.prm.pad[1] > 0, "padding");
  RC_CLASSIFY(c.g.prm.stride[0] < c.g.prm.kernel[0] || c.g.prm.stride[1] < c.g.prm.kernel[1],
              "overlapping windows");
  RC_CLASSIFY(c.g.n > 1, "batch>1");
  RC_CLASSIFY(c.has_ties(), "ties");
  RC_CLASSIFY(c.kernel_fills_input(), "kernel=padded input");
}

// ---------------------------------------------------------------- activations, softmax
// An (N,C,...) tensor of rank 2..4; logits-style scales reach 2^11.
struct ActCase {
  Shape shape;
  Values values;
  Tensor<double> x, gy;
};

inline void showValue(const ActCase& c, std::ostream& os) {
  os << "x" << c.shape.str() << " " << c.values.str();
}

inline rc::Gen<ActCase> gen_act_case(int max_scale = 6) {
  return rc::gen::exec([=] {
    const index_t rank = *rc::gen::inRange<index_t>(2, 5);
    std::vector<index_t> dims{*rc::gen::inRange<index_t>(1, 4), *rc::gen::inRange<index_t>(1, 6)};
    for (index_t d = 2; d < rank; ++d) dims.push_back(*rc::gen::inRange<index_t>(1, 4));
    ActCase c;
    c.shape = Shape(dims);
    c.values = *gen_values(-12, max_scale);
    c.x = make_tensor(c.shape, c.values, 1);
    c.gy = make_tensor(c.shape, c.values, 4);
    return c;
  });
}

// ---------------------------------------------------------------- losses
struct LossCase {
  index_t n = 1, c = 1;
  Values values;
  Tensor<double> logits, target;  // target: mse target of the logits' shape
  std::vector<index_t> labels;    // cross_entropy targets
  double dloss = 1;               // the upstream gradient
};

inline void showValue(const LossCase& c, std::ostream& os) {
  os << "logits[" << c.n << "," << c.c << "] " << c.values.str() << " dloss=" << c.dloss
     << " labels";
  for (index_t t : c.labels) os << " " << t;
}

inline rc::Gen<LossCase> gen_loss_case(int max_scale = 11) {
  return rc::gen::exec([=] {
    LossCase c;
    c.n = *rc::gen::inRange<index_t>(1, 5);
    c.c = *rc::gen::inRange<index_t>(1, 7);
    c.values = *gen_values(-12, max_scale);
    c.logits = make_tensor(Shape{c.n, c.c}, c.values, 1);
    c.target = make_tensor(Shape{c.n, c.c}, c.values, 2);
    for (index_t i = 0; i < c.n; ++i) c.labels.push_back(*rc::gen::inRange<index_t>(0, c.c));
    c.dloss = *rc::gen::element(1.0, -0.5, 3.0);
    return c;
  });
}

}  // namespace tapegrad::props
