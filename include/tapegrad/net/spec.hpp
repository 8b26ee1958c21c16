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
// The layer names, their keys and defaults come from the layer table (net/layer_table.hpp),
// the loss names from the loss table (net/loss_table.hpp); this parser names no kind.
//
// Rules: `input` is the first layer line and appears once; `loss` is the last one; linear
// needs a 2-d input (flatten first); cross_entropy needs a 2-d (N, classes) output; mse
// targets have the network output's shape. Parameters are named by the kind's prefix and a
// count: conv1.w conv1.b conv2.w ... fc1.w fc1.b ...; other layers are named by kind and a
// shared count (relu2, max_pool2d3, ...). PyTorch layouts: conv w (K,C/groups,R,S), linear w
// (out,in).
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

#include "tapegrad/net/layer_table.hpp"
#include "tapegrad/net/loss_table.hpp"
#include "tapegrad/shape.hpp"

namespace tapegrad {

struct ParamSpec {
  std::string name;  // "conv1.w"
  Shape shape;
  index_t fan_in = 1;  // inputs feeding one output (C/groups*R*S or in): for initialization
  int layer = 0;       // index into NetSpec::layers
  bool bias = false;
};

struct NetSpec {
  std::string source;          // "seed", "lenet5" or the file name (for reports)
  std::string text;            // the spec text itself (saved in checkpoints and summaries)
  std::vector<index_t> input;  // C H W (or any per-sample dims)
  std::vector<LayerSpec> layers;
  int loss = 0;                   // index into LossKinds
  std::vector<ParamSpec> params;  // in layer order, w before b

  // Shape of the input / network output for a batch of n samples.
  Shape input_shape(index_t n) const;
  Shape output_shape(index_t n) const;
  std::string_view loss_name() const { return loss_kind_name(loss); }
  // Longest reduction along any forward or backward path: the sum, over the layers, of the
  // largest dot-product length a forward, backward-data or backward-weights element takes
  // (for a batch of n), and the loss's. Used by the four-way check's tolerance.
  index_t reduction_depth(index_t n) const;
  // Multiply-adds of one forward pass of layers [start, end) at batch n.
  double forward_macs(std::size_t start, index_t n) const;
  // The divisor of the loss's mean for a batch of n (mse: the output elements,
  // cross_entropy: n).
  index_t loss_count(index_t n) const;
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
