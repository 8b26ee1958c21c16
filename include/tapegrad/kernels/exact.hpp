// The exact engine for the linear ops (conv2d, linear, avg_pool2d): the bits of the 50-digit
// reference rounded once, at double-precision speed. The op headers conv2d_exact.hpp,
// linear_exact.hpp and pool_exact.hpp declare the kernels; this header says what they compute,
// proves it, and holds the types they share.
//
// WHAT IT COMPUTES. Every output element of these ops is a sum of n terms t_i (products of two
// input values, single input values, or a bias), divided by the window size for avg_pool2d.
// Write E for the exact real value and F for what the reference element function computes in
// f50 (ref::conv2d_forward_at<f50> etc.: terms added one by one in the reference order, each
// partial sum rounded to 168 bits -- the bits `ref::conv2d_forward` gives on f50 tensors).
// For each element an exact kernel emits, according to its tag (below):
//   Nearest<T>  round_T(F), T = float or double, round_T = io::round_to_float/round_to_double:
//               bit for bit what `tapegrad ref --engine f50` writes. Where the fast path
//               decides the element it is ALSO round_T(E), the correctly rounded exact value.
//   AbsSumUp    a double S+ >= sum_i |t_i| (the S behind the derived tolerances), S+ at most
//               a few ulps above it: an upper bound, rounded up, never below.
//   Precise     the value as f50, within beta (below) of E; for judging errors.
// The target is F, not E, and on purpose: F and E can round differently. Example in double:
// terms 1, 2^-53, 2^-300: E = 1 + 2^-53 + 2^-300 rounds up to 1 + 2^-52, but F drops 2^-300
// (it is below the 168th bit of the partial sum), is the midpoint 1 + 2^-53, and rounds to even,
// 1. Such elements are exactly the ones the fast path cannot decide; they take the fallback,
// which IS the reference element function, so they get F's bits too.
//
// THE FAST PATH (src/kernels/exact_sum.hpp), and why it is right. u = 2^-53, eta = 2^-1075.
//  1. Scaling. The inputs are multiplied by powers of two 2^sa, 2^sb chosen from the exponents
//     of their largest and smallest nonzero magnitudes, so that every scaled term is below
//     2^(1014 - bitlength(n)) (no sum can overflow) and every scaled input is exactly
//     representable (normal, or scaled up). Products then carry the factor 2^sigma, sigma =
//     sa + sb, exactly (an all-zero factor is not scaled: its products are 0 at any scale). A
//     bias is scaled by 2^sigma and may round, by at most eta (it is counted like a product
//     below). A call whose inputs cannot be scaled exactly (a tensor spanning more than about
//     2^1500) computes every element through the fallback.
//  2. Products. p = fl(a*b), e = fl(fma(a, b, -p)): p + e = a*b exactly when a*b - p has no
//     bits below 2^-1074 (Boldo-Muller), and in every case |p + e - a*b| <= eta (the one
//     rounding of fma, in the subnormal range). |e| <= u|p| + eta.
//  3. Accumulation, per element, in L vector lanes: s += p by TwoSum (error-free: s_old + p =
//     s_new + q exactly, |q| <= u|s_new|), c += (q + e) rounded, a += |p| rounded; the lanes
//     are then combined the same way (TwoSum on the s, rounded sums on c and a). With N_ts
//     TwoSums (n + L) and M <= 2n + 2L rounded additions into c, sum p_i = s + sum q_j
//     exactly, every |s_j| <= (1 + g(n+L)) S_p (S_p = sum |p_i|, g(k) = k u / (1 - k u)), and
//     recursive summation gives |c - sum q_j - sum e_i| <= g(M) (sum |q_j| + sum |e_i|). So
//        |s + c - E| <= g(M) u (N_ts (1 + g(n+L)) + 1) S_p + 2 n eta,
//     and S_p <= a / (1 - g(n+L)) bounds S_p by what was computed.
//  4. The reference's own error. F adds n exact terms (products of doubles fit in 168 bits),
//     each partial sum rounded with relative error <= 2^-167, and |partial sums| <= S
//     (1 + tiny): |F - E| <= (n + 1) 2^-167 S (one more rounding for avg_pool2d's division).
//  So beta = C1 a + C2 (constants of the problem size, rounded up; kernels/exact_sum.hpp
//  make_bound) bounds BOTH |E - (s + c)| and |F - (s + c)|. avg_pool2d divides (s + c) by the
//  window size d in double-double (q = fl(h/d), its remainder exact by fma), adding the two
//  roundings of the low part to beta; F's division is one more 168-bit rounding.
//  Exactness certificate. If every scaled term is a multiple of 2^kappa (kappa from the lowest
//  set bits of the inputs) and a < 2^(kappa + 105 - bitlength(n + L + 2)), every TwoSum error
//  and every fma error is a multiple of 2^kappa too and their sums stay below 2^(kappa + 53):
//  each addition into c is exact, so s + c = E; and F's partial sums (multiples of 2^kappa
//  below 2^(kappa + 106)) fit in 168 bits, so F = E. Then beta = 0 (also through an exact
//  division: a zero remainder).
//  5. Decision (round to nearest). (h, l) = TwoSum(s, c). The candidate Y is h unscaled and
//     converted to T. Its rounding interval (the reals that round to Y) is (Y - hd, Y + hu),
//     hd, hu half the gaps to its neighbours in T (at a power of two the gap below is half the
//     gap above; at the largest finite value the gap above is that of 2^emax). If the interval
//     [s + c - beta, s + c + beta], computed exactly as d = h - Y*2^sigma (TwoSum) plus l, lies
//     strictly inside it -- checked with bounds that every rounding in the check can only make
//     more pessimistic (all comparisons are against exactly representable limits, and
//     rounding is monotone) -- then E and F both lie strictly inside it, so round_T(E) =
//     round_T(F) = Y whatever the tie rule. With beta = 0 the position of A = E = F relative to
//     the interval is computed exactly (signs of sums of four doubles by TwoSum cascades), so
//     an exact midpoint goes to the even neighbour, as IEEE and io::round_to_* do. Otherwise
//     the element falls back.
//  6. The edges. Overflow: Y = +-inf iff s + c - beta (in magnitude) is beyond max + ulp(max)/2
//     (the IEEE threshold; ties go to inf). Zero: Y = +-0 needs |s + c| + beta below half the
//     smallest subnormal of T AND |s + c| > beta, so that E and F have the sign of s + c, which
//     is the sign io::round_to_* gives a nonzero value that rounds to zero. When every term is
//     exactly zero (a = 0 and the scaling guarantees no nonzero product rounds to 0) E = 0 and
//     F = +0 (f50 adds like IEEE: +0 + (+-0) = +0), so Y = +0; so is an exact cancellation under
//     the certificate (E = F = 0); any other cancellation to zero falls back (F may then be a
//     nonzero residue: 1 + 2^-300 - 1 - 2^-300 is -2^-300 in f50). Subnormal outputs are
//     ordinary: the gaps of T's subnormals, scaled by 2^sigma, are exact doubles.
//  7. Threads. A decided element is round_T(E) and a fallback element is round_T(F): both
//     depend on the inputs alone, not on any summation order, so the output is bitwise the same
//     for every thread count by construction. The tiles are fixed by the shape as well, so
//     even which elements fall back (and the count) is the same.
//  AbsSumUp: the same accumulation on |inputs| gives s + c within beta of S; S+ = s + |l| +
//  beta rounded up (every rounding directed up), unscaled rounding up. Precise: (h + l)
//  unscaled in f50, within beta of E.
//
// WHEN IT FALLS BACK. Rarely on real data: beta / S is about n^2 2^-106 (2^-87 for a 3x3x64
// conv, 2^-76 for the backward-weights of a ResNet layer, n = 25088), so an element falls back
// only when its exact value lies within beta of a rounding boundary of T (probability about
// 2 beta / ulp: ~1e-8 per double element at n = 576 when |E| ~ S/24, far less for float
// outputs), when terms spanning more than ~100 bits cancel exactly to zero, or when the call
// cannot be scaled. Exact midpoints (common in sums of a few doubles) are decided by the
// certificate.
// Adversarial inputs (midpoints plus tiny terms, cancellation to the last bit) are built to hit
// exactly these cases; property_tests/exact_props.cpp does, and checks the bits still agree.
#pragma once

#include "tapegrad/scalar.hpp"
#include "tapegrad/shape.hpp"

namespace tapegrad::exact {

// What one or more exact calls did: how many elements they emitted and how many of those went
// through the 50-digit fallback (an unscalable call counts all its elements).
struct Stats {
  index_t elements = 0;
  index_t fallbacks = 0;
  Stats& operator+=(const Stats& o) {
    elements += o.elements;
    fallbacks += o.fallbacks;
    return *this;
  }
};

// The tags: what an exact kernel emits per element (see above). `type` is the element type of
// the tensor it returns.
template <class T>
struct Nearest {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  using type = T;
};
struct AbsSumUp {
  using type = double;
};
struct Precise {
  using type = f50;
};

}  // namespace tapegrad::exact
