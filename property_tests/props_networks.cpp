// Random sequential networks through the project's four-way check (gradcheck/fourway.hpp:
// op tape = scalar tape = hand-written layers = 50-digit finite differences, each judged
// against Var<f50> with the project's derived tolerance), and the op tape's hygiene: a tensor
// used twice accumulates, clearing and reusing a tape changes nothing, leaf order is irrelevant.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "cases.hpp"
#include "four_way.hpp"
#include "tapegrad/gradcheck/fourway.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/net/spec.hpp"
#include "tapegrad/ops/ops.hpp"
#include "tapegrad/var/var.hpp"

namespace tapegrad::props {
namespace {

// ---------------------------------------------------------------- random networks
struct NetCase {
  std::string text;  // the spec, one layer per line
  index_t batch = 1;
  std::uint64_t seed = 1;
};

void showValue(const NetCase& c, std::ostream& os) {
  std::string one_line = c.text;
  for (char& ch : one_line)
    if (ch == '\n') ch = ';';
  os << "batch=" << c.batch << " seed=" << c.seed << " spec: " << one_line;
}

// Builds a valid spec layer by layer, tracking the shape: 1-2 conv blocks (conv2d with
// stride/pad/dilation/groups, an optional activation, an optional max/avg pool), flatten, an
// optional hidden linear + activation, the output linear and a loss.
rc::Gen<NetCase> gen_net_case() {
  return rc::gen::exec([] {
    std::ostringstream s;
    index_t c = *rc::gen::inRange<index_t>(1, 3), h = *rc::gen::inRange<index_t>(3, 8),
            w = *rc::gen::inRange<index_t>(3, 8);
    s << "input " << c << " " << h << " " << w << "\n";
    const auto act = [&] {
      const int a = *rc::gen::inRange(0, 4);
      if (a == 1) s << "relu\n";
      if (a == 2) s << "sigmoid\n";
      if (a == 3) s << "tanh\n";
    };
    const int blocks = *rc::gen::inRange(1, 3);
    for (int b = 0; b < blocks; ++b) {
      const index_t groups = (c > 1 && *rc::gen::arbitrary<bool>()) ? c : 1;
      const index_t k = groups * *rc::gen::inRange<index_t>(1, 3);
      index_t ker[2], st[2], pd[2], dl[2];
      index_t in[2] = {h, w}, out[2];
      for (int a = 0; a < 2; ++a) {
        pd[a] = *rc::gen::inRange<index_t>(0, 2);
        dl[a] = *rc::gen::weightedElement<index_t>({{3, 1}, {1, 2}});
        st[a] = *rc::gen::weightedElement<index_t>({{3, 1}, {1, 2}});
        const index_t kmax = std::min<index_t>(3, (in[a] + 2 * pd[a] - 1) / dl[a] + 1);
        ker[a] = *rc::gen::inRange<index_t>(1, kmax + 1);
        out[a] = (in[a] + 2 * pd[a] - dl[a] * (ker[a] - 1) - 1) / st[a] + 1;
      }
      s << "conv2d out=" << k << " kernel=" << ker[0] << "," << ker[1] << " stride=" << st[0]
        << "," << st[1] << " pad=" << pd[0] << "," << pd[1] << " dilation=" << dl[0] << ","
        << dl[1] << " groups=" << groups << " bias=" << (*rc::gen::arbitrary<bool>() ? "true" : "false")
        << "\n";
      c = k, h = out[0], w = out[1];
      act();
      if (h >= 2 && w >= 2 && *rc::gen::arbitrary<bool>()) {
        const index_t pk = *rc::gen::inRange<index_t>(1, 3), ps = *rc::gen::inRange<index_t>(1, 3);
        s << (*rc::gen::arbitrary<bool>() ? "max_pool2d" : "avg_pool2d") << " kernel=" << pk
          << " stride=" << ps << "\n";
        h = (h - pk) / ps + 1, w = (w - pk) / ps + 1;
      }
    }
    s << "flatten\n";
    if (*rc::gen::arbitrary<bool>()) {
      s << "linear out=" << *rc::gen::inRange(1, 5) << "\n";
      act();
    }
    const bool ce = *rc::gen::arbitrary<bool>();
    s << "linear out=" << *rc::gen::inRange(ce ? 2 : 1, 5)
      << " bias=" << (*rc::gen::arbitrary<bool>() ? "true" : "false") << "\n";
    s << "loss " << (ce ? "cross_entropy" : "mse") << "\n";
    NetCase n;
    n.text = s.str();
    n.batch = *rc::gen::inRange<index_t>(1, 3);
    n.seed = *rc::gen::inRange<std::uint64_t>(1, 1u << 30);
    return n;
  });
}

// Each tensor is judged by the report itself: ways 1-3 per element at gamma_T(K) * G_abs[i]
// (fourway.hpp's cancellation-aware bound: the sum of |terms| along all paths, from a backward
// pass on magnitudes seeded by a forward pass on |x| and |params|), finite differences at
// 1e-24 * max(S_abs, 1). The first counterexamples this property found, before that bound
// moved into fourway.hpp, were cancelling bias gradients:
//   input 1 3 3; conv2d out=1 kernel=1 bias=true; flatten; linear out=1; loss mse
//
// Catches: a VJP (op tape) or a layer backward that is wrong only in composition -- a
// gradient not passed through flatten, a pool after a strided conv, an activation's derivative
// taken at the wrong tensor (x vs y), a loss gradient scaled by the wrong N.
template <class T>
void random_network_four_ways_agree() {
  const NetCase c = *gen_net_case();
  const NetSpec spec = parse_spec(c.text, "random");
  gradcheck::FourWayOptions opt;
  opt.batch = c.batch;
  opt.seed = c.seed;
  opt.fd_max_per_tensor = 4;   // finite differences at <= 4 elements per tensor ...
  opt.fd_budget_macs = 4e5;    // ... and ~4e5 f50 multiply-adds in all: fast enough for CI
  const gradcheck::FourWayReport rep = gradcheck::four_way_check<T>(spec, opt);
  std::string why;
  bool cancellation_allowance_used = false;
  bool kink_rows = false;
  for (std::size_t t = 0; t < rep.rows.size(); ++t) {
    const gradcheck::TensorRow& row = rep.rows[t];
    // A tensor where finite differences found kinks (a relu input or a max-pool tie at the
    // point, in 50 digits) is not judged: a way computing in T may round to the other side of
    // the kink and take the other branch's slope, an O(1) difference that is no bug (found by
    // the deep pass: conv -> max_pool -> conv -> relu with an exactly-zero relu input). The
    // conventions themselves are checked on exact inputs by the per-op properties.
    if (row.kinks > 0) {
      kink_rows = true;
      continue;
    }
    if (!row.strict) cancellation_allowance_used = true;
    for (int w = 0; w < gradcheck::num_ways; ++w) {
      const gradcheck::WayError& e = row.way[static_cast<std::size_t>(w)];
      if (!e.pass)
        why += row.name + ": " + gradcheck::way_name(w) + " max abs error " + sci(e.max_abs) +
               " at element " + std::to_string(e.worst) + " is " + sci(e.max_tol_frac) +
               " x its tolerance (S_abs " + sci(row.abs_scale) + ")\n";
    }
  }
  RC_CLASSIFY(cancellation_allowance_used, "a row passed only at gamma(K) * G_abs (ok*)");
  RC_CLASSIFY(kink_rows, "tensor with kinks not judged");
  // A relu / max-pool decision taken differently in T within its rounding: the ways that took
  // it are judged along their branch (gradcheck/decisions.hpp; the deep pass found the first).
  RC_CLASSIFY(!rep.flips.empty(), "decision flipped by rounding (judged along T's branch)");
  RC_CLASSIFY(rep.mistrusted, "mistrusted (mostly zero gradients)");
  RC_CLASSIFY(spec.loss_name() == "cross_entropy", "cross_entropy");
  RC_CLASSIFY(spec.layers.size() > 6, "deep (>6 layers)");
  if (!why.empty()) {
    std::ostringstream os;
    rep.print(os);
    RC_FAIL("spec:\n" + c.text + os.str() + "judged at gamma(K) * G_abs[i]:\n" + why);
  }
}

RC_GTEST_PROP(RandomNetworks, fourWaysAgreeInDouble, ()) { random_network_four_ways_agree<double>(); }
RC_GTEST_PROP(RandomNetworks, fourWaysAgreeInFloat, ()) { random_network_four_ways_agree<float>(); }

// ---------------------------------------------------------------- tape hygiene
// L = <conv(x, w), g1> + <conv(x, w2), g2> + <conv(x2, w), g3>: x and w are each used twice.
// The op tape's dx and dw must be the SUM of both uses (against the scalar tape on Var<f50>).
// Tolerance: each element is two VJP reductions added: gamma_double(kA + kB + 1) * (SA + SB).
// Catches: Grads::add overwriting instead of accumulating; a VJP that reads another op's
// gradient slot.
RC_GTEST_PROP(TapeHygiene, tensorUsedTwiceAccumulatesBothUses, ()) {
  const Conv2dCase c = *gen_conv2d_case();
  const Conv2dGeom g = [&] {
    Conv2dGeom gg = c.g;
    gg.has_bias = false;
    return gg;
  }();
  const Tensor<double> x2 = make_tensor(g.x_shape(), c.values, 11);
  const Tensor<double> w2 = make_tensor(g.w_shape(), c.values, 12);
  const Tensor<double> g2 = make_tensor(g.y_shape(), c.values, 13);
  const Tensor<double> g3 = make_tensor(g.y_shape(), c.values, 14);
  // op tape
  Tape<double> tape;
  const auto x = tape.leaf(c.x), w = tape.leaf(c.w), xb = tape.leaf(x2), wb = tape.leaf(w2);
  auto term = [&](const TapeTensor<double>& a, const TapeTensor<double>& b, const Tensor<double>& gy) {
    return ops::sum(ops::mul(ops::conv2d(a, b, std::nullopt, g.prm), tape.constant(gy)));
  };
  const auto loss = ops::add(ops::add(term(x, w, c.gy), term(x, wb, g2)), term(xb, w, g3));
  tape.backward(loss);
  // reference: the same function on the scalar tape in 50 digits
  VarTape<f50> vt;
  const auto vx = make_variables(vt, c.x.cast<f50>()), vw = make_variables(vt, c.w.cast<f50>());
  const auto vx2 = make_constants(x2.cast<f50>()), vw2 = make_constants(w2.cast<f50>());
  auto vterm = [&](const Tensor<Var<f50>>& a, const Tensor<Var<f50>>& b, const Tensor<double>& gy) {
    const auto y = ref::conv2d_forward(g, a, b, nullptr);
    Var<f50> acc(0);
    for (index_t i = 0; i < y.numel(); ++i) acc += y[i] * Var<f50>(f50(gy[i]));
    return acc;
  };
  vt.backward(vterm(vx, vw, c.gy) + vterm(vx, vw2, g2) + vterm(vx2, vw, g3));
  const Tensor<f50> ax = abs50(c.x.cast<f50>()), aw = abs50(c.w.cast<f50>());
  const Tensor<f50> sx = [&] {
    Tensor<f50> a = ref::conv2d_backward_data(g, abs50(c.gy.cast<f50>()), aw);
    const Tensor<f50> b = ref::conv2d_backward_data(g, abs50(g2.cast<f50>()), abs50(w2.cast<f50>()));
    for (index_t i = 0; i < a.numel(); ++i) a[i] += b[i];
    return a;
  }();
  const Tensor<f50> sw = [&] {
    Tensor<f50> a = ref::conv2d_backward_weights(g, ax, abs50(c.gy.cast<f50>()));
    const Tensor<f50> b = ref::conv2d_backward_weights(g, abs50(x2.cast<f50>()), abs50(g3.cast<f50>()));
    for (index_t i = 0; i < a.numel(); ++i) a[i] += b[i];
    return a;
  }();
  PROPS_CHECK(judge("dx (x used twice) on the op tape", tape.grad(x).cast<f50>(), adjoints(vt, vx),
                    reduction_tol<double>(sx, 2 * g.k_per_group() * g.r * g.s + 1)));
  PROPS_CHECK(judge("dw (w used twice) on the op tape", tape.grad(w).cast<f50>(), adjoints(vt, vw),
                    reduction_tol<double>(sw, 2 * g.n * g.p * g.q + 1)));
}

// y = x * x (the same tensor as both operands): dy/dx = 2 x, so dx = 2 x gy; in double the two
// uses add fl(gy*x) + fl(gy*x) = 2 fl(gy x): within u |2 x gy| of exact.
RC_GTEST_PROP(TapeHygiene, squareOfATensorGetsTwiceTheProduct, ()) {
  const ActCase a = *gen_act_case();
  Tape<double> tape;
  const auto x = tape.leaf(a.x);
  tape.backward(ops::sum(ops::mul(ops::mul(x, x), tape.constant(a.gy))));
  Tensor<f50> exact(a.shape), mass(a.shape);
  for (index_t i = 0; i < exact.numel(); ++i) {
    exact[i] = 2 * f50(a.x[i]) * f50(a.gy[i]);
    mass[i] = abs(exact[i]);
  }
  PROPS_CHECK(judge("d(x*x)/dx on the op tape", tape.grad(x).cast<f50>(), exact,
                    reduction_tol<double>(mass, 2)));
}

// Records one small network (conv -> sigmoid -> flatten -> linear -> cross_entropy) with the
// leaves created in the given order; returns the gradients in the order (x, w, b, fw).
struct SmallNet {
  Conv2dGeom g;
  Tensor<double> x, w, b, fw;
  std::vector<index_t> labels;
};

std::vector<Tensor<double>> small_net_grads(Tape<double>& tape, const SmallNet& n,
                                            bool reversed_leaves) {
  TapeTensor<double> x, w, b, fw;
  if (reversed_leaves) {
    tape.leaf(Tensor<double>(Shape{3}));  // an unrelated leaf first shifts every id
    fw = tape.leaf(n.fw), b = tape.leaf(n.b), w = tape.leaf(n.w), x = tape.leaf(n.x);
  } else {
    x = tape.leaf(n.x), w = tape.leaf(n.w), b = tape.leaf(n.b), fw = tape.leaf(n.fw);
  }
  const auto h = ops::flatten(ops::sigmoid(ops::conv2d(x, w, ops::Opt<double>(b), n.g.prm)));
  tape.backward(ops::cross_entropy(ops::linear(h, fw, std::nullopt), n.labels));
  return {tape.grad(x), tape.grad(w), tape.grad(b), tape.grad(fw)};
}

rc::Gen<SmallNet> gen_small_net() {
  return rc::gen::exec([] {
    const Conv2dCase c = *gen_conv2d_case();
    SmallNet n;
    n.g = c.g;
    n.g.has_bias = true;
    n.x = c.x, n.w = c.w, n.b = c.b;
    const index_t classes = *rc::gen::inRange<index_t>(2, 5);
    const index_t feat = n.g.y_shape().numel() / n.g.n;
    n.fw = make_tensor(Shape{classes, feat}, c.values, 21);
    for (index_t i = 0; i < n.g.n; ++i) n.labels.push_back(*rc::gen::inRange<index_t>(0, classes));
    return n;
  });
}

void showValue(const SmallNet& n, std::ostream& os) {
  os << n.g.descriptor() << " -> sigmoid -> flatten -> linear(" << n.fw.size(0)
     << ") -> cross_entropy";
}

bool same_bits(const std::vector<Tensor<double>>& a, const std::vector<Tensor<double>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].shape() != b[i].shape() ||
        std::memcmp(a[i].data(), b[i].data(), sizeof(double) * static_cast<std::size_t>(a[i].numel())))
      return false;
  return true;
}

// Clearing a tape and recording the same computation again gives the same bits; so does
// calling backward() twice (the second sweep starts from fresh gradients, not doubled ones).
// Catches: state that survives clear() (stale gradient slots, records, generation), a
// backward() that accumulates into the previous sweep's gradients.
RC_GTEST_PROP(TapeHygiene, clearingAndReusingTheTapeGivesIdenticalGradients, ()) {
  const SmallNet n = *gen_small_net();
  Tape<double> tape;
  const auto first = small_net_grads(tape, n, false);
  tape.clear();
  const auto second = small_net_grads(tape, n, false);
  RC_ASSERT(same_bits(first, second));
  tape.clear();
  Tape<double> fresh;
  RC_ASSERT(same_bits(first, small_net_grads(fresh, n, false)));
  // backward twice on one recording
  Tape<double> twice;
  TapeTensor<double> x = twice.leaf(n.x), w = twice.leaf(n.w), b = twice.leaf(n.b),
                     fw = twice.leaf(n.fw);
  const auto loss = ops::cross_entropy(
      ops::linear(ops::flatten(ops::sigmoid(ops::conv2d(x, w, ops::Opt<double>(b), n.g.prm))), fw,
                  std::nullopt),
      n.labels);
  twice.backward(loss);
  twice.backward(loss);
  RC_ASSERT(same_bits(first, {twice.grad(x), twice.grad(w), twice.grad(b), twice.grad(fw)}));
  // the scalar tape likewise: clear() and re-record gives the same adjoints
  VarTape<double> vt;
  auto var_grads = [&] {
    const auto vx = make_variables(vt, n.x), vw = make_variables(vt, n.w);
    const auto y = ref::conv2d_forward(without_bias(n.g), vx, vw, nullptr);
    Var<double> acc(0);
    for (index_t i = 0; i < y.numel(); ++i) acc += y[i] * y[i];
    vt.backward(acc);
    return std::vector<Tensor<double>>{adjoints(vt, vx), adjoints(vt, vw)};
  };
  const auto v1 = var_grads();
  vt.clear();
  RC_ASSERT(same_bits(v1, var_grads()));
}

// The order in which leaves are created (hence their ids) does not change any gradient bit.
// Catches: gradients keyed or accumulated by leaf id order instead of record order.
RC_GTEST_PROP(TapeHygiene, gradientsDoNotDependOnLeafCreationOrder, ()) {
  const SmallNet n = *gen_small_net();
  Tape<double> a, b;
  RC_ASSERT(same_bits(small_net_grads(a, n, false), small_net_grads(b, n, true)));
}

}  // namespace
}  // namespace tapegrad::props
