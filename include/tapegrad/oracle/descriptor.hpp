// One case of a search (oracle/search.hpp) as one line of text: what a failing search prints,
// what SearchOptions::replay takes, and what a batch file holds, one per line (benchdnn style):
//
//   conv2d_backward_data mb1ic2ih5iw4oc2kh3kw3sh1sw2ph1pw0dh1dw1g2b0 values=exact seed=7
//   max_pool2d_forward mb2ic3ih9iw9kh3kw3sh2sw2ph1pw1 values=ties seed=1
//   linear_forward mb4ic20oc5b1 values=wide seed=3
//   softmax_forward 4x10 seed=2
//   cross_entropy_backward 8x5
//
// <op> <geometry> [values=uniform|exact|ties|wide] [seed=N]; the op may be left out in a batch
// file (it is the search's). Geometries:
//   conv2d    mb ic ih iw oc kh kw sh sw ph pw dh dw g b  (Conv2dGeom::descriptor() + b, the
//             bias: 1 or 0). Defaults: mb1, iw = ih, kw = kh, sh1, sw = sh, ph0, pw = ph, dh1,
//             dw = dh, g1, b0; ic ih oc kh are required.
//   pooling   mb ic ih iw kh kw sh sw ph pw  (Pool2dGeom::descriptor()); defaults as conv2d,
//             but sh = kh (PyTorch's stride = kernel).
//   linear    mb ic oc b  (LinearGeom::descriptor(): in = ic, out = oc); mb1, b0 by default.
//   activations, mse_loss   the shape, "2x3x4x5" (softmax / log_softmax over dim 1)
//   cross_entropy           "NxC" (rows x classes)
// values=exact is exact-input mode (OracleOptions::exact_inputs; conv2d and linear only);
// values defaults to uniform and seed to 1. Bad text is std::invalid_argument naming the token.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tapegrad/oracle/activation.hpp"
#include "tapegrad/oracle/linear.hpp"
#include "tapegrad/oracle/loss.hpp"
#include "tapegrad/oracle/pool.hpp"
#include "tapegrad/oracle/raw.hpp"

namespace tapegrad::oracle {

// The values of a case: exact-input mode, or one of OracleOptions::values.
enum class CaseValues { exact, uniform, ties, wide };
const char* case_values_name(CaseValues v);  // "exact", "uniform", "ties", "wide"

struct CaseDescriptor {
  std::string op;        // "conv2d_forward"; "" in a batch line that leaves it out
  std::string geometry;  // "mb1ic2ih5..." / "2x3x4"
  CaseValues values = CaseValues::uniform;
  std::uint64_t seed = 1;
  // "<op> <geometry> values=<v> seed=<n>", the form parse_descriptor reads.
  std::string str() const;
  // The check options of this case: seed, values or exact-input mode (the rest from base).
  OracleOptions options(OracleOptions base) const;
};
CaseDescriptor parse_descriptor(std::string_view line);

// Geometry text <-> problem. layout is not part of the text (it is the kernel's).
std::string geometry_of(const Conv2dProblem& p);
std::string geometry_of(const Pool2dProblem& p);
std::string geometry_of(const LinearProblem& p);
std::string geometry_of(const Shape& s);  // activations, mse_loss: "2x3x4"
std::string geometry_of(const CrossEntropyProblem& p);
Conv2dProblem conv2d_problem(std::string_view geometry, Layout layout = Layout::nchw);
Pool2dProblem pool2d_problem(std::string_view geometry, Layout layout = Layout::nchw);
LinearProblem linear_problem(std::string_view geometry);
Shape shape_problem(std::string_view geometry);
CrossEntropyProblem cross_entropy_problem(std::string_view geometry);

}  // namespace tapegrad::oracle
