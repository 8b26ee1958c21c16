// Hand-written layers: the tutorial's method, done right. Each layer has forward(x), which
// caches what its backward needs, and backward(dy), which returns dx and *sets* the layer's
// parameter gradients. The backward math is written here as plain loops (scatter form, in a
// different order from the reference kernels' gathers), never through the tape or the
// backward kernels: the layers are an independent check on the op tape's VJPs. Forward passes
// call the forward dispatch kernels. Generic over T (float, double, f50).
//
// Conventions shared with the kernels (NOTE): relu'(0) = 0; max-pool routes the gradient to
// the first maximum in row-major window order, and padding never wins; avg-pool divides by
// kh*kw (count_include_pad).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/kernels/activation.hpp"
#include "tapegrad/kernels/conv2d.hpp"
#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/kernels/linear.hpp"
#include "tapegrad/kernels/loss.hpp"
#include "tapegrad/kernels/pool.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::layers {

// A parameter of a layer: its value and the gradient the last backward() set.
template <class T>
struct ParamRef {
  std::string name;
  Tensor<T>* value;
  Tensor<T>* grad;
};

template <class T>
class Layer {
 public:
  virtual ~Layer() = default;
  virtual const char* kind() const = 0;
  virtual Tensor<T> forward(const Tensor<T>& x) = 0;
  // dy has the shape of the last forward's output; returns dx of the last forward's input.
  virtual Tensor<T> backward(const Tensor<T>& dy) = 0;
  virtual std::vector<ParamRef<T>> params() { return {}; }
};

namespace detail {
inline void check_backward_shape(const char* layer, const Shape& dy, const Shape& expected) {
  check_shape(layer, "dy", dy, expected);
}
}  // namespace detail

// y[n,k,p,q] = b[k] + sum_{c,r,s} x[n, g*Cg + c, p*sh - ph + r*dh, q*sw - pw + s*dw] w[k,c,r,s]
template <class T>
class Conv2d : public Layer<T> {
 public:
  Conv2d(std::string name, Tensor<T> w, std::optional<Tensor<T>> b, Conv2dParams prm = {})
      : name_(std::move(name)), w_(std::move(w)), b_(std::move(b)), prm_(prm),
        dw_(w_.shape()), db_(b_ ? b_->shape() : Shape{0}) {
    check_rank("Conv2d", "w", w_.shape(), 4, "(K,C/groups,R,S)");
  }
  const char* kind() const override { return "conv2d"; }

  Tensor<T> forward(const Tensor<T>& x) override {
    g_ = make_conv2d_geom(x.shape(), w_.shape(), b_ ? &b_->shape() : nullptr, prm_, "Conv2d");
    x_ = x;
    return kernels::conv2d_forward(g_, x, w_, b_ ? &*b_ : nullptr);
  }

  // Each output gradient dy[n,k,p,q] is scattered to every input and weight it touched:
  //   dx[n, c0+c, h, w] += dy * w[k,c,r,s];  dw[k,c,r,s] += dy * x[n, c0+c, h, w];  db[k] += dy
  Tensor<T> backward(const Tensor<T>& dy) override {
    detail::check_backward_shape("Conv2d", dy.shape(), g_.y_shape());
    const index_t cg = g_.c_per_group(), kg = g_.k_per_group();
    Tensor<T> dx(g_.x_shape());
    dw_ = Tensor<T>(w_.shape());
    if (b_) db_ = Tensor<T>(b_->shape());
    for (index_t n = 0; n < g_.n; ++n)
      for (index_t k = 0; k < g_.k; ++k) {
        const index_t c0 = (k / kg) * cg;
        for (index_t p = 0; p < g_.p; ++p)
          for (index_t q = 0; q < g_.q; ++q) {
            const T& d = dy(n, k, p, q);
            if (b_) db_[k] += d;
            for (index_t c = 0; c < cg; ++c)
              for (index_t r = 0; r < g_.r; ++r) {
                const index_t h = p * g_.prm.stride[0] - g_.prm.pad[0] + r * g_.prm.dilation[0];
                if (h < 0 || h >= g_.h) continue;
                for (index_t s = 0; s < g_.s; ++s) {
                  const index_t w = q * g_.prm.stride[1] - g_.prm.pad[1] + s * g_.prm.dilation[1];
                  if (w < 0 || w >= g_.w) continue;
                  dx(n, c0 + c, h, w) += d * w_(k, c, r, s);
                  dw_(k, c, r, s) += d * x_(n, c0 + c, h, w);
                }
              }
          }
      }
    return dx;
  }

  std::vector<ParamRef<T>> params() override {
    std::vector<ParamRef<T>> ps{{name_ + ".w", &w_, &dw_}};
    if (b_) ps.push_back({name_ + ".b", &*b_, &db_});
    return ps;
  }

 private:
  std::string name_;
  Tensor<T> w_;
  std::optional<Tensor<T>> b_;
  Conv2dParams prm_;
  Tensor<T> dw_, db_;
  Conv2dGeom g_;
  Tensor<T> x_;
};

// y[n,o] = b[o] + sum_i x[n,i] w[o,i]
template <class T>
class Linear : public Layer<T> {
 public:
  Linear(std::string name, Tensor<T> w, std::optional<Tensor<T>> b)
      : name_(std::move(name)), w_(std::move(w)), b_(std::move(b)), dw_(w_.shape()),
        db_(b_ ? b_->shape() : Shape{0}) {
    check_rank("Linear", "w", w_.shape(), 2, "(out,in)");
  }
  const char* kind() const override { return "linear"; }

  Tensor<T> forward(const Tensor<T>& x) override {
    g_ = make_linear_geom(x.shape(), w_.shape(), b_ ? &b_->shape() : nullptr, "Linear");
    x_ = x;
    return kernels::linear_forward(g_, x, w_, b_ ? &*b_ : nullptr);
  }

  // dx[n,i] += dy[n,o] w[o,i];  dw[o,i] += dy[n,o] x[n,i];  db[o] += dy[n,o]
  Tensor<T> backward(const Tensor<T>& dy) override {
    detail::check_backward_shape("Linear", dy.shape(), g_.y_shape());
    Tensor<T> dx(g_.x_shape());
    dw_ = Tensor<T>(w_.shape());
    if (b_) db_ = Tensor<T>(b_->shape());
    for (index_t n = 0; n < g_.n; ++n)
      for (index_t o = 0; o < g_.out; ++o) {
        const T& d = dy(n, o);
        if (b_) db_[o] += d;
        for (index_t i = 0; i < g_.in; ++i) {
          dx(n, i) += d * w_(o, i);
          dw_(o, i) += d * x_(n, i);
        }
      }
    return dx;
  }

  std::vector<ParamRef<T>> params() override {
    std::vector<ParamRef<T>> ps{{name_ + ".w", &w_, &dw_}};
    if (b_) ps.push_back({name_ + ".b", &*b_, &db_});
    return ps;
  }

 private:
  std::string name_;
  Tensor<T> w_;
  std::optional<Tensor<T>> b_;
  Tensor<T> dw_, db_;
  LinearGeom g_;
  Tensor<T> x_;
};

// dx = dy where x > 0, else 0   NOTE: relu'(0) = 0
template <class T>
class ReLU : public Layer<T> {
 public:
  const char* kind() const override { return "relu"; }
  Tensor<T> forward(const Tensor<T>& x) override {
    x_ = x;
    return kernels::relu_forward(x);
  }
  Tensor<T> backward(const Tensor<T>& dy) override {
    detail::check_backward_shape("ReLU", dy.shape(), x_.shape());
    Tensor<T> dx(x_.shape());
    for (index_t i = 0; i < dx.numel(); ++i)
      if (x_[i] > T(0)) dx[i] = dy[i];
    return dx;
  }

 private:
  Tensor<T> x_;
};

// y = 1 / (1 + e^-x);  dy/dx = y (1 - y)
template <class T>
class Sigmoid : public Layer<T> {
 public:
  const char* kind() const override { return "sigmoid"; }
  Tensor<T> forward(const Tensor<T>& x) override {
    y_ = kernels::sigmoid_forward(x);
    return y_;
  }
  Tensor<T> backward(const Tensor<T>& dy) override {
    detail::check_backward_shape("Sigmoid", dy.shape(), y_.shape());
    Tensor<T> dx(y_.shape());
    for (index_t i = 0; i < dx.numel(); ++i) dx[i] = dy[i] * (y_[i] * (T(1) - y_[i]));
    return dx;
  }

 private:
  Tensor<T> y_;
};

// y = tanh(x);  dy/dx = 1 - y^2
template <class T>
class Tanh : public Layer<T> {
 public:
  const char* kind() const override { return "tanh"; }
  Tensor<T> forward(const Tensor<T>& x) override {
    y_ = kernels::tanh_forward(x);
    return y_;
  }
  Tensor<T> backward(const Tensor<T>& dy) override {
    detail::check_backward_shape("Tanh", dy.shape(), y_.shape());
    Tensor<T> dx(y_.shape());
    for (index_t i = 0; i < dx.numel(); ++i) dx[i] = dy[i] * (T(1) - y_[i] * y_[i]);
    return dx;
  }

 private:
  Tensor<T> y_;
};

// Max pooling; backward finds each window's first maximum again (row-major, padding skipped).
template <class T>
class MaxPool2d : public Layer<T> {
 public:
  explicit MaxPool2d(Pool2dParams prm) : prm_(prm) {}
  const char* kind() const override { return "max_pool2d"; }
  Tensor<T> forward(const Tensor<T>& x) override {
    g_ = make_pool2d_geom(x.shape(), prm_, "MaxPool2d");
    x_ = x;
    return kernels::max_pool2d_forward(g_, x);
  }
  Tensor<T> backward(const Tensor<T>& dy) override {
    detail::check_backward_shape("MaxPool2d", dy.shape(), g_.y_shape());
    Tensor<T> dx(g_.x_shape());
    for (index_t n = 0; n < g_.n; ++n)
      for (index_t c = 0; c < g_.c; ++c)
        for (index_t p = 0; p < g_.p; ++p)
          for (index_t q = 0; q < g_.q; ++q) {
            index_t bh = -1, bw = -1;
            for (index_t r = 0; r < prm_.kernel[0]; ++r) {
              const index_t h = p * prm_.stride[0] - prm_.pad[0] + r;
              if (h < 0 || h >= g_.h) continue;
              for (index_t s = 0; s < prm_.kernel[1]; ++s) {
                const index_t w = q * prm_.stride[1] - prm_.pad[1] + s;
                if (w < 0 || w >= g_.w) continue;
                // strict '>' keeps the first maximum on ties
                if (bh < 0 || x_(n, c, h, w) > x_(n, c, bh, bw)) bh = h, bw = w;
              }
            }
            dx(n, c, bh, bw) += dy(n, c, p, q);
          }
    return dx;
  }

 private:
  Pool2dParams prm_;
  Pool2dGeom g_;
  Tensor<T> x_;
};

// Average pooling over kh*kw (padding counts as zeros): dx += dy / (kh*kw) over each window
template <class T>
class AvgPool2d : public Layer<T> {
 public:
  explicit AvgPool2d(Pool2dParams prm) : prm_(prm) {}
  const char* kind() const override { return "avg_pool2d"; }
  Tensor<T> forward(const Tensor<T>& x) override {
    g_ = make_pool2d_geom(x.shape(), prm_, "AvgPool2d");
    return kernels::avg_pool2d_forward(g_, x);
  }
  Tensor<T> backward(const Tensor<T>& dy) override {
    detail::check_backward_shape("AvgPool2d", dy.shape(), g_.y_shape());
    Tensor<T> dx(g_.x_shape());
    const T area(static_cast<int>(prm_.kernel[0] * prm_.kernel[1]));
    for (index_t n = 0; n < g_.n; ++n)
      for (index_t c = 0; c < g_.c; ++c)
        for (index_t p = 0; p < g_.p; ++p)
          for (index_t q = 0; q < g_.q; ++q) {
            const T d = dy(n, c, p, q) / area;
            for (index_t r = 0; r < prm_.kernel[0]; ++r) {
              const index_t h = p * prm_.stride[0] - prm_.pad[0] + r;
              if (h < 0 || h >= g_.h) continue;
              for (index_t s = 0; s < prm_.kernel[1]; ++s) {
                const index_t w = q * prm_.stride[1] - prm_.pad[1] + s;
                if (w < 0 || w >= g_.w) continue;
                dx(n, c, h, w) += d;
              }
            }
          }
    return dx;
  }

 private:
  Pool2dParams prm_;
  Pool2dGeom g_;
};

// (N, ...) -> (N, prod rest); backward reshapes back.
template <class T>
class Flatten : public Layer<T> {
 public:
  const char* kind() const override { return "flatten"; }
  Tensor<T> forward(const Tensor<T>& x) override {
    check_flatten(x.shape(), "Flatten");
    x_shape_ = x.shape();
    return x.reshaped(Shape{x.size(0), x.numel() / x.size(0)});
  }
  Tensor<T> backward(const Tensor<T>& dy) override {
    check_arg(dy.numel() == x_shape_.numel(), "Flatten", "dy has ", dy.numel(),
              " elements, expected ", x_shape_.numel());
    return dy.reshaped(x_shape_);
  }

 private:
  Shape x_shape_;
};

// Targets of a loss: class labels (cross_entropy) or a tensor of the output's shape (mse).
template <class T>
struct Targets {
  std::vector<index_t> labels;
  Tensor<T> values;

  template <class U>
  Targets<U> cast() const {
    return Targets<U>{labels, values.template cast<U>()};
  }
};

// A loss at the end of a Sequential: forward caches what backward needs. `count` is the
// divisor of the mean (kernels/loss_ref.hpp); 0 means "what this batch holds".
template <class T>
class LossLayer {
 public:
  virtual ~LossLayer() = default;
  virtual T forward(const Tensor<T>& out, const Targets<T>& t) = 0;
  virtual Tensor<T> backward(const T& dloss = T(1)) const = 0;
};

// loss = (1/M) sum_i (x_i - t_i)^2 over all elements, M = count (default numel);
// dx = dloss * 2 (x - t) / M
template <class T>
class MSELoss : public LossLayer<T> {
 public:
  explicit MSELoss(index_t count = 0) : count_(count) {}
  T forward(const Tensor<T>& x, const Targets<T>& t) override {
    check_mse_loss(x.shape(), t.values.shape(), "MSELoss");
    m_ = count_ > 0 ? count_ : x.numel();
    x_ = x;
    t_ = t.values;
    return kernels::mse_loss_forward(x, t_, m_)[0];
  }
  T forward(const Tensor<T>& x, const Tensor<T>& target) { return forward(x, Targets<T>{{}, target}); }
  Tensor<T> backward(const T& dloss = T(1)) const override {
    Tensor<T> dx(x_.shape());
    const T scale = T(2) * dloss / T(static_cast<double>(m_));
    for (index_t i = 0; i < dx.numel(); ++i) dx[i] = scale * (x_[i] - t_[i]);
    return dx;
  }

 private:
  index_t count_, m_ = 1;
  Tensor<T> x_, t_;
};

// loss = (1/N) sum_n -log softmax(z_n)[t_n], N = count (default the batch rows);
// dz[n,c] = dloss * (softmax(z_n)[c] - [c == t_n]) / N
// The softmax is computed here with the max subtracted (its own loop, not the kernel's).
template <class T>
class SoftmaxCrossEntropy : public LossLayer<T> {
 public:
  explicit SoftmaxCrossEntropy(index_t count = 0) : count_(count) {}
  T forward(const Tensor<T>& logits, const Targets<T>& t) override {
    const std::vector<index_t>& targets = t.labels;
    check_cross_entropy(logits.shape(), targets, "SoftmaxCrossEntropy");
    targets_ = targets;
    const index_t n = logits.size(0), c = logits.size(1);
    m_ = count_ > 0 ? count_ : n;
    prob_ = Tensor<T>(logits.shape());
    for (index_t i = 0; i < n; ++i) {
      T m = logits(i, 0);
      for (index_t j = 1; j < c; ++j)
        if (logits(i, j) > m) m = logits(i, j);
      T z(0);
      for (index_t j = 0; j < c; ++j) {
        using std::exp;
        prob_(i, j) = exp(logits(i, j) - m);
        z += prob_(i, j);
      }
      for (index_t j = 0; j < c; ++j) prob_(i, j) /= z;
    }
    return kernels::cross_entropy_forward(logits, targets, m_)[0];
  }
  T forward(const Tensor<T>& logits, const std::vector<index_t>& labels) {
    return forward(logits, Targets<T>{labels, {}});
  }
  Tensor<T> backward(const T& dloss = T(1)) const override {
    const index_t n = prob_.size(0), c = prob_.size(1);
    Tensor<T> dz(prob_.shape());
    const T scale = dloss / T(static_cast<double>(m_));
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < c; ++j)
        dz(i, j) = scale * (j == targets_[static_cast<std::size_t>(i)] ? prob_(i, j) - T(1)
                                                                       : prob_(i, j));
    return dz;
  }

 private:
  index_t count_, m_ = 1;
  std::vector<index_t> targets_;
  Tensor<T> prob_;
};

// Layers chained by hand, then a loss: the tutorial's training step.
template <class T>
class Sequential {
 public:
  explicit Sequential(std::unique_ptr<LossLayer<T>> loss) : loss_(std::move(loss)) {
    check_arg(loss_ != nullptr, "Sequential", "a loss is required");
  }
  void add(std::unique_ptr<Layer<T>> layer) { layers_.push_back(std::move(layer)); }

  Tensor<T> predict(const Tensor<T>& x) {
    Tensor<T> a = x;
    for (auto& l : layers_) a = l->forward(a);
    return a;
  }
  // Forward through every layer and the loss; caches for backward().
  T forward_loss(const Tensor<T>& x, const Targets<T>& t) { return loss_->forward(predict(x), t); }
  // Backward through the loss and every layer, newest first; returns dL/dx and sets every
  // layer's parameter gradients.
  Tensor<T> backward() {
    Tensor<T> d = loss_->backward();
    for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) d = (*it)->backward(d);
    return d;
  }
  std::vector<ParamRef<T>> params() {
    std::vector<ParamRef<T>> ps;
    for (auto& l : layers_)
      for (auto& p : l->params()) ps.push_back(p);
    return ps;
  }
  std::size_t size() const { return layers_.size(); }
  Layer<T>& layer(std::size_t i) { return *layers_[i]; }

 private:
  std::unique_ptr<LossLayer<T>> loss_;
  std::vector<std::unique_ptr<Layer<T>>> layers_;
};

}  // namespace tapegrad::layers
