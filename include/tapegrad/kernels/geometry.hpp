// Geometries of the windowed ops, validated once at the entry point and then trusted by the
// kernels (reference and fast alike). A geometry prints one way everywhere (errors, bench
// labels, property counterexamples):
//   x[2,3,8,8] w[4,3,3,3] stride=(1,1) pad=(1,1) dilation=(1,1) groups=1 -> y[2,4,8,8]
// and has a compact benchdnn-style descriptor:
//   mb2ic3ih8iw8oc4kh3kw3sh1sw1ph1pw1dh1dw1g1
#pragma once

#include <array>
#include <string>

#include "tapegrad/errors.hpp"
#include "tapegrad/shape.hpp"

namespace tapegrad {

using Pair = std::array<index_t, 2>;  // (height, width)

inline std::string pair_str(const Pair& p) {
  // Appended piece by piece: the `"(" + std::to_string(...)` form trips GCC 12's false
  // -Wrestrict at -O3 (GCC bug 105651).
  std::string s = "(";
  s += std::to_string(p[0]);
  s += ',';
  s += std::to_string(p[1]);
  s += ')';
  return s;
}

struct Conv2dParams {
  Pair stride{1, 1};
  Pair pad{0, 0};
  Pair dilation{1, 1};
  index_t groups = 1;
};

// Output extent of a window sweep, as PyTorch computes it (floor mode):
//   p = floor((h + 2*pad - dilation*(r-1) - 1) / stride) + 1
inline index_t window_out_size(index_t in, index_t kernel, index_t stride, index_t pad,
                               index_t dilation) {
  return (in + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1;
}

struct Conv2dGeom {
  index_t n = 0, c = 0, h = 0, w = 0;  // x (N,C,H,W)
  index_t k = 0, r = 0, s = 0;         // w (K, C/groups, R, S)
  index_t p = 0, q = 0;                // y (N,K,P,Q)
  Conv2dParams prm;
  bool has_bias = false;

  index_t groups() const { return prm.groups; }
  index_t c_per_group() const { return c / prm.groups; }
  index_t k_per_group() const { return k / prm.groups; }
  Shape x_shape() const { return {n, c, h, w}; }
  Shape w_shape() const { return {k, c / prm.groups, r, s}; }
  Shape b_shape() const { return {k}; }
  Shape y_shape() const { return {n, k, p, q}; }
  // Multiply-adds of one direction (forward, backward-data or backward-weights) times 2.
  double flops() const {
    return 2.0 * double(n) * double(k) * double(c_per_group()) * double(r) * double(s) *
           double(p) * double(q);
  }

  std::string str() const {
    std::string s = "x";  // appended piece by piece, see pair_str
    s += x_shape().str();
    s += " w";
    s += w_shape().str();
    s += " stride=";
    s += pair_str(prm.stride);
    s += " pad=";
    s += pair_str(prm.pad);
    s += " dilation=";
    s += pair_str(prm.dilation);
    s += " groups=";
    s += std::to_string(prm.groups);
    s += " -> y";
    s += y_shape().str();
    return s;
  }
  std::string descriptor() const {
    auto t = [](const char* k, index_t v) { return std::string(k) + std::to_string(v); };
    return t("mb", n) + t("ic", c) + t("ih", h) + t("iw", w) + t("oc", k) + t("kh", r) +
           t("kw", s) + t("sh", prm.stride[0]) + t("sw", prm.stride[1]) + t("ph", prm.pad[0]) +
           t("pw", prm.pad[1]) + t("dh", prm.dilation[0]) + t("dw", prm.dilation[1]) +
           t("g", prm.groups);
  }
};

// Validates shapes and parameters of conv2d(x, w, b) and computes the output size.
// b_shape is nullptr when there is no bias.
inline Conv2dGeom make_conv2d_geom(const Shape& x, const Shape& w, const Shape* b,
                                   const Conv2dParams& prm, std::string_view op = "conv2d") {
  check_rank(op, "x", x, 4, "(N,C,H,W)");
  check_rank(op, "w", w, 4, "(K,C/groups,R,S)");
  for (int a = 0; a < 2; ++a) {
    check_positive(op, a ? "stride (width)" : "stride (height)", prm.stride[a]);
    check_positive(op, a ? "dilation (width)" : "dilation (height)", prm.dilation[a]);
    check_non_negative(op, a ? "pad (width)" : "pad (height)", prm.pad[a]);
  }
  check_positive(op, "groups", prm.groups);
  Conv2dGeom g;
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  g.k = w[0], g.r = w[2], g.s = w[3];
  g.prm = prm;
  check_arg(g.n > 0 && g.c > 0 && g.h > 0 && g.w > 0, op, "x has an empty dimension (x ", x,
            ")");
  check_arg(g.k > 0 && g.r > 0 && g.s > 0 && w[1] > 0, op, "w has an empty dimension (w ", w,
            ")");
  check_arg(g.c % prm.groups == 0, op, "groups ", prm.groups, " does not divide x channels ", g.c,
            " (x ", x, ")");
  check_arg(g.k % prm.groups == 0, op, "groups ", prm.groups, " does not divide w out-channels ",
            g.k, " (w ", w, ")");
  check_arg(w[1] == g.c / prm.groups, op, "w in-channels is ", w[1], ", expected ",
            g.c / prm.groups, " = x channels / groups (x ", x, ", w ", w, ")");
  const Pair in{g.h, g.w}, ker{g.r, g.s};
  Pair out{};
  for (int a = 0; a < 2; ++a) {
    // Size arithmetic in checked form: padded extent and dilated kernel extent.
    const index_t padded = checked_add(in[a], checked_mul(2, prm.pad[a], "conv2d pad"), "conv2d");
    const index_t span = checked_add(checked_mul(prm.dilation[a], ker[a] - 1, "conv2d"), 1);
    if (span > padded)  // (fail_arg, not check_arg: pair_str's text only when it fails)
      fail_arg(op, "dilated kernel ", a ? "width " : "height ", span,
               " is larger than the padded input ", a ? "width " : "height ", padded, " (x ", x,
               ", w ", w, ", pad=", pair_str(prm.pad), ", dilation=", pair_str(prm.dilation), ")");
    out[a] = (padded - span) / prm.stride[a] + 1;
  }
  g.p = out[0], g.q = out[1];
  (void)Shape({g.n, g.k, g.p, g.q});  // overflow check of the output size
  if (b) {
    check_shape(op, "b", *b, Shape{g.k});
    g.has_bias = true;
  }
  return g;
}

struct Pool2dParams {
  Pair kernel{2, 2};
  Pair stride{2, 2};
  Pair pad{0, 0};
};

struct Pool2dGeom {
  index_t n = 0, c = 0, h = 0, w = 0;
  index_t p = 0, q = 0;
  Pool2dParams prm;

  Shape x_shape() const { return {n, c, h, w}; }
  Shape y_shape() const { return {n, c, p, q}; }
  std::string str() const {
    std::string s = "x";  // appended piece by piece, see pair_str
    s += x_shape().str();
    s += " kernel=";
    s += pair_str(prm.kernel);
    s += " stride=";
    s += pair_str(prm.stride);
    s += " pad=";
    s += pair_str(prm.pad);
    s += " -> y";
    s += y_shape().str();
    return s;
  }
  std::string descriptor() const {
    auto t = [](const char* k, index_t v) { return std::string(k) + std::to_string(v); };
    return t("mb", n) + t("ic", c) + t("ih", h) + t("iw", w) + t("kh", prm.kernel[0]) +
           t("kw", prm.kernel[1]) + t("sh", prm.stride[0]) + t("sw", prm.stride[1]) +
           t("ph", prm.pad[0]) + t("pw", prm.pad[1]);
  }
};

// Validates max_pool2d / avg_pool2d. As in PyTorch: pad at most half the kernel (so every
// window overlaps the real input), floor-mode output size.
inline Pool2dGeom make_pool2d_geom(const Shape& x, const Pool2dParams& prm, std::string_view op) {
  check_rank(op, "x", x, 4, "(N,C,H,W)");
  Pool2dGeom g;
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  g.prm = prm;
  check_arg(g.n > 0 && g.c > 0 && g.h > 0 && g.w > 0, op, "x has an empty dimension (x ",
            x, ")");
  const Pair in{g.h, g.w};
  Pair out{};
  for (int a = 0; a < 2; ++a) {
    check_positive(op, a ? "kernel (width)" : "kernel (height)", prm.kernel[a]);
    check_positive(op, a ? "stride (width)" : "stride (height)", prm.stride[a]);
    check_non_negative(op, a ? "pad (width)" : "pad (height)", prm.pad[a]);
    if (2 * prm.pad[a] > prm.kernel[a])  // (fail_arg: pair_str's text only when it fails)
      fail_arg(op, "pad ", pair_str(prm.pad), " must be at most half the kernel ",
               pair_str(prm.kernel));
    const index_t padded = checked_add(in[a], checked_mul(2, prm.pad[a], "pool pad"), "pool");
    if (prm.kernel[a] > padded)
      fail_arg(op, "kernel ", pair_str(prm.kernel), " is larger than the padded input (x ", x,
               ", pad=", pair_str(prm.pad), ")");
    out[a] = (padded - prm.kernel[a]) / prm.stride[a] + 1;
  }
  g.p = out[0], g.q = out[1];
  return g;
}

// linear(x, w, b) = x w^T + b, PyTorch layout: x (N,in), w (out,in), b (out) -> y (N,out).
struct LinearGeom {
  index_t n = 0, in = 0, out = 0;
  bool has_bias = false;

  Shape x_shape() const { return {n, in}; }
  Shape w_shape() const { return {out, in}; }
  Shape b_shape() const { return {out}; }
  Shape y_shape() const { return {n, out}; }
  // Multiply-adds of one direction (forward, backward-data or backward-weights) times 2.
  double flops() const { return 2.0 * double(n) * double(in) * double(out); }

  // "x[2,3] w[4,3] b[4] -> y[2,4]" (the b part only with a bias)
  std::string str() const {
    std::string s = "x";  // appended piece by piece, see pair_str
    s += x_shape().str();
    s += " w";
    s += w_shape().str();
    if (has_bias) {
      s += " b";
      s += b_shape().str();
    }
    s += " -> y";
    s += y_shape().str();
    return s;
  }
  std::string descriptor() const {
    auto t = [](const char* k, index_t v) { return std::string(k) + std::to_string(v); };
    return t("mb", n) + t("ic", in) + t("oc", out) + t("b", has_bias ? 1 : 0);
  }
};

// Validates shapes of linear(x, w, b); b is nullptr when there is no bias.
inline LinearGeom make_linear_geom(const Shape& x, const Shape& w, const Shape* b,
                                   std::string_view op = "linear") {
  check_rank(op, "x", x, 2, "(N,in)");
  check_rank(op, "w", w, 2, "(out,in)");
  check_arg(x[0] > 0 && x[1] > 0, op, "x has an empty dimension (x ", x, ")");
  check_arg(w[0] > 0 && w[1] > 0, op, "w has an empty dimension (w ", w, ")");
  check_arg(w[1] == x[1], op, "w in-features is ", w[1], ", expected ", x[1],
            " = x features (x ", x, ", w ", w, ")");
  LinearGeom g;
  g.n = x[0], g.in = x[1], g.out = w[0];
  (void)Shape({g.n, g.out});  // overflow check of the output size
  if (b) {
    check_shape(op, "b", *b, Shape{g.out});
    g.has_bias = true;
  }
  return g;
}

}  // namespace tapegrad
