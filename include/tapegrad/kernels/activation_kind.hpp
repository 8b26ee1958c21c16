// The activation a fused conv2d or linear applies to its own output (ops::conv2d and
// ops::linear take one; net/network.hpp fuses a conv2d or linear layer with the activation
// layer after it). `none` is the plain op. The fused op's forward is the plain op's forward
// with the activation's element function applied to each output as the kernel writes it, and
// its VJP is the activation's VJP from the output (relu: dy * [y > 0], which is dy * [z > 0]
// for y = relu(z); sigmoid: dy * y * (1 - y); tanh: dy * (1 - y^2)) followed by the plain op's,
// so a fused op gives the same bits as the two ops one after the other (tests/fused_ops_test).
#pragma once

#include <string_view>

namespace tapegrad {

enum class Activation { none, relu, sigmoid, tanh };

// "relu", "sigmoid", "tanh" ("" for none): the activation layer's name in a spec.
constexpr std::string_view activation_name(Activation a) {
  switch (a) {
    case Activation::none: return "";
    case Activation::relu: return "relu";
    case Activation::sigmoid: return "sigmoid";
    case Activation::tanh: return "tanh";
  }
  return "";
}

}  // namespace tapegrad
