// Fast losses: the float/double twins of loss_ref.hpp (see loss_fast.hpp). Compiled with
// -ffp-contract=off (CMakeLists.txt), like activation_fast.cpp, to keep the reference's bits.
#include "tapegrad/kernels/loss_fast.hpp"

#include <omp.h>

#include <cassert>
#include <cmath>

namespace tapegrad::fast {
namespace {

constexpr index_t min_parallel = 1 << 14;  // elements below which one thread does it all

template <class T>
Tensor<T> mse_forward(const Tensor<T>& x, const Tensor<T>& target, index_t count) {
  assert(x.shape() == target.shape() && x.numel() > 0 && count > 0);
  const T *xd = x.data(), *td = target.data();
  T acc(0);  // one sequential sum, in the reference's order
  for (index_t i = 0; i < x.numel(); ++i) {
    const T d = xd[i] - td[i];
    acc += d * d;
  }
  return Tensor<T>::scalar(acc / T(double(count)));
}

template <class T>
Tensor<T> mse_backward(const Tensor<T>& x, const Tensor<T>& target, const T& dloss,
                       index_t count) {
  assert(x.shape() == target.shape() && x.numel() > 0 && count > 0);
  const T scale = T(2) * dloss / T(double(count));
  Tensor<T> dx(x.shape());
  const T *xd = x.data(), *td = target.data();
  T* dxd = dx.data();
  const index_t n = x.numel();
#pragma omp parallel for schedule(static) if (n >= min_parallel)
  for (index_t i = 0; i < n; ++i) dxd[i] = scale * (xd[i] - td[i]);
  return dx;
}

// Row n of the logits: its max m and sum_c exp(x[n,c] - m), in the reference's order.
template <class T>
void row_max_sum(const T* row, index_t nc, T& m, T& sum) {
  m = row[0];
  for (index_t c = 1; c < nc; ++c)
    if (row[c] > m) m = row[c];
  sum = T(0);
  for (index_t c = 0; c < nc; ++c) sum += std::exp(row[c] - m);
}

template <class T>
Tensor<T> ce_forward(const Tensor<T>& logits, const std::vector<index_t>& targets,
                     index_t count) {
  assert(logits.rank() == 2 && static_cast<index_t>(targets.size()) == logits.size(0));
  assert(count > 0);
  const index_t nb = logits.size(0), nc = logits.size(1);
  const T* ld = logits.data();
  std::vector<T> term(static_cast<std::size_t>(nb));
#pragma omp parallel for schedule(static) if (nb * nc >= min_parallel)
  for (index_t n = 0; n < nb; ++n) {
    const index_t t = targets[static_cast<std::size_t>(n)];
    assert(t >= 0 && t < nc);
    T m, sum;
    row_max_sum(ld + n * nc, nc, m, sum);
    term[static_cast<std::size_t>(n)] = m + std::log(sum) - ld[n * nc + t];
  }
  T total(0);  // the terms added in row order, as the reference does
  for (const T& v : term) total += v;
  return Tensor<T>::scalar(total / T(double(count)));
}

template <class T>
Tensor<T> ce_backward(const Tensor<T>& logits, const std::vector<index_t>& targets,
                      const T& dloss, index_t count) {
  assert(logits.rank() == 2 && static_cast<index_t>(targets.size()) == logits.size(0));
  assert(count > 0);
  const index_t nb = logits.size(0), nc = logits.size(1);
  const T scale = dloss / T(double(count));
  Tensor<T> dx(logits.shape());
  const T* ld = logits.data();
  T* dxd = dx.data();
#pragma omp parallel for schedule(static) if (nb * nc >= min_parallel)
  for (index_t n = 0; n < nb; ++n) {
    const index_t t = targets[static_cast<std::size_t>(n)];
    assert(t >= 0 && t < nc);
    const T* row = ld + n * nc;
    T* drow = dxd + n * nc;
    T m = row[0];
    for (index_t c = 1; c < nc; ++c)
      if (row[c] > m) m = row[c];
    T sum(0);
    for (index_t c = 0; c < nc; ++c) {
      drow[c] = std::exp(row[c] - m);
      sum += drow[c];
    }
    for (index_t c = 0; c < nc; ++c) {
      const T softmax = drow[c] / sum;
      drow[c] = scale * (c == t ? softmax - T(1) : softmax);
    }
  }
  return dx;
}

}  // namespace

#define TAPEGRAD_LOSS_FAST(T)                                                                  \
  Tensor<T> mse_loss_forward(const Tensor<T>& x, const Tensor<T>& target, index_t count) {     \
    return mse_forward(x, target, count);                                                      \
  }                                                                                            \
  Tensor<T> mse_loss_backward(const Tensor<T>& x, const Tensor<T>& target, const T& dloss,     \
                              index_t count) {                                                 \
    return mse_backward(x, target, dloss, count);                                              \
  }                                                                                            \
  Tensor<T> cross_entropy_forward(const Tensor<T>& logits, const std::vector<index_t>& targets, \
                                  index_t count) {                                             \
    return ce_forward(logits, targets, count);                                                 \
  }                                                                                            \
  Tensor<T> cross_entropy_backward(const Tensor<T>& logits,                                    \
                                   const std::vector<index_t>& targets, const T& dloss,        \
                                   index_t count) {                                            \
    return ce_backward(logits, targets, dloss, count);                                         \
  }
TAPEGRAD_LOSS_FAST(float)
TAPEGRAD_LOSS_FAST(double)
#undef TAPEGRAD_LOSS_FAST

}  // namespace tapegrad::fast
