// Where the failing elements of an oracle report are, as index patterns a reader can act on:
// "only group 1 of 2", "only the last q", "only n > 0", "only where the window touches
// padding", "every element". Computed from the failing flags (one per element, row-major in
// the user's layout) and the op's geometry, handed over as a PatternSpec:
//   axes      one name per axis of the output in the user's layout ("n","h","w","c" for
//             NHWC); an axis with group_size > 0 holds channels in groups of that size
//   features  per-element facts of the geometry, each with its wording both ways
//             ("the window touches padding" / "the window does not touch padding")
// Every line is a true statement about ALL failing elements, with the count of elements it
// covers: "only n > 0 (12 of the 24 elements there fail)".
// Internal to src/oracle; not installed.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "tapegrad/shape.hpp"

namespace tapegrad::oracle::driver {

struct PatternAxis {
  std::string name;
  index_t group_size = 0;  // > 0: channels, in groups of this many
};
struct PatternFeature {
  std::string where, where_not;  // "the window touches padding", "... does not touch ..."
  std::vector<bool> has;         // per element, row-major in the user's layout
};
struct PatternSpec {
  std::vector<PatternAxis> axes;  // empty: d0, d1, ... by rank
  std::vector<PatternFeature> features;
};

// The pattern lines for the failing elements (none when nothing fails).
std::vector<std::string> failure_pattern(const Shape& shape, const std::vector<bool>& fail,
                                         const PatternSpec& spec);

// Axis names from a layout's letters ("NHWC" -> n,h,w,c; "N,out" -> n,out); when the letters
// do not name every axis, n,c for rank 2, n,c,h,w for rank 4, else d0, d1, ...
std::vector<PatternAxis> axes_of(const std::string& letters, index_t rank);

// A logical 4-d spec (axes and features in NCHW / KCRS order) moved to channels-last order
// (NHWC / KRSC): axis 1 becomes the last, every feature is transposed alike.
PatternSpec to_channels_last(const PatternSpec& logical, const Shape& logical_shape);

// Window facts along one spatial axis of a windowed op (conv2d, pooling): output o reads
// input o*stride - pad + t*dilation for t in [0, taps).
struct WindowAxis {
  index_t in = 0, out = 0, taps = 0, stride = 1, pad = 0, dilation = 1;
  bool window_touches_pad(index_t o) const;    // some tap of output o is in the padding
  bool read_by_padded_window(index_t i) const;  // input i is read by such a window
  bool read_at_all(index_t i) const;            // some window reads input i
  bool tap_reads_pad(index_t t) const;          // tap t is in the padding for some output
};

// The features of a 2-d windowed op's tensors (planes = the product of the leading two axes,
// each plane (out or in) x (out or in) in row-major order, logical layout):
//   output  y[.., p, q]   "the window touches padding" / "... does not touch padding"
//   input   dx[.., h, w]  "a window that touches padding reads it" and "no window reads it"
//   taps    dw[.., r, s]  "the tap reads padding (for some output)"
PatternFeature window_output_feature(index_t planes, const WindowAxis& h, const WindowAxis& w);
std::vector<PatternFeature> window_input_features(index_t planes, const WindowAxis& h,
                                                  const WindowAxis& w);
PatternFeature window_tap_feature(index_t planes, const WindowAxis& h, const WindowAxis& w);

// The report's pattern block: one line per pattern, the first after the label.
void print_pattern(std::ostream& os, const std::vector<std::string>& lines);

}  // namespace tapegrad::oracle::driver
