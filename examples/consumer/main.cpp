// A user of tapegrad: "my" conv2d kernels, written on raw float buffers with no tapegrad types,
// checked against the 50-digit reference through the raw-buffer oracle, plus a hand-written
// gradient of a small function checked with the generic gradcheck.
//
//   consumer good    checks the correct kernels:        exit 0 when all pass
//   consumer wrong   checks a backward-data kernel that ignores dilation:
//                    prints the oracle's report, exit 1 when the oracle catches it
//   consumer         both; exit 0 when the good ones pass and the wrong one is caught
#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace {

// ---- "my" kernels: NCHW activations, KCRS weights, groups = 1, on raw pointers -----------
struct MyConv {
  int n, c, h, w, k, r, s, stride, pad, dil, p, q;
  bool ignore_dilation = false;  // the bug: taps indexed as if dilation were 1

  int x_at(int a, int ch, int y, int x) const { return ((a * c + ch) * h + y) * w + x; }
  int y_at(int a, int o, int y, int x) const { return ((a * k + o) * p + y) * q + x; }
  int w_at(int o, int ch, int y, int x) const { return ((o * c + ch) * r + y) * s + x; }
  int tap(int out, int t) const { return out * stride - pad + t * (ignore_dilation ? 1 : dil); }

  void forward(const float* x, const float* wt, const float* b, float* y) const {
    for (int a = 0; a < n; ++a)
      for (int o = 0; o < k; ++o)
        for (int py = 0; py < p; ++py)
          for (int qx = 0; qx < q; ++qx) {
            float acc = b ? b[o] : 0.0f;
            for (int ch = 0; ch < c; ++ch)
              for (int ty = 0; ty < r; ++ty)
                for (int tx = 0; tx < s; ++tx) {
                  const int iy = tap(py, ty), ix = tap(qx, tx);
                  if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                  acc += x[x_at(a, ch, iy, ix)] * wt[w_at(o, ch, ty, tx)];
                }
            y[y_at(a, o, py, qx)] = acc;
          }
  }
  // dx = conv2d_backward_data(dy, w), scatter form; overwrites dx.
  void backward_data(const float* dy, const float* wt, float* dx) const {
    for (int i = 0; i < n * c * h * w; ++i) dx[i] = 0.0f;
    for (int a = 0; a < n; ++a)
      for (int o = 0; o < k; ++o)
        for (int py = 0; py < p; ++py)
          for (int qx = 0; qx < q; ++qx)
            for (int ch = 0; ch < c; ++ch)
              for (int ty = 0; ty < r; ++ty)
                for (int tx = 0; tx < s; ++tx) {
                  const int iy = tap(py, ty), ix = tap(qx, tx);
                  if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                  dx[x_at(a, ch, iy, ix)] += dy[y_at(a, o, py, qx)] * wt[w_at(o, ch, ty, tx)];
                }
  }
};

// x [2,3,7,7], w [4,3,3,3], stride 1, pad 2, dilation 2: a "same"-size dilated conv.
tapegrad::oracle::Conv2dProblem problem() {
  tapegrad::oracle::Conv2dProblem pr;
  pr.x = {2, 3, 7, 7};
  pr.w = {4, 3, 3, 3};
  pr.params.stride = {1, 1};
  pr.params.pad = {2, 2};
  pr.params.dilation = {2, 2};
  pr.bias = true;
  return pr;
}
MyConv my_conv(bool buggy) { return MyConv{2, 3, 7, 7, 4, 3, 3, 1, 2, 2, 7, 7, buggy}; }

// A function written once for any scalar type S, and its gradient by hand (in double).
struct SoftplusDot {
  template <class S>
  S operator()(const std::vector<tapegrad::Tensor<S>>& in) const {
    using std::exp;
    using std::log;
    S acc(0);  // sum_i log(1 + exp(x_i * w_i))
    for (tapegrad::index_t i = 0; i < in[0].numel(); ++i)
      acc += log(S(1) + exp(in[0][i] * in[1][i]));
    return acc;
  }
};

bool run_good() {
  using namespace tapegrad;
  const MyConv conv = my_conv(false);
  const oracle::Conv2dProblem pr = problem();
  const auto fwd = oracle::check_conv2d_forward(
      pr, [&](const float* x, const float* w, const float* b, float* y) {
        conv.forward(x, w, b, y);
      });
  const auto bwd = oracle::check_conv2d_backward_data(
      pr, [&](const float* dy, const float* w, float* dx) { conv.backward_data(dy, w, dx); });
  std::cout << "== my conv2d forward\n";
  fwd.print(std::cout);
  std::cout << "== my conv2d backward-data\n";
  bwd.print(std::cout);

  // A hand-written gradient of SoftplusDot, checked against the scalar tape in 50 digits.
  Tensor<double> x(Shape{6}), w(Shape{6});
  for (index_t i = 0; i < 6; ++i) x[i] = 0.3 * double(i) - 0.7, w[i] = 0.5 - 0.2 * double(i);
  Tensor<double> dx(x.shape()), dw(w.shape());
  for (index_t i = 0; i < 6; ++i) {
    const double sig = 1 / (1 + std::exp(-x[i] * w[i]));  // d/dz log(1 + e^z) = sigmoid(z)
    dx[i] = sig * w[i];
    dw[i] = sig * x[i];
  }
  const auto g = gradcheck::gradcheck(SoftplusDot{}, {x, w}, {dx, dw});
  std::cout << "== my gradient of sum log(1 + exp(x*w))\n";
  g.print(std::cout);
  return fwd.passed() && bwd.passed() && g.passed();
}

// Returns true when the oracle catches the dilation bug.
bool run_wrong() {
  using namespace tapegrad;
  const MyConv conv = my_conv(true);
  const auto rep = oracle::check_conv2d_backward_data(
      problem(),
      [&](const float* dy, const float* w, float* dx) { conv.backward_data(dy, w, dx); });
  std::cout << "== my conv2d backward-data that ignores dilation\n";
  rep.print(std::cout);
  return !rep.passed();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "both";
  if (mode == "good") return run_good() ? 0 : 1;
  if (mode == "wrong") return run_wrong() ? 1 : 0;  // 1: caught (the report says FAIL)
  const bool good = run_good();
  const bool caught = run_wrong();
  std::cout << "good kernels " << (good ? "passed" : "FAILED") << "; wrong kernel "
            << (caught ? "caught" : "NOT caught") << "\n";
  return good && caught ? 0 : 1;
}
