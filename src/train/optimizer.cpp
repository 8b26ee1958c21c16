// The optimizers' element-wise updates; see include/tapegrad/train/optimizer.hpp.
#include "tapegrad/train/optimizer.hpp"

#include <type_traits>

#include "tapegrad/net/param_ranges.hpp"

namespace tapegrad::train {

template <class T>
void Optimizer<T>::update(ParamSet<T>& params) {
  // each range writes only its own elements of the values and the state tensors
  for_each_param_range(params, [&](std::size_t i, index_t b, index_t e) {
    Tensor<T>& w = params[i].value;
    const Tensor<T>& g = params[i].grad;
    if (cfg_.name == "sgd")
      sgd(w, g, cfg_.momentum > 0 ? &slots_[0].second[i] : nullptr, b, e);
    else
      adam(w, g, slots_[0].second[i], slots_[1].second[i], b, e);
  });
}

template <class T>
void Optimizer<T>::sgd(Tensor<T>& w, const Tensor<T>& g, Tensor<T>* buf, index_t b,
                       index_t e) const {
  const T lr(cfg_.lr_at(steps_)), wd(cfg_.weight_decay), mom(cfg_.momentum);
  T* __restrict pw = w.data();
  const T* __restrict pg = g.data();
  T* __restrict pb = buf ? buf->data() : nullptr;
  // One loop per case (decay or not, momentum buffer or not, first step or not), so that
  // each is a branch-free loop the compiler vectorizes; every element's operations are the
  // same in all of them, so the bits do not depend on the case split or the vector width.
  auto run = [&](auto decay, auto momentum, auto first) {
    for (index_t j = b; j < e; ++j) {
      T d = pg[j];
      if constexpr (decltype(decay)::value) d = d + wd * pw[j];
      if constexpr (decltype(momentum)::value) {
        if constexpr (decltype(first)::value)
          pb[j] = d;
        else
          pb[j] = mom * pb[j] + d;
        d = pb[j];
      }
      pw[j] = pw[j] - lr * d;
    }
  };
  using yes = std::true_type;
  using no = std::false_type;
  const bool decay = cfg_.weight_decay != 0, first = steps_ == 1;
  if (pb) {
    if (decay)
      first ? run(yes{}, yes{}, yes{}) : run(yes{}, yes{}, no{});
    else
      first ? run(no{}, yes{}, yes{}) : run(no{}, yes{}, no{});
  } else {
    decay ? run(yes{}, no{}, no{}) : run(no{}, no{}, no{});
  }
}

template <class T>
void Optimizer<T>::adam(Tensor<T>& w, const Tensor<T>& g, Tensor<T>& m, Tensor<T>& v, index_t b,
                        index_t e) const {
  const double t = static_cast<double>(steps_);
  const T b1(cfg_.beta1), b2(cfg_.beta2), wd(cfg_.weight_decay), eps(cfg_.eps);
  const T one_b1(1 - cfg_.beta1), one_b2(1 - cfg_.beta2);
  const double bc1 = 1 - std::pow(cfg_.beta1, t), bc2 = 1 - std::pow(cfg_.beta2, t);
  const T step_size(cfg_.lr_at(steps_) / bc1), bc2_sqrt(std::sqrt(bc2));
  T* __restrict pw = w.data();
  const T* __restrict pg = g.data();
  T* __restrict pm = m.data();
  T* __restrict pv = v.data();
  // One loop with weight decay and one without, each branch-free, so that they vectorize
  // (sqrt too: this file is built with -fno-math-errno; CMakeLists.txt); sqrt and the
  // divisions are correctly rounded in vector and scalar code alike, so the bits are the same.
  auto run = [&](auto decay) {
    for (index_t j = b; j < e; ++j) {
      T d = pg[j];
      if constexpr (decltype(decay)::value) d = d + wd * pw[j];
      pm[j] = pm[j] * b1 + one_b1 * d;
      pv[j] = pv[j] * b2 + one_b2 * (d * d);
      const T denom = std::sqrt(pv[j]) / bc2_sqrt + eps;
      pw[j] = pw[j] - step_size * (pm[j] / denom);
    }
  };
  if (cfg_.weight_decay != 0)
    run(std::true_type{});
  else
    run(std::false_type{});
}

template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace tapegrad::train
