// The optimizers' element-wise updates; see include/tapegrad/train/optimizer.hpp.
#include "tapegrad/train/optimizer.hpp"

namespace tapegrad::train {

namespace {
// Tensors this large update in parallel (lenet5's fc1.w, 48,000 weights, is; its biases are
// not): below it the parallel region costs more than it saves.
constexpr index_t parallel_min = 16384;
}  // namespace

template <class T>
void Optimizer<T>::sgd(Tensor<T>& w, const Tensor<T>& g, Tensor<T>* buf) const {
  const T lr(cfg_.lr_at(steps_)), wd(cfg_.weight_decay), mom(cfg_.momentum);
  const bool first = steps_ == 1;
  T* pw = w.data();
  const T* pg = g.data();
  T* pb = buf ? buf->data() : nullptr;
  const index_t n = w.numel();
#pragma omp parallel for schedule(static) if (n >= parallel_min)
  for (index_t j = 0; j < n; ++j) {
    T d = pg[j];
    if (cfg_.weight_decay != 0) d = d + wd * pw[j];
    if (pb) {
      pb[j] = first ? d : mom * pb[j] + d;
      d = pb[j];
    }
    pw[j] = pw[j] - lr * d;
  }
}

template <class T>
void Optimizer<T>::adam(Tensor<T>& w, const Tensor<T>& g, Tensor<T>& m, Tensor<T>& v) const {
  const double t = static_cast<double>(steps_);
  const T b1(cfg_.beta1), b2(cfg_.beta2), wd(cfg_.weight_decay), eps(cfg_.eps);
  const T one_b1(1 - cfg_.beta1), one_b2(1 - cfg_.beta2);
  const double bc1 = 1 - std::pow(cfg_.beta1, t), bc2 = 1 - std::pow(cfg_.beta2, t);
  const T step_size(cfg_.lr_at(steps_) / bc1), bc2_sqrt(std::sqrt(bc2));
  T* pw = w.data();
  const T* pg = g.data();
  T* pm = m.data();
  T* pv = v.data();
  const index_t n = w.numel();
#pragma omp parallel for schedule(static) if (n >= parallel_min)
  for (index_t j = 0; j < n; ++j) {
    T d = pg[j];
    if (cfg_.weight_decay != 0) d = d + wd * pw[j];
    pm[j] = pm[j] * b1 + one_b1 * d;
    pv[j] = pv[j] * b2 + one_b2 * (d * d);
    using std::sqrt;
    const T denom = sqrt(pv[j]) / bc2_sqrt + eps;
    pw[j] = pw[j] - step_size * (pm[j] / denom);
  }
}

template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace tapegrad::train
