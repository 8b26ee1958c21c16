// tapegrad: everything public, in one include. Link tapegrad::tapegrad (find_package(tapegrad
// CONFIG REQUIRED)). Each header documents its part; the map:
//
//   data            Tensor<T>, Shape, the precisions float / double / f50 (50 digits)
//   reference ops   tapegrad::ref::   conv2d, linear, activations, pools, flatten, losses, with
//                   their gradients, templates over T (any precision, and Var<T>);
//                   geometry makers validate at entry (make_conv2d_geom, ...)
//   dispatch        tapegrad::kernels:: same names; float/double go to the fast kernels
//   autodiff        Var<T> + VarTape<T> (scalar tape), Tape<T> + ops:: (op tape)
//   layers          hand-written layers (their own backward loops), Sequential
//   net             the table of layer kinds and losses, network specs, the parameter set,
//                   a spec's network on the op tape / as hand-written layers / as reference
//   gradient checks gradcheck::gradcheck          a generic user function: scalar tape (Var<f50>)
//                                                 vs 50-digit finite differences, and your
//                                                 gradient vs that reference
//                   gradcheck::gradcheck_blackbox a black-box double function + your gradient
//                                                 (Richardson / Ridders extrapolation)
//                   gradcheck::finite_diff        50-digit finite differences with error bounds
//                   gradcheck::compare            element-wise report: abs / rel / ULP errors
//                   gradcheck::four_way_check     the four ways to a network's gradient
//                   tolerance.hpp                 the derived tolerance model gamma(K) * S
//   oracle          oracle::check_conv2d_*        your raw-buffer kernel (float/double,
//                                                 NCHW/NHWC) vs the 50-digit reference
//                   oracle::check_linear_*, _max_pool2d_*, _avg_pool2d_*, _relu_*, _sigmoid_*,
//                   _tanh_*, _softmax_*, _log_softmax_*, _mse_loss_*, _cross_entropy_*
//                                                 the same for every other op
//                   oracle::*_bound, judge_bound  each op's exact result and derived bound
//                   oracle::search_<op>           your kernel as a property-test suite:
//                                                 random cases, shrinking, replay, batch files
//   io              io::read_npy / write_npy      NumPy .npy files
#pragma once

#include "tapegrad/errors.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/shape.hpp"
#include "tapegrad/tensor.hpp"

#include "tapegrad/kernels/activation.hpp"
#include "tapegrad/kernels/activation_ref.hpp"
#include "tapegrad/kernels/conv2d.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/kernels/linear.hpp"
#include "tapegrad/kernels/linear_ref.hpp"
#include "tapegrad/kernels/loss.hpp"
#include "tapegrad/kernels/loss_ref.hpp"
#include "tapegrad/kernels/pool.hpp"
#include "tapegrad/kernels/pool_ref.hpp"

#include "tapegrad/ops/ops.hpp"
#include "tapegrad/tape/tape.hpp"
#include "tapegrad/var/var.hpp"

#include "tapegrad/layers/layers.hpp"

#include "tapegrad/net/layer_table.hpp"
#include "tapegrad/net/loss_table.hpp"
#include "tapegrad/net/network.hpp"
#include "tapegrad/net/params.hpp"
#include "tapegrad/net/problem.hpp"
#include "tapegrad/net/reference.hpp"
#include "tapegrad/net/sequential.hpp"
#include "tapegrad/net/spec.hpp"
#include "tapegrad/random.hpp"

#include "tapegrad/gradcheck/compare.hpp"
#include "tapegrad/gradcheck/finite_diff.hpp"
#include "tapegrad/gradcheck/fourway.hpp"
#include "tapegrad/gradcheck/generic.hpp"
#include "tapegrad/gradcheck/richardson.hpp"
#include "tapegrad/gradcheck/tolerance.hpp"

#include "tapegrad/io/npy.hpp"
#include "tapegrad/oracle/activation.hpp"
#include "tapegrad/oracle/bounds.hpp"
#include "tapegrad/oracle/linear.hpp"
#include "tapegrad/oracle/loss.hpp"
#include "tapegrad/oracle/pool.hpp"
#include "tapegrad/oracle/raw.hpp"
#include "tapegrad/oracle/search.hpp"
#include "tapegrad/oracle/descriptor.hpp"
