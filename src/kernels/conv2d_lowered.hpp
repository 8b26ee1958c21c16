// Private to the fast conv2d: the lowered convolution, which runs all three directions as
// register-tiled products over a padded, stride-phase-split copy of the input ("X~").
//
// The lowering. For each image (and group) X~ holds the padded input split into its stride
// phases: X~[c][a][b][h''][w''] = x[c][h''*sh + a - ph][w''*sw + b - pw] (zero outside x), an
// (hq x wq) image per phase. Output pixel (p, q) then reads tap (c, r, s) at
//   X~ + boff(c, r, s) + p*wq + q,   boff = c*plane + phase(r*dh % sh, s*dw % sw)
//                                          + (r*dh / sh)*wq + (s*dw / sw),
// so every tap is one offset and consecutive output pixels read consecutive elements: strides
// and dilations cost nothing in the inner loops, and no im2col matrix is ever written.
//   forward        y[k][p,q]  = b[k] + sum_taps w[k][tap] * X~(x)[boff(tap) + p*wq + q]
//   backward-data  (stride 1) the forward of dy padded by dilation*(kernel-1) - pad with the
//                  flipped, transposed weights: dx[c][h,w] = sum_{k,r,s} w[k][c][R-1-r][S-1-s]
//                  * X~(dy)[...]
//   backward-wts   dw[k][tap] = sum_{n,p,q} dy[n][k][p,q] * X~(x)[boff(tap) + p*wq + q]
// Two layouts of X~ ("tiers"), chosen per shape by lowered_plan from the work each wastes:
//   pixels   a vector is `lanes` consecutive pixels of one image (p*wq + q): the columns
//            q in [Q, wq) are computed and dropped (forward) or multiplied by a zero-padded dy
//            (backward-weights). Best for big images and small batches.
//   batch    a vector is the same pixel of `lanes` consecutive images (X~ interleaves them):
//            no wasted columns, aligned loads; costs a transposition of x / dy and y / dx.
//            Best for batches of small images (LeNet at batch 64).
// and a third tier over the pixels layout of X~:
//   channels a vector is `lanes` consecutive output channels (backward-weights: of dy) of one
//            pixel: the input is broadcast one element at a time, the packed weights (dy,
//            transposed pixel-major) are the vectors (oneDNN's blocked idea without a blocked
//            tensor: forward and backward-data transpose a run of tiles into NCHW by L x L
//            blocks). Its tiles cover output pixels only (X~'s columns [Q, wq) are skipped).
//            A tile's inputs stay in the L1 cache across up to 4 vectors of channels. Best for
//            many channels (ResNet's and VGG's layers).
// Sum order. Forward and backward-data: every output element is ONE fused multiply-add chain
// over the taps in order, started at the bias (or 0), whatever the tier, the tile or the
// thread. Backward-weights: pixels and batch tiers, each lane sums its share of (n, p, q) in a
// fixed order, the lanes of a run of images are combined by a fixed tree, runs in run order;
// channels tier, each weight is one chain over (n, p, q) in order. All are fixed by the
// shape, so the results are the same bits for any number of threads.
#pragma once

#include <atomic>
#include <string>

#include "tapegrad/kernels/activation_kind.hpp"
#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::fast::detail {

enum class ConvDir { forward, backward_data, backward_weights };

// 0: each shape takes the tier its plan prefers; 1: always "pixels"; 2: always "batch";
// 3: always "channels" (fast::set_conv2d_tier, for tests and benches).
std::atomic<int>& forced_tier();

// Which lowering a direction of this geometry takes: "pixels", "batch", "channels", or
// nullptr where the lowered convolution does not apply (backward-data with a stride > 1).
template <class T>
const char* lowered_tier(const Conv2dGeom& g, ConvDir dir);
// The tier and its tiling, for tests and bench labels (k*v: k equal items v):
//   "batch panels=2*8 tile=2*3" (products: rows per panel, output vectors per tile),
//   "pixels panels=3+2 tap_tiles=5x6+4x8 runs=2" (backward-weights: tap tiles x taps each).
template <class T>
std::string lowered_plan(const Conv2dGeom& g, ConvDir dir);

// The scratch memory (elements of T) a direction of this geometry holds while it runs: the
// buffers shared by all threads, and those each thread of the team holds.
struct LoweredWorkspace {
  index_t shared = 0, per_thread = 0;
};
template <class T>
LoweredWorkspace lowered_workspace(const Conv2dGeom& g, ConvDir dir);

// y = act(conv2d(x, w, b)); y has the output shape. The activation is applied to each tile's
// outputs in the stage they are written through (fast::activate).
template <class T>
void lowered_forward(const Conv2dGeom& g, const T* x, const T* w, const T* b, T* y,
                     Activation act);
// dx = conv2d_backward_data(dy, w) for stride 1; dx has x's shape.
template <class T>
void lowered_backward_data(const Conv2dGeom& g, const T* dy, const T* w, T* dx);
// dw = conv2d_backward_weights(x, dy); dw has w's shape.
template <class T>
void lowered_backward_weights(const Conv2dGeom& g, const T* x, const T* dy, T* dw);

}  // namespace tapegrad::fast::detail
