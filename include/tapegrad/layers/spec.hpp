// Network spec: a small human-readable format, one layer per line.
//
//   # the tutorial's network ('#' starts a comment; blank lines are fine)
//   input 1 3 3                       C H W of one sample (the batch size comes at run time)
//   conv2d out=1 kernel=3 bias=false  also pad= stride= dilation= groups= (N or H,W), bias=true
//   sigmoid                           relu | sigmoid | tanh
//   max_pool2d kernel=2               also stride= (default: the kernel) pad= (default 0);
//                                     avg_pool2d likewise (count_include_pad: divide by kh*kw)
//   flatten                           (N, C, H, W) -> (N, C*H*W)
//   linear out=1                      also bias=true|false
//   loss mse                          mse | cross_entropy (softmax cross-entropy); last line
//
// Rules: `input` is the first layer line and appears once; `loss` is the last one; linear
// needs a 2-d input (flatten first); cross_entropy needs a 2-d (N, classes) output; mse
// targets have the network output's shape. Parameters are named by layer kind and count:
// conv1.w conv1.b conv2.w ... fc1.w fc1.b ... (PyTorch layouts: conv w (K,C/groups,R,S),
// linear w (out,in)).
//
// Every problem is a std::invalid_argument naming the line:
//   spec line 3: unknown layer 'conv3d'
//   spec line 5: linear: x must be 2-d (N,in), got [1,6,14,14] (add 'flatten' before it)
//
// Presets: `seed` (the tutorial's network) and `lenet5` (28x28 inputs, 10 classes).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/shape.hpp"

namespace tapegrad {

enum class LayerKind { conv2d, linear, relu, sigmoid, tanh, max_pool2d, avg_pool2d, flatten };
enum class LossKind { mse, cross_entropy };

const char* layer_kind_name(LayerKind k);
const char* loss_kind_name(LossKind k);

struct LayerSpec {
  LayerKind kind = LayerKind::relu;
  int line = 0;          // 1-based line of the spec text
  std::string name;      // "conv1", "fc2", "relu3", ...: the prefix of parameter names
  index_t out = 0;       // conv2d out channels / linear out features
  bool bias = true;      // conv2d, linear
  Conv2dParams conv;     // conv2d
  Pair kernel{0, 0};     // conv2d (r, s)
  Pool2dParams pool;     // pools
  Shape in_shape, out_shape;  // per sample (batch dimension 1), filled by the parser
  int w_param = -1, b_param = -1;  // indices into NetSpec::params, -1 when absent
};

struct ParamSpec {
  std::string name;  // "conv1.w"
  Shape shape;
  index_t fan_in = 1;  // inputs feeding one output (C/groups*R*S or in): for initialization
  int layer = 0;       // index into NetSpec::layers
};

struct NetSpec {
  std::string source;       // "seed", "lenet5" or the file name (for reports)
  std::vector<index_t> input;  // C H W (or any per-sample dims)
  std::vector<LayerSpec> layers;
  LossKind loss = LossKind::mse;
  std::vector<ParamSpec> params;  // in layer order, w before b

  // Shape of the input / network output for a batch of n samples.
  Shape input_shape(index_t n) const;
  Shape output_shape(index_t n) const;
  // Longest reduction along any forward or backward path: the sum, over the layers, of the
  // largest dot-product length a forward, backward-data or backward-weights element takes
  // (for a batch of n). Used by the four-way check's tolerance.
  index_t reduction_depth(index_t n) const;
};

// Parses a spec text; `source` names it in reports. Throws std::invalid_argument
// "spec line L: ..." on any problem (and "spec: ..." for problems of the whole text).
NetSpec parse_spec(std::string_view text, std::string source = "spec");

// The text of a preset (`seed`, `lenet5`), or nullopt.
std::optional<std::string> preset_spec_text(std::string_view name);

// A preset name or a spec file path. Throws std::invalid_argument when the file cannot be
// read ("spec: cannot read 'x.txt'") or does not parse.
NetSpec load_spec(const std::string& name_or_path);

}  // namespace tapegrad
