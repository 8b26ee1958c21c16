// The magnitude bound G_abs behind the four-way check's tolerance (gradcheck/fourway.hpp):
// per gradient element, the sum of |terms| along all paths from the loss to it, in f50.
//
// Tolerance of ways 1-3 (derived; see gradcheck/tolerance.hpp for gamma), per element i:
//   tol_i = gamma_T(K) * G_abs[i],  K = NetSpec::reduction_depth(N) + 2
// Every gradient element is a sum over the paths from the loss to that element; along a path
// every forward value and every backward product went through reductions whose lengths, summed
// over the layers (forward + backward-data + backward-weights, + a few roundings per
// exp/tanh), are at most reduction_depth(N); +1 for rounding the problem's numbers, +1 for
// rounding the reference to compare. With Higham's eq. 3.5 the error of an element is at most
// gamma(K) * (sum of |terms| along all paths to it). G_abs[i] is that sum of |terms|, computed
// in f50 by abs_gradient_scales(): the backward pass with every quantity replaced by a bound on
// its magnitude. NOT max |g| per tensor: a gradient can be the result of heavy cancellation
// (a conv bias gradient sum_{n,p,q} dy cancels to ~1e-16 |dy| when the loss is nearly
// stationary in it; smallest case: input 1 3 3; conv2d out=1 kernel=1 bias=true; flatten;
// linear out=1; loss mse), and then every way is one ulp of the terms off a tiny g: about 20%
// of random networks false-failed against gamma(K) * max |g| (found by props_networks.cpp).
// The forward pass can cancel too (...linear out=1; linear out=1 bias=false; loss mse with the
// output ~ the target), so the magnitudes are seeded from A_l, the activations of the forward
// pass run on |x| and |params|: A_l bounds the sum of |terms| behind a_l, hence (times gamma)
// a_l's forward rounding error, which every gradient computed from a_l inherits.
//   loss seed     mse: 2 (|A_out| + |t|) / M;  cross_entropy: (p + onehot)(1 + max|A_out|) / N
//   conv/linear   d_in = backward_data(|dy|, |w|), dW = backward_weights(A_l, |dy|), db = sum |dy|
//   relu, pools   the same routing (decided on the f50 forward) applied to |dy|; flatten: reshape
//   sigmoid       |dy| y  (= |dy| (y(1-y) + y^2): the derivative plus the error of y (1-y))
//   tanh          |dy|    (= |dy| ((1-y^2) + y^2))
// Every term of the real backward is bounded in magnitude by the corresponding term here, so
// G_abs[i] >= sum of |terms| behind g_i >= |g_i|. A wrong VJP gives errors of order |g|, far
// above gamma(K) G_abs (e.g. lenet5, batch 2: K ~ 3400, gamma ~ 4e-13 in double, 2e-4 in
// float). The price: G_abs is a worst-case bound, and through a deep network it compounds
// (|W_L|...|W_1| |x| grows by ~sqrt(fan_in) per layer where the signed values do not): lenet5
// gets S_abs ~ 1e5..1e9 against S ~ 1, so in float (gamma(3354) ~ 2e-4) its tolerance no
// longer excludes O(S) errors; such rows are flagged (TensorRow::strict, "ok*").
//
// Along a branch: where a way took a relu / max-pool decision differently from the reference
// (gradcheck/decisions.hpp), its bound routes |dy| along ITS choices: pass them as `branch`
// (per layer the chosen input of every output, an empty tensor for the layers that keep the
// reference's routing).
#pragma once

#include <span>
#include <vector>

#include "tapegrad/net/problem.hpp"
#include "tapegrad/net/reference.hpp"
#include "tapegrad/net/spec.hpp"
#include "tapegrad/scalar.hpp"

namespace tapegrad::gradcheck {

// The magnitude bounds G_abs of every gradient tensor (x, then the parameters in NetSpec order)
// of the problem `v` (in f50). See the derivation above; tol_i = gamma_T(K) * G_abs[i].
inline std::vector<Tensor<f50>> abs_gradient_scales(
    const NetSpec& spec, const NetValues<f50>& v,
    const std::vector<Tensor<index_t>>* branch = nullptr) {
  const auto absf = [](const Tensor<f50>& t) {
    return map(t, [](const f50& e) { return f50(abs(e)); });
  };
  const std::vector<Tensor<f50>> acts = reference_activations(spec, v.x, v.params);
  std::vector<Tensor<f50>> abs_params;
  for (const auto& p : v.params) abs_params.push_back(absf(p));
  const std::vector<Tensor<f50>> acts_abs = reference_activations(spec, absf(v.x), abs_params);
  const Tensor<f50>& out = acts.back();
  const Tensor<f50>& out_abs = acts_abs.back();
  const index_t count = spec.loss_count(out.size(0));
  Tensor<f50> d = visit_loss_kind(spec.loss, [&](auto loss) {
    return decltype(loss)::magnitude_seed(out, out_abs, v.targets, count);
  });
  std::vector<Tensor<f50>> gp(v.params.size());
  std::vector<const Tensor<f50>*> lp;
  std::vector<Tensor<f50>> dp;
  for (std::size_t li = spec.layers.size(); li-- > 0;) {
    const LayerSpec& L = spec.layers[li];
    if (branch && (*branch)[li].numel() > 0) {
      // |dy| routed to each output's chosen input, in output order (as the kinds' backward)
      const Tensor<index_t>& chosen = (*branch)[li];
      Tensor<f50> in(acts[li].shape());
      for (index_t o = 0; o < chosen.numel(); ++o)
        if (chosen[o] >= 0) in[chosen[o]] += d[o];
      d = std::move(in);
      continue;
    }
    lp.clear();
    for (int i : L.params) lp.push_back(&abs_params[static_cast<std::size_t>(i)]);
    dp.assign(L.params.size(), Tensor<f50>());
    const MagnitudeInputs m{acts[li], acts_abs[li], acts[li + 1], ParamViews<f50>(lp)};
    d = visit_layer_kind(L.kind, [&](auto kind) {
      return decltype(kind)::magnitude(L, m, d, std::span<Tensor<f50>>(dp));
    });
    for (std::size_t j = 0; j < dp.size(); ++j)
      gp[static_cast<std::size_t>(L.params[j])] = std::move(dp[j]);
  }
  std::vector<Tensor<f50>> scales{std::move(d)};
  for (auto& t : gp) scales.push_back(std::move(t));
  return scales;
}

}  // namespace tapegrad::gradcheck
