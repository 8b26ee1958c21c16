// Every op's search (oracle/search.hpp): how its geometries are drawn (valid by construction,
// every choice shrinking toward the smallest case), how a case runs its check, and its case-mix
// tags; the loop itself is search_driver.hpp's.
#include <rapidcheck.h>

#include <algorithm>

#include "search_driver.hpp"

namespace tapegrad::oracle {

namespace search_driver {

namespace {

using rc::gen::inRange;

// A uniform integer in [lo, hi], shrinking toward lo. At RapidCheck's full size: its inRange
// scales the range with the case's size, which would make the early cases all minimal.
index_t pick(index_t lo, index_t hi) {
  return *rc::gen::resize(search_driver::kFullSize, inRange<index_t>(lo, hi + 1));
}

// conv2d: groups 1-3, channels per group 1-3, batch 1-2, kernel 1-3, stride 1-3, pad 0-2,
// dilation 1-2; the input from the smallest the dilated kernel fits (kernel = padded input)
// to 5 more.
std::string draw_conv2d(const SearchOptions& o, bool forward) {
  const index_t g = pick(1, 3), cg = pick(1, 3), kg = pick(1, 3), n = pick(1, 2);
  Conv2dProblem p;
  index_t in[2], k[2];
  for (int a = 0; a < 2; ++a) {
    k[a] = pick(1, 3);
    p.params.stride[a] = pick(1, 3);
    p.params.pad[a] = pick(0, 2);
    p.params.dilation[a] = pick(1, 2);
    const index_t span = p.params.dilation[a] * (k[a] - 1) + 1;
    in[a] = std::max<index_t>(1, span - 2 * p.params.pad[a]) + pick(0, 5);
  }
  p.params.groups = g;
  p.x = Shape{n, g * cg, in[0], in[1]};
  p.w = Shape{g * kg, cg, k[0], k[1]};
  p.bias = forward && (o.bias ? *o.bias : *rc::gen::resize(kFullSize, rc::gen::arbitrary<bool>()));
  return geometry_of(p);
}
std::vector<std::string> conv2d_tags(const std::string& geo) {
  const Conv2dProblem p = conv2d_problem(geo);
  const Conv2dParams& q = p.params;
  std::vector<std::string> t;
  if (q.groups > 1) t.push_back(p.w[1] == 1 && p.w[0] == q.groups ? "depthwise" : "groups > 1");
  if (q.stride[0] > 1 || q.stride[1] > 1) t.push_back("stride > 1");
  if (q.pad[0] || q.pad[1]) t.push_back("padding");
  if (q.dilation[0] > 1 || q.dilation[1] > 1) t.push_back("dilation > 1");
  if (p.x[0] == 1) t.push_back("batch 1");
  if (p.x[1] == 1) t.push_back("one channel");
  for (int a = 0; a < 2; ++a)
    if (p.x[2 + a] + 2 * q.pad[a] == q.dilation[a] * (p.w[2 + a] - 1) + 1) {
      t.push_back("kernel = padded input");
      break;
    }
  if (p.w[2] == 1 && p.w[3] == 1) t.push_back("1x1");
  if (p.bias) t.push_back("bias");
  return t;
}

// pooling: batch 1-2, channels 1-3, kernel 1-3, stride 1-3, pad up to half the kernel; the input
// from the smallest the kernel fits to 5 more.
std::string draw_pool2d(const SearchOptions&) {
  Pool2dProblem p;
  const index_t n = pick(1, 2), c = pick(1, 3);
  index_t in[2];
  for (int a = 0; a < 2; ++a) {
    p.params.kernel[a] = pick(1, 3);
    p.params.stride[a] = pick(1, 3);
    p.params.pad[a] = pick(0, p.params.kernel[a] / 2);
    in[a] = std::max<index_t>(1, p.params.kernel[a] - 2 * p.params.pad[a]) + pick(0, 5);
  }
  p.x = Shape{n, c, in[0], in[1]};
  return geometry_of(p);
}
std::vector<std::string> pool2d_tags(const std::string& geo) {
  const Pool2dProblem p = pool2d_problem(geo);
  const Pool2dParams& q = p.params;
  std::vector<std::string> t;
  if (q.stride[0] > 1 || q.stride[1] > 1) t.push_back("stride > 1");
  if (q.stride[0] < q.kernel[0] || q.stride[1] < q.kernel[1]) t.push_back("overlapping windows");
  if (q.pad[0] || q.pad[1]) t.push_back("padding");
  if (p.x[0] == 1) t.push_back("batch 1");
  for (int a = 0; a < 2; ++a)
    if (p.x[2 + a] + 2 * q.pad[a] == q.kernel[a]) {
      t.push_back("kernel = padded input");
      break;
    }
  return t;
}

// linear: batch 1-4, in 1-24, out 1-8.
std::string draw_linear(const SearchOptions& o, bool forward) {
  const index_t n = pick(1, 4), in = pick(1, 24), out = pick(1, 8);
  LinearProblem p{Shape{n, in}, Shape{out, in}, false};
  p.bias = forward && (o.bias ? *o.bias : *rc::gen::resize(kFullSize, rc::gen::arbitrary<bool>()));
  return geometry_of(p);
}
std::vector<std::string> linear_tags(const std::string& geo) {
  const LinearProblem p = linear_problem(geo);
  std::vector<std::string> t;
  if (p.x[0] == 1) t.push_back("batch 1");
  if (p.x[1] == 1) t.push_back("in 1");
  if (p.w[0] == 1) t.push_back("out 1");
  if (p.bias) t.push_back("bias");
  return t;
}

// Any shape: rank min_rank-4, each dimension 1-5.
std::string draw_shape(index_t min_rank) {
  const index_t rank = pick(min_rank, 4);
  std::vector<index_t> d;
  for (index_t i = 0; i < rank; ++i) d.push_back(pick(1, 5));
  return geometry_of(Shape(std::move(d)));
}
std::vector<std::string> shape_tags(const std::string& geo) {
  const Shape s = shape_problem(geo);
  std::vector<std::string> t{"rank " + std::to_string(s.rank())};
  if (s.numel() == 1) t.push_back("one element");
  return t;
}

std::string draw_cross_entropy(const SearchOptions&) {
  const index_t n = pick(1, 6), c = pick(1, 9);
  return geometry_of(CrossEntropyProblem{n, c});
}
std::vector<std::string> cross_entropy_tags(const std::string& geo) {
  const CrossEntropyProblem p = cross_entropy_problem(geo);
  std::vector<std::string> t;
  if (p.n == 1) t.push_back("one row");
  if (p.c == 1) t.push_back("one class");
  return t;
}

template <class T>
const char* dtype_name() {
  return std::is_same_v<T, float> ? "float32" : "float64";
}

}  // namespace

}  // namespace search_driver

using namespace search_driver;

// One search_<op>: the op's draw and tags, and the check run on the parsed problem with the
// user's callback behind a guard. ARGS are the callback's parameters after the problem,
// PASS the names passed on.
#define TAPEGRAD_SEARCH_DEFINE(name, Problem, Fn, exact, DRAW, TAGS, PARSE, ARGS, PASS)           \
  template <class T>                                                                            \
  SearchResult search_##name(const std::type_identity_t<SearchFn<Problem, Fn<T>>>& f,          \
                             const SearchOptions& opt) {                                       \
    SearchOp op;                                                                               \
    op.op = #name;                                                                             \
    op.dtype = dtype_name<T>();                                                                \
    op.exact_inputs = exact;                                                                   \
    op.draw = [](const SearchOptions& o) { return DRAW; };                                     \
    op.tags = [](const std::string& geo) { return TAGS(geo); };                                \
    op.run = [&f, &opt](const std::string& geo, const OracleOptions& oo) {                    \
      (void)opt;                                                                               \
      const Problem p = PARSE;                                                                 \
      return check_##name<T>(p, [&] ARGS { guarded(f, p, PASS); }, oo);                        \
    };                                                                                         \
    return run_search(op, opt);                                                                \
  }                                                                                            \
  template SearchResult search_##name<float>(                                                  \
      const std::type_identity_t<SearchFn<Problem, Fn<float>>>&, const SearchOptions&);        \
  template SearchResult search_##name<double>(                                                 \
      const std::type_identity_t<SearchFn<Problem, Fn<double>>>&, const SearchOptions&);

#define TAPEGRAD_PASS(...) __VA_ARGS__

// conv2d
TAPEGRAD_SEARCH_DEFINE(conv2d_forward, Conv2dProblem, Conv2dForwardFn, true,
                       draw_conv2d(o, true), conv2d_tags, conv2d_problem(geo, opt.layout),
                       (const T* x, const T* w, const T* b, T* y), TAPEGRAD_PASS(x, w, b, y))
TAPEGRAD_SEARCH_DEFINE(conv2d_backward_data, Conv2dProblem, Conv2dBackwardDataFn, true,
                       draw_conv2d(o, false), conv2d_tags, conv2d_problem(geo, opt.layout),
                       (const T* dy, const T* w, T* dx), TAPEGRAD_PASS(dy, w, dx))
TAPEGRAD_SEARCH_DEFINE(conv2d_backward_weights, Conv2dProblem, Conv2dBackwardWeightsFn, true,
                       draw_conv2d(o, false), conv2d_tags, conv2d_problem(geo, opt.layout),
                       (const T* x, const T* dy, T* dw), TAPEGRAD_PASS(x, dy, dw))
TAPEGRAD_SEARCH_DEFINE(conv2d_backward_bias, Conv2dProblem, Conv2dBackwardBiasFn, true,
                       draw_conv2d(o, false), conv2d_tags, conv2d_problem(geo, opt.layout),
                       (const T* dy, T* db), TAPEGRAD_PASS(dy, db))
// linear
TAPEGRAD_SEARCH_DEFINE(linear_forward, LinearProblem, LinearForwardFn, true,
                       draw_linear(o, true), linear_tags, linear_problem(geo),
                       (const T* x, const T* w, const T* b, T* y), TAPEGRAD_PASS(x, w, b, y))
TAPEGRAD_SEARCH_DEFINE(linear_backward_data, LinearProblem, LinearBackwardDataFn, true,
                       draw_linear(o, false), linear_tags, linear_problem(geo),
                       (const T* dy, const T* w, T* dx), TAPEGRAD_PASS(dy, w, dx))
TAPEGRAD_SEARCH_DEFINE(linear_backward_weights, LinearProblem, LinearBackwardWeightsFn, true,
                       draw_linear(o, false), linear_tags, linear_problem(geo),
                       (const T* x, const T* dy, T* dw), TAPEGRAD_PASS(x, dy, dw))
TAPEGRAD_SEARCH_DEFINE(linear_backward_bias, LinearProblem, LinearBackwardBiasFn, true,
                       draw_linear(o, false), linear_tags, linear_problem(geo),
                       (const T* dy, T* db), TAPEGRAD_PASS(dy, db))
// pooling
TAPEGRAD_SEARCH_DEFINE(max_pool2d_forward, Pool2dProblem, Pool2dForwardFn, false,
                       draw_pool2d(o), pool2d_tags, pool2d_problem(geo, opt.layout),
                       (const T* x, T* y), TAPEGRAD_PASS(x, y))
TAPEGRAD_SEARCH_DEFINE(max_pool2d_backward, Pool2dProblem, MaxPool2dBackwardFn, false,
                       draw_pool2d(o), pool2d_tags, pool2d_problem(geo, opt.layout),
                       (const T* x, const T* dy, T* dx), TAPEGRAD_PASS(x, dy, dx))
TAPEGRAD_SEARCH_DEFINE(avg_pool2d_forward, Pool2dProblem, Pool2dForwardFn, false,
                       draw_pool2d(o), pool2d_tags, pool2d_problem(geo, opt.layout),
                       (const T* x, T* y), TAPEGRAD_PASS(x, y))
TAPEGRAD_SEARCH_DEFINE(avg_pool2d_backward, Pool2dProblem, AvgPool2dBackwardFn, false,
                       draw_pool2d(o), pool2d_tags, pool2d_problem(geo, opt.layout),
                       (const T* dy, T* dx), TAPEGRAD_PASS(dy, dx))
// activations: element-wise any rank >= 1; softmax and log_softmax rank >= 2 (over dim 1)
#define TAPEGRAD_SEARCH_ACTIVATION(name, min_rank)                                              \
  TAPEGRAD_SEARCH_DEFINE(name##_forward, ActivationProblem, UnaryFn, false,                    \
                         ((void)o, draw_shape(min_rank)), shape_tags,                          \
                         ActivationProblem{shape_problem(geo)}, (const T* x, T* y),            \
                         TAPEGRAD_PASS(x, y))                                                  \
  TAPEGRAD_SEARCH_DEFINE(name##_backward, ActivationProblem, UnaryBackwardFn, false,           \
                         ((void)o, draw_shape(min_rank)), shape_tags,                          \
                         ActivationProblem{shape_problem(geo)},                                \
                         (const T* xy, const T* dy, T* dx), TAPEGRAD_PASS(xy, dy, dx))
TAPEGRAD_SEARCH_ACTIVATION(relu, 1)
TAPEGRAD_SEARCH_ACTIVATION(sigmoid, 1)
TAPEGRAD_SEARCH_ACTIVATION(tanh, 1)
TAPEGRAD_SEARCH_ACTIVATION(softmax, 2)
TAPEGRAD_SEARCH_ACTIVATION(log_softmax, 2)
#undef TAPEGRAD_SEARCH_ACTIVATION
// losses
TAPEGRAD_SEARCH_DEFINE(mse_loss_forward, MseLossProblem, MseLossForwardFn, false,
                       ((void)o, draw_shape(1)), shape_tags, MseLossProblem{shape_problem(geo)},
                       (const T* x, const T* t, T* loss), TAPEGRAD_PASS(x, t, loss))
TAPEGRAD_SEARCH_DEFINE(mse_loss_backward, MseLossProblem, MseLossBackwardFn, false,
                       ((void)o, draw_shape(1)), shape_tags, MseLossProblem{shape_problem(geo)},
                       (const T* x, const T* t, const T* dloss, T* dx),
                       TAPEGRAD_PASS(x, t, dloss, dx))
TAPEGRAD_SEARCH_DEFINE(cross_entropy_forward, CrossEntropyProblem, CrossEntropyForwardFn, false,
                       draw_cross_entropy(o), cross_entropy_tags, cross_entropy_problem(geo),
                       (const T* x, const std::int64_t* t, T* loss), TAPEGRAD_PASS(x, t, loss))
TAPEGRAD_SEARCH_DEFINE(cross_entropy_backward, CrossEntropyProblem, CrossEntropyBackwardFn,
                       false, draw_cross_entropy(o), cross_entropy_tags,
                       cross_entropy_problem(geo),
                       (const T* x, const std::int64_t* t, const T* dloss, T* dx),
                       TAPEGRAD_PASS(x, t, dloss, dx))

#undef TAPEGRAD_PASS
#undef TAPEGRAD_SEARCH_DEFINE

}  // namespace tapegrad::oracle
