// Hand-written layers (layers/layers.hpp).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "tapegrad/layers/layers.hpp"
#include "tapegrad/net/sequential.hpp"
#include "tapegrad/net/spec.hpp"

using namespace tapegrad;

TEST(HandWritten, SeedNetworkGradientMatchesHandDerivation) {
  // Same point as OpTape.SeedNetworkGradientMatchesHandDerivation* (derivation there):
  // w = 0, v = 2, c = -1, t = 1 => L = 1/4, dw = -x/8, dx = 0, dv = -1/8, dc = -1/4.
  const NetSpec spec = load_spec("seed");
  Tensor<double> x(Shape{1, 1, 3, 3});
  for (index_t i = 0; i < 9; ++i) x[i] = double(i + 1) / 10;
  auto net = build_sequential<double>(
      spec, {Tensor<double>(Shape{1, 1, 3, 3}), Tensor<double>(Shape{1, 1}, {2.0}),
             Tensor<double>(Shape{1}, {-1.0})});
  const double loss = net.forward_loss(x, {{}, Tensor<double>(Shape{1, 1}, {1.0})});
  EXPECT_EQ(loss, 0.25);
  const Tensor<double> dx = net.backward();
  const auto ps = net.params();
  ASSERT_EQ(ps.size(), 3u);
  EXPECT_EQ(ps[0].name, "conv1.w");
  EXPECT_EQ(ps[2].name, "fc1.b");
  for (index_t i = 0; i < 9; ++i) {
    EXPECT_EQ((*ps[0].grad)[i], -0.125 * x[i]);
    EXPECT_EQ(dx[i], 0.0);
  }
  EXPECT_EQ((*ps[1].grad)[0], -0.125);
  EXPECT_EQ((*ps[2].grad)[0], -0.25);
}

TEST(HandWritten, MaxPoolRoutesGradientToFirstMaximumOnTies) {
  // One 2x2 window holding (5, 5; 1, 5): the first maximum in row-major order is element 0.
  layers::MaxPool2d<double> pool(Pool2dParams{{2, 2}, {2, 2}, {0, 0}});
  const Tensor<double> y = pool.forward(Tensor<double>(Shape{1, 1, 2, 2}, {5, 5, 1, 5}));
  EXPECT_EQ(y[0], 5.0);
  const Tensor<double> dx = pool.backward(Tensor<double>(Shape{1, 1, 1, 1}, {3.0}));
  EXPECT_EQ(dx[0], 3.0);
  EXPECT_EQ(dx[1], 0.0);
  EXPECT_EQ(dx[3], 0.0);
}

TEST(HandWritten, AvgPoolSpreadsGradientOverKernelArea) {
  // kernel 2, stride 2, pad 1 on a 2x2 input: each window holds one real element and three
  // padding zeros; count_include_pad => dx = dy / 4 at the real element.
  layers::AvgPool2d<double> pool(Pool2dParams{{2, 2}, {2, 2}, {1, 1}});
  const Tensor<double> y = pool.forward(Tensor<double>(Shape{1, 1, 2, 2}, {4, 8, 12, 16}));
  ASSERT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(y[0], 1.0);  // 4 / 4
  const Tensor<double> dx = pool.backward(Tensor<double>(Shape{1, 1, 2, 2}, {4, 8, 12, 16}));
  EXPECT_EQ(dx[0], 1.0);
  EXPECT_EQ(dx[3], 4.0);
}

TEST(HandWritten, ReluGradientAtZeroIsZero) {
  layers::ReLU<float> relu;
  relu.forward(Tensor<float>(Shape{3}, {-1.0f, 0.0f, 2.0f}));
  const Tensor<float> dx = relu.backward(Tensor<float>(Shape{3}, {1.0f, 1.0f, 1.0f}));
  EXPECT_EQ(dx[0], 0.0f);
  EXPECT_EQ(dx[1], 0.0f);  // NOTE: relu'(0) = 0
  EXPECT_EQ(dx[2], 1.0f);
}

TEST(HandWritten, SoftmaxCrossEntropyGradientIsProbabilityMinusOneHot) {
  // Equal logits over 4 classes: p = 1/4 each, L = log 4; batch 1, target 2:
  // dz = p - onehot = (1/4, 1/4, -3/4, 1/4), exact in binary.
  layers::SoftmaxCrossEntropy<double> ce;
  const double loss = ce.forward(Tensor<double>(Shape{1, 4}, {0.5, 0.5, 0.5, 0.5}), {2});
  EXPECT_NEAR(loss, std::log(4.0), 4 * std::log(4.0) * 0x1.0p-53);  // a few roundings
  const Tensor<double> dz = ce.backward();
  EXPECT_EQ(dz[0], 0.25);
  EXPECT_EQ(dz[2], -0.75);
}

TEST(HandWritten, LayerRejectsWrongInputShape) {
  layers::Linear<double> fc("fc1", Tensor<double>(Shape{3, 4}), std::nullopt);
  EXPECT_THROW(fc.forward(Tensor<double>(Shape{2, 5})), std::invalid_argument);
}
