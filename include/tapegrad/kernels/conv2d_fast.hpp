// Fast conv2d (float and double): OpenMP-parallel, register-blocked, vectorized for the CPU it
// runs on (AVX-512, AVX2+FMA or baseline x86-64, chosen at run time). Same names and meaning as
// the reference twins in conv2d_ref.hpp; the geometry is validated by the caller
// (make_conv2d_geom), the kernels only assert.
//
// What differs from the reference, and why:
//   - all three directions are register-tiled products over a padded copy of the input split
//     into its stride phases, so that each tap (c, r, s) is one offset and consecutive outputs
//     read consecutive memory (no im2col matrix is written); the copy either keeps images
//     apart (vectors along the pixels) or interleaves a batch (vectors across images), which
//     ever wastes less on the shape. Backward-data with a stride > 1 is w^T dy added back with
//     col2im. Tiny problems run plain direct loops.
//   - forward and backward-data outputs are each one fused multiply-add chain over the taps in
//     order, from the bias; backward-weights sums in vector lanes combined by a fixed tree. So
//     the summation order differs from the reference's (agreement is within the derived bound
//     gamma(K) * sum|terms|), but it is FIXED by the shape: a thread owns its outputs, every
//     reduction is cut by the shape alone and combined in a fixed order, so the results are
//     bitwise identical for any number of threads.
// The *_into variants write into a caller's tensor (reshaped to the output shape if it has
// another) so a training loop can reuse buffers; workspaces are per-thread and reused.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tapegrad/kernels/activation_kind.hpp"
#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::fast {

// y = conv2d(x, w, b): y[n,k,p,q] = b[k] + sum_{c,r,s} x[n, g*C/G + c, p*sh - ph + r*dh,
// q*sw - pw + s*dw] * w[k,c,r,s] (zero outside x), g = k / (K/G). With an activation, each
// output then goes through it (fast::activate) while its tile is in cache: the same bits as
// the activation's own kernel run on the plain output.
Tensor<float> conv2d_forward(const Conv2dGeom& g, const Tensor<float>& x, const Tensor<float>& w,
                             const Tensor<float>* b, Activation act = Activation::none);
Tensor<double> conv2d_forward(const Conv2dGeom& g, const Tensor<double>& x,
                              const Tensor<double>& w, const Tensor<double>* b,
                              Activation act = Activation::none);
void conv2d_forward_into(const Conv2dGeom& g, const Tensor<float>& x, const Tensor<float>& w,
                         const Tensor<float>* b, Tensor<float>& y,
                         Activation act = Activation::none);
void conv2d_forward_into(const Conv2dGeom& g, const Tensor<double>& x, const Tensor<double>& w,
                         const Tensor<double>* b, Tensor<double>& y,
                         Activation act = Activation::none);

// dx = conv2d_backward_data(dy, w): the vector-Jacobian product of y with respect to x.
Tensor<float> conv2d_backward_data(const Conv2dGeom& g, const Tensor<float>& dy,
                                   const Tensor<float>& w);
Tensor<double> conv2d_backward_data(const Conv2dGeom& g, const Tensor<double>& dy,
                                    const Tensor<double>& w);
void conv2d_backward_data_into(const Conv2dGeom& g, const Tensor<float>& dy,
                               const Tensor<float>& w, Tensor<float>& dx);
void conv2d_backward_data_into(const Conv2dGeom& g, const Tensor<double>& dy,
                               const Tensor<double>& w, Tensor<double>& dx);

// dw = conv2d_backward_weights(x, dy).
Tensor<float> conv2d_backward_weights(const Conv2dGeom& g, const Tensor<float>& x,
                                      const Tensor<float>& dy);
Tensor<double> conv2d_backward_weights(const Conv2dGeom& g, const Tensor<double>& x,
                                       const Tensor<double>& dy);
void conv2d_backward_weights_into(const Conv2dGeom& g, const Tensor<float>& x,
                                  const Tensor<float>& dy, Tensor<float>& dw);
void conv2d_backward_weights_into(const Conv2dGeom& g, const Tensor<double>& x,
                                  const Tensor<double>& dy, Tensor<double>& dw);

// db[k] = sum_{n,p,q} dy[n,k,p,q], summed in vector lanes (each in (n, p, q) order) combined
// by a fixed tree: the order depends on the shape and the instruction set only.
Tensor<float> conv2d_backward_bias(const Conv2dGeom& g, const Tensor<float>& dy);
Tensor<double> conv2d_backward_bias(const Conv2dGeom& g, const Tensor<double>& dy);
void conv2d_backward_bias_into(const Conv2dGeom& g, const Tensor<float>& dy, Tensor<float>& db);
void conv2d_backward_bias_into(const Conv2dGeom& g, const Tensor<double>& dy,
                               Tensor<double>& db);

enum class Conv2dDirection { forward, backward_data, backward_weights };
// The scratch memory, in bytes, one call of a direction of this geometry holds with `threads`
// threads: the buffers all threads share and one set per thread (the workspaces are grow-only
// per thread and kept between calls, so a loop over one shape holds this much, no more). The
// caller's tensors and the outputs are not counted. For memory estimates before a run.
template <class T>
std::uint64_t conv2d_workspace_bytes(const Conv2dGeom& g, Conv2dDirection dir, int threads);
template <>
std::uint64_t conv2d_workspace_bytes<float>(const Conv2dGeom& g, Conv2dDirection dir,
                                            int threads);
template <>
std::uint64_t conv2d_workspace_bytes<double>(const Conv2dGeom& g, Conv2dDirection dir,
                                             int threads);
// The code path one direction of this geometry takes on this CPU, for tests and benches:
// "direct", "lowered-pixels", "lowered-batch", "lowered-channels" (forward and backward-data)
// or "col2im" (see src/kernels/conv2d_fast.cpp).
template <class T>
const char* conv2d_path(const Conv2dGeom& g, Conv2dDirection dir);
template <>
const char* conv2d_path<float>(const Conv2dGeom& g, Conv2dDirection dir);
template <>
const char* conv2d_path<double>(const Conv2dGeom& g, Conv2dDirection dir);
// The path and its tiling, e.g. "lowered-batch panels=2*8 tile=2*3" or "lowered-pixels
// panels=3+2 tap_tiles=5x6+4x8 runs=2" (rows per panel; output vectors per tile; backward-
// weights: tap tiles x taps each, and the runs of images its reduction is cut into; k*v is k
// equal items v).
template <class T>
std::string conv2d_plan(const Conv2dGeom& g, Conv2dDirection dir);
template <>
std::string conv2d_plan<float>(const Conv2dGeom& g, Conv2dDirection dir);
template <>
std::string conv2d_plan<double>(const Conv2dGeom& g, Conv2dDirection dir);

// Forces the layout of the lowered convolution ("pixels", "batch" or "channels"; "auto", the
// default, lets each shape take its plan's choice) so that tests can reach every layout on any
// shape and benches can compare them. "channels": a vector is consecutive output channels of
// one pixel (backward-weights: of dy). Results of forward and backward-data are the same bits
// in all three (one FMA chain per output either way); backward-weights sums in a different
// order in each (lanes and a tree in "pixels" and "batch", one chain per weight in
// "channels").
// Throws std::invalid_argument for another name. Not to be called while kernels run.
void set_conv2d_tier(std::string_view tier);

// The instruction set the fast kernels use: "avx512", "avx2" or "generic".
const char* isa();
// Forces an instruction set ("avx512", "avx2", "generic", or "best") for tests and benches;
// throws std::invalid_argument if the CPU lacks it. Not to be called while kernels run.
void set_isa(std::string_view name);

}  // namespace tapegrad::fast
