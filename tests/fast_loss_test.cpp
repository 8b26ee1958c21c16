// Fast losses against their reference twins: the same bits (loss_fast.hpp: rows in parallel,
// sums in the reference's order, no contraction), for mse_loss and cross_entropy in float and
// double, with the default and a caller-given count, on small and parallel-sized batches, and
// for 1 to 4 threads.
#include <gtest/gtest.h>
#include <omp.h>

#include <string>
#include <vector>

#include "fast_test_support.hpp"
#include "ref_test_support.hpp"
#include "tapegrad/kernels/loss.hpp"
#include "tapegrad/kernels/loss_fast.hpp"
#include "tapegrad/kernels/loss_ref.hpp"

namespace tapegrad {
namespace {

using test::same_bits;

std::vector<index_t> labels(index_t n, index_t classes) {
  std::vector<index_t> t;
  for (index_t i = 0; i < n; ++i) t.push_back((i * 7 + 3) % classes);
  return t;
}

template <class T>
void check_losses(index_t n, index_t classes, double scale) {
  const Tensor<T> logits = test::random_reals<T>(Shape{n, classes}, 3, scale);
  const Tensor<T> target = test::random_reals<T>(Shape{n, classes}, 4, 1.0);
  const auto t = labels(n, classes);
  const T dloss = T(0.75);
  const std::string what = std::string(ScalarTraits<T>::name) + " [" + std::to_string(n) + "," +
                           std::to_string(classes) + "] scale " + std::to_string(scale);
  for (index_t count : {n, 3 * n + 1}) {  // the batch's own rows, and a larger whole batch
    EXPECT_TRUE(same_bits(fast::cross_entropy_forward(logits, t, count),
                          ref::cross_entropy_forward(logits, t, count)))
        << "cross_entropy forward " << what;
    EXPECT_TRUE(same_bits(fast::cross_entropy_backward(logits, t, dloss, count),
                          ref::cross_entropy_backward(logits, t, dloss, count)))
        << "cross_entropy backward " << what;
    const index_t mcount = count * classes;
    EXPECT_TRUE(same_bits(fast::mse_loss_forward(logits, target, mcount),
                          ref::mse_loss_forward(logits, target, mcount)))
        << "mse forward " << what;
    EXPECT_TRUE(same_bits(fast::mse_loss_backward(logits, target, dloss, mcount),
                          ref::mse_loss_backward(logits, target, dloss, mcount)))
        << "mse backward " << what;
  }
}

TEST(FastLosses, EqualTheReferenceBitwise) {
  for (double scale : {1.0, 200.0}) {  // 200: exp(x - m) underflows for most classes
    check_losses<float>(1, 1, scale);
    check_losses<float>(64, 10, scale);       // lenet5's batch
    check_losses<double>(5, 3, scale);
    check_losses<double>(3000, 10, scale);    // above the parallel threshold (16384 logits)
    check_losses<float>(2000, 17, scale);
  }
}

TEST(FastLosses, ResultsAreBitwiseIdenticalForOneToFourThreads) {
  test::ThreadsGuard restore;
  const Tensor<double> logits = test::random_reals<double>(Shape{4000, 10}, 5, 4.0);
  const Tensor<double> target = test::random_reals<double>(Shape{4000, 10}, 6, 1.0);
  const auto t = labels(4000, 10);
  omp_set_num_threads(1);
  const auto ce = fast::cross_entropy_forward(logits, t, 4000);
  const auto dce = fast::cross_entropy_backward(logits, t, 1.0, 4000);
  const auto dmse = fast::mse_loss_backward(logits, target, 1.0, 40000);
  for (int threads : {2, 3, 4}) {
    omp_set_num_threads(threads);
    EXPECT_TRUE(same_bits(ce, fast::cross_entropy_forward(logits, t, 4000))) << threads;
    EXPECT_TRUE(same_bits(dce, fast::cross_entropy_backward(logits, t, 1.0, 4000))) << threads;
    EXPECT_TRUE(same_bits(dmse, fast::mse_loss_backward(logits, target, 1.0, 40000))) << threads;
  }
}

TEST(FastLosses, DispatchSendsFloatToTheFastKernels) {
  const Tensor<float> logits = test::random_reals<float>(Shape{6, 4}, 7, 2.0);
  const auto t = labels(6, 4);
  EXPECT_TRUE(same_bits(kernels::cross_entropy_forward(logits, t, 6),
                        fast::cross_entropy_forward(logits, t, 6)));
}

}  // namespace
}  // namespace tapegrad
