// Hand-written layers and the network spec.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "tapegrad/layers/layers.hpp"
#include "tapegrad/layers/network.hpp"
#include "tapegrad/layers/spec.hpp"

using namespace tapegrad;

namespace {
std::string parse_error(const std::string& text) {
  try {
    parse_spec(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

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

TEST(Spec, PresetsHaveTheDocumentedParameters) {
  const NetSpec lenet = load_spec("lenet5");
  ASSERT_EQ(lenet.params.size(), 10u);
  EXPECT_EQ(lenet.params[0].name, "conv1.w");
  EXPECT_EQ(lenet.params[0].shape, (Shape{6, 1, 5, 5}));
  EXPECT_EQ(lenet.params[2].shape, (Shape{16, 6, 5, 5}));
  EXPECT_EQ(lenet.params[4].name, "fc1.w");
  EXPECT_EQ(lenet.params[4].shape, (Shape{120, 400}));
  EXPECT_EQ(lenet.params[9].shape, (Shape{10}));
  index_t total = 0;
  for (const auto& p : lenet.params) total += p.shape.numel();
  // 6*25+6 + 16*150+16 + 400*120+120 + 120*84+84 + 84*10+10 = 61706 (LeNet-5's count)
  EXPECT_EQ(total, 61706);
  EXPECT_EQ(lenet.loss, LossKind::cross_entropy);
  EXPECT_EQ(lenet.output_shape(2), (Shape{2, 10}));

  const NetSpec seed = load_spec("seed");
  ASSERT_EQ(seed.params.size(), 3u);  // conv without bias, fc1.w, fc1.b
  EXPECT_EQ(seed.params[0].shape, (Shape{1, 1, 3, 3}));
  EXPECT_EQ(seed.loss, LossKind::mse);
}

TEST(Spec, CommentsBlankLinesAndOptionsParse) {
  const NetSpec s = parse_spec(
      "# a comment\n"
      "\n"
      "input 3 8 8   # trailing comment\n"
      "conv2d out=4 kernel=3,1 pad=1,0 stride=2 dilation=1 groups=1 bias=false\n"
      "tanh\n"
      "avg_pool2d kernel=2 stride=1\n"
      "flatten\n"
      "linear out=5 bias=true\n"
      "loss cross_entropy\n");
  ASSERT_EQ(s.layers.size(), 5u);
  // conv: h = (8 + 2 - 3)/2 + 1 = 4, w = (8 - 1)/2 + 1 = 4; avg pool stride 1: 3x3
  EXPECT_EQ(s.layers[0].out_shape, (Shape{1, 4, 4, 4}));
  EXPECT_EQ(s.layers[2].out_shape, (Shape{1, 4, 3, 3}));
  EXPECT_EQ(s.layers[4].in_shape, (Shape{1, 36}));
  EXPECT_EQ(s.layers[0].line, 4);
  EXPECT_EQ(s.params.size(), 3u);  // conv1.w, fc1.w, fc1.b
}

TEST(Spec, UnknownLayerNamesItsLine) {
  EXPECT_EQ(parse_error("input 1 8 8\n\nconv3d out=2 kernel=3\nloss mse\n"),
            "spec line 3: unknown layer 'conv3d'");
}

TEST(Spec, ShapeErrorsNameTheLine) {
  EXPECT_EQ(parse_error("input 1 8 8\nconv2d out=2 kernel=3\nlinear out=4\nloss mse\n"),
            "spec line 3: linear: x must be 2-d (N,in), got [1,2,6,6] (add 'flatten' before it)");
  const std::string e = parse_error("input 1 4 4\nconv2d out=2 kernel=5\nloss mse\n");
  EXPECT_EQ(e.rfind("spec line 2: conv2d: dilated kernel height 5 is larger", 0), 0u) << e;
  EXPECT_EQ(parse_error("input 1 4 4\nflatten\nloss cross_entropy\nrelu\n"),
            "spec line 4: 'relu' after the loss line (loss must be last)");
}

TEST(Spec, BadOptionsNameTheLine) {
  EXPECT_EQ(parse_error("input 1 8 8\nconv2d out=2\nloss mse\n"),
            "spec line 2: conv2d: missing kernel=");
  EXPECT_EQ(parse_error("input 1 8 8\nconv2d out=x kernel=3\nloss mse\n"),
            "spec line 2: conv2d: out must be an integer, got 'x'");
  EXPECT_EQ(parse_error("input 1 8 8\nrelu slope=2\nloss mse\n"),
            "spec line 2: relu: unknown option 'slope'");
  EXPECT_EQ(parse_error("input 1 8 8\nconv2d out=0 kernel=3\nloss mse\n"),
            "spec line 2: conv2d: out must be positive, got 0");
  EXPECT_EQ(parse_error("input 1 8 8\nflatten\nloss hinge\n"),
            "spec line 3: unknown loss 'hinge' (expected mse or cross_entropy)");
}

TEST(Spec, MissingInputOrLossIsAnError) {
  EXPECT_EQ(parse_error("relu\n"), "spec line 1: 'relu' before the input line");
  EXPECT_EQ(parse_error("input 1 2 2\nrelu\n"),
            "spec: no 'loss mse|cross_entropy' line (must be last)");
  EXPECT_THROW(load_spec("/nonexistent/net.txt"), std::invalid_argument);
}

TEST(Network, ThreeWaysComputeTheSameLoss) {
  // The hand-written layers, the op tape and the reference forward all run the same network:
  // their losses agree to a few roundings (all three use the same forward kernels today, so
  // they are in fact equal; the tolerance allows a fast kernel with another summation order:
  // gamma(K) * |L| with K = reduction_depth).
  const NetSpec spec = load_spec("lenet5");
  const NetValues<double> v = random_problem(spec, 2, 3);
  auto net = build_sequential(spec, v.params);
  const double l_hand = net.forward_loss(v.x, v.targets);
  const double l_ref = reference_loss(spec, v.x, v.params, v.targets);
  Tape<double> tape;
  std::vector<TapeTensor<double>> ps;
  for (const auto& p : v.params) ps.push_back(tape.leaf(p));
  const double l_tape = record_network(spec, tape.leaf(v.x), ps, v.targets).value()[0];
  const double k = static_cast<double>(spec.reduction_depth(2));
  const double tol = k * 0x1.0p-53 / (1 - k * 0x1.0p-53) * std::abs(l_ref);
  EXPECT_NEAR(l_hand, l_ref, tol);
  EXPECT_NEAR(l_tape, l_ref, tol);
}

TEST(Network, RandomProblemIsDeterministicFromTheSeed) {
  const NetSpec spec = load_spec("seed");
  const auto a = random_problem(spec, 2, 42), b = random_problem(spec, 2, 42),
             c = random_problem(spec, 2, 43);
  EXPECT_EQ(a.x.vec(), b.x.vec());
  EXPECT_NE(a.x.vec(), c.x.vec());
  // The first draw of mt19937_64 (seed 42) is fixed by the standard, so is x[0]:
  std::mt19937_64 rng(42);
  EXPECT_EQ(a.x[0], -1 + 2 * (static_cast<double>(rng() >> 11) * 0x1.0p-53));
}
