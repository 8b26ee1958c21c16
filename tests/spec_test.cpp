// The network spec parser (net/spec.hpp), the key=value options (net/keys.hpp) and the layer /
// loss tables they read (net/layer_table.hpp, net/loss_table.hpp).
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <string>

#include "tapegrad/net/spec.hpp"

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
  EXPECT_EQ(lenet.loss_name(), "cross_entropy");
  EXPECT_EQ(lenet.output_shape(2), (Shape{2, 10}));

  const NetSpec seed = load_spec("seed");
  ASSERT_EQ(seed.params.size(), 3u);  // conv without bias, fc1.w, fc1.b
  EXPECT_EQ(seed.params[0].shape, (Shape{1, 1, 3, 3}));
  EXPECT_EQ(seed.loss_name(), "mse");
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


TEST(Spec, PoolStrideDefaultsToTheKernelAndPadToZero) {
  // PyTorch's MaxPool2d(kernel_size=3): stride = kernel. 9x9 -> (9 - 3)/3 + 1 = 3; with an
  // explicit stride=1: (9 - 3)/1 + 1 = 7.
  const NetSpec a = parse_spec("input 1 9 9\nmax_pool2d kernel=3\nflatten\nloss mse\n");
  EXPECT_EQ(a.layers[0].keys.pair("stride"), (Pair{3, 3}));
  EXPECT_EQ(a.layers[0].keys.pair("pad"), (Pair{0, 0}));
  EXPECT_FALSE(a.layers[0].keys.given("stride"));
  EXPECT_EQ(a.layers[0].out_shape, (Shape{1, 1, 3, 3}));
  const NetSpec b = parse_spec("input 1 9 9\navg_pool2d kernel=3 stride=1\nflatten\nloss mse\n");
  EXPECT_TRUE(b.layers[0].keys.given("stride"));
  EXPECT_EQ(b.layers[0].out_shape, (Shape{1, 1, 7, 7}));
}

TEST(Spec, KeysPrintInDeclarationOrderWithDefaults) {
  const NetSpec s = parse_spec("input 2 8 8\nconv2d kernel=3,1 out=4 groups=2\nflatten\nloss mse\n");
  EXPECT_EQ(s.layers[0].keys.str(),
            "out=4 kernel=3,1 stride=1,1 pad=0,0 dilation=1,1 groups=2 bias=true");
  EXPECT_EQ(s.params[0].shape, (Shape{4, 1, 3, 1}));  // (K, C/groups, R, S)
  EXPECT_TRUE(s.params[1].bias);
  EXPECT_FALSE(s.params[0].bias);
}

TEST(Spec, OptionErrorsNameTheKey) {
  EXPECT_EQ(parse_error("input 1 8 8\nconv2d out=2 kernel=3 out=4\nloss mse\n"),
            "spec line 2: conv2d: option 'out' given twice");
  EXPECT_EQ(parse_error("input 1 8 8\nconv2d out=2 kernel=3,\nloss mse\n"),
            "spec line 2: conv2d: kernel must be N or H,W with integers, got '3,'");
  EXPECT_EQ(parse_error("input 1 8 8\nlinear out=2 bias=yes\nloss mse\n"),
            "spec line 2: linear: bias must be true or false, got 'yes'");
  EXPECT_EQ(parse_error("input 1 8 8\nflatten\nlinear out=99999999999999999999\nloss mse\n"),
            "spec line 3: linear: out must be an integer, got '99999999999999999999'");
  EXPECT_EQ(parse_error("input 1 8 8\nflatten\nlinear =3\nloss mse\n"),
            "spec line 3: linear: expected key=value, got '=3'");
}

TEST(LayerTable, EveryKindIsFoundByItsNameAndNamesAreUnique) {
  std::set<std::string> names;
  for (int k = 0; k < num_layer_kinds; ++k) {
    const std::string name(layer_kind_name(k));
    EXPECT_EQ(find_layer_kind(name), k) << name;
    EXPECT_TRUE(names.insert(name).second) << name;
  }
  EXPECT_EQ(find_layer_kind("conv3d"), -1);
  EXPECT_EQ(layer_kind_list(),
            "conv2d, linear, relu, sigmoid, tanh, max_pool2d, avg_pool2d, flatten");
  for (int k = 0; k < num_loss_kinds; ++k) EXPECT_EQ(find_loss_kind(loss_kind_name(k)), k);
  EXPECT_EQ(loss_kind_list(), "mse or cross_entropy");
}

TEST(LayerTable, ReductionDepthAddsEveryLayersLength) {
  // seed at batch 2: conv 3x3 on 1 channel, 1 output of 1x1:
  //   forward 1*9 + 1 (bias slot counted) + backward-data 1*9 + backward-weights 2*1*1 = 21;
  // sigmoid 8, flatten 0, linear 1 -> 1: 1 + 1 + 1 + 2 = 5, sigmoid 8; mse over 2 elements: 4.
  // 21 + 8 + 5 + 8 + 4 = 46.
  EXPECT_EQ(load_spec("seed").reduction_depth(2), 46);
  // lenet5's loss count is the batch, seed's the output elements (batch * 1).
  EXPECT_EQ(load_spec("lenet5").loss_count(64), 64);
  EXPECT_EQ(load_spec("seed").loss_count(5), 5);
}
