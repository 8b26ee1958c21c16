// tapegrad ref OP: the oracle. Reads .npy inputs (float64, float32, float16, bfloat16; int64
// targets), converts them exactly to f50, validates with the geometry makers and check_*
// functions, runs the reference kernels in 50 digits and writes DIR/y.npy (and with --dy the vector-Jacobian products dx.npy,
// dw.npy, db.npy), each rounded ONCE from f50 to the output dtype.
// Engines (--engine): `exact` (the default) computes conv2d, linear and avg_pool2d -- the ops
// whose every output is a sum -- in the exact engine (kernels/exact.hpp): the same bits as the
// 50-digit reference rounded once, from double inputs, and a count of the elements that needed
// the 50-digit fallback. Every other op, and every op under `--engine f50`, runs as above.
//
// Order of work, so that bad input never leaves a file behind: parse options -> read and check
// every input -> validate shapes -> compute everything -> create DIR -> write every output to a
// temporary file -> rename them all (io::AtomicBatch).
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <variant>

#include "common.hpp"
#include "ref_inputs.hpp"
#include "tapegrad/half.hpp"
#include "tapegrad/io/atomic_file.hpp"
#include "tapegrad/io/npy.hpp"
#include "tapegrad/kernels/activation_ref.hpp"
#include "tapegrad/kernels/conv2d_exact.hpp"
#include "tapegrad/kernels/conv2d_ref.hpp"
#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/kernels/linear_exact.hpp"
#include "tapegrad/kernels/linear_ref.hpp"
#include "tapegrad/kernels/loss_ref.hpp"
#include "tapegrad/kernels/pool_exact.hpp"
#include "tapegrad/kernels/pool_ref.hpp"
#include "tapegrad/memory.hpp"

namespace tapegrad::cli {

namespace {

namespace fs = std::filesystem;

// An output as computed: in f50 (rounded once when written), or already rounded once to the
// output dtype by the exact engine.
using Output = std::variant<Tensor<f50>, Tensor<float>, Tensor<double>>;

// The results of one run: named outputs, a one-line description, the exact engine's counts.
struct Results {
  std::string description;
  std::vector<std::pair<std::string, Output>> outputs;  // ("y", y), ("dx", dx), ...
  std::optional<exact::Stats> exact;                    // set when the exact engine ran
};

// conv2d, linear, avg_pool2d in the exact engine, rounded once to Out (--out-dtype). Inputs are
// read as double (exact for float32 and float64 files); dy's shape is checked before anything
// is computed.
template <class Out>
Results compute_exact(const RefArgs& a) {
  using Tag = exact::Nearest<Out>;
  const std::string& op = a.op;
  const Tensor<double> x = read_float_input<double>(a.x, "x", a.dtype16);
  std::optional<Tensor<double>> w, b, dy;
  if (a.given("--w")) w = read_float_input<double>(a.w, "w", a.dtype16);
  if (a.given("--b")) b = read_float_input<double>(a.b, "b", a.dtype16);
  if (a.given("--dy")) dy = read_float_input<double>(a.dy, "dy", a.dtype16);
  const Shape b_shape = b ? b->shape() : Shape{};
  const Tensor<double>* bp = b ? &*b : nullptr;
  Results r;
  exact::Stats st;
  auto check_dy = [&](const Shape& y) {
    if (dy) check_shape(op, "dy", dy->shape(), y);
  };
  if (op == "conv2d") {
    const Conv2dGeom g = conv2d_geom(a, x.shape(), w->shape(), b ? &b_shape : nullptr);
    r.description = "conv2d: " + g.str();
    check_dy(g.y_shape());
    r.outputs.emplace_back("y", exact::conv2d_forward<Tag>(g, x, *w, bp, &st));
    if (dy) {
      r.outputs.emplace_back("dx", exact::conv2d_backward_data<Tag>(g, *dy, *w, &st));
      r.outputs.emplace_back("dw", exact::conv2d_backward_weights<Tag>(g, x, *dy, &st));
      if (b) r.outputs.emplace_back("db", exact::conv2d_backward_bias<Tag>(g, *dy, &st));
    }
  } else if (op == "linear") {
    const LinearGeom g = make_linear_geom(x.shape(), w->shape(), b ? &b_shape : nullptr);
    r.description = "linear: " + g.str();
    check_dy(g.y_shape());
    r.outputs.emplace_back("y", exact::linear_forward<Tag>(g, x, *w, bp, &st));
    if (dy) {
      r.outputs.emplace_back("dx", exact::linear_backward_data<Tag>(g, *dy, *w, &st));
      r.outputs.emplace_back("dw", exact::linear_backward_weights<Tag>(g, x, *dy, &st));
      if (b) r.outputs.emplace_back("db", exact::linear_backward_bias<Tag>(g, *dy, &st));
    }
  } else {  // avg_pool2d
    const Pool2dGeom g = pool2d_geom(a, x.shape());
    r.description = op + ": " + g.str();
    check_dy(g.y_shape());
    r.outputs.emplace_back("y", exact::avg_pool2d_forward<Tag>(g, x, &st));
    if (dy) r.outputs.emplace_back("dx", exact::avg_pool2d_backward<Tag>(g, *dy, &st));
  }
  r.exact = st;
  return r;
}

Results compute(const RefArgs& a) {
  validate_ref_args(a);
  const std::string& op = a.op;
  {
    memory::Estimate est("ref " + a.op);
    check_memory(a, est);
    est.check();
  }
  if (uses_exact_engine(a))
    return a.out_dtype == "float32" ? compute_exact<float>(a) : compute_exact<double>(a);

  // Every input read and checked before any shape logic.
  const Tensor<f50> x = read_float_input(a.x, "x", a.dtype16);
  std::optional<Tensor<f50>> w, b, target_f, dy;
  std::optional<Tensor<std::int64_t>> target_i;
  if (a.given("--w")) w = read_float_input(a.w, "w", a.dtype16);
  if (a.given("--b")) b = read_float_input(a.b, "b", a.dtype16);
  if (a.given("--target")) {
    if (op == "cross_entropy") {
      target_i = read_arg("--target", [&] { return io::read_npy_int64(a.target); });
    } else {
      target_f = read_float_input(a.target, "target", a.dtype16);
    }
  }
  if (a.given("--dy")) dy = read_float_input(a.dy, "dy", a.dtype16);

  Results r;
  auto y_out = [&](Tensor<f50> y) {
    if (dy) check_shape(op, "dy", dy->shape(), y.shape());
    r.outputs.emplace_back("y", std::move(y));
  };
  auto grad = [&](const char* name, Tensor<f50> g) { r.outputs.emplace_back(name, std::move(g)); };
  r.description = op + ": x" + x.shape().str();

  // y, once computed, for the VJPs that are written in terms of it.
  auto y_of = [&]() -> const Tensor<f50>& { return std::get<Tensor<f50>>(r.outputs[0].second); };

  if (op == "conv2d") {
    const Shape b_shape = b ? b->shape() : Shape{};
    const Conv2dGeom g = conv2d_geom(a, x.shape(), w->shape(), b ? &b_shape : nullptr);
    r.description = "conv2d: " + g.str();
    y_out(ref::conv2d_forward(g, x, *w, b ? &*b : nullptr));
    if (dy) {
      grad("dx", ref::conv2d_backward_data(g, *dy, *w));
      grad("dw", ref::conv2d_backward_weights(g, x, *dy));
      if (b) grad("db", ref::conv2d_backward_bias(g, *dy));
    }
  } else if (op == "linear") {
    const Shape b_shape = b ? b->shape() : Shape{};
    const LinearGeom g = make_linear_geom(x.shape(), w->shape(), b ? &b_shape : nullptr);
    r.description = "linear: " + g.str();
    y_out(ref::linear_forward(g, x, *w, b ? &*b : nullptr));
    if (dy) {
      grad("dx", ref::linear_backward_data(g, *dy, *w));
      grad("dw", ref::linear_backward_weights(g, x, *dy));
      if (b) grad("db", ref::linear_backward_bias(g, *dy));
    }
  } else if (op == "relu") {
    y_out(ref::relu_forward(x));
    if (dy) grad("dx", ref::relu_backward(x, *dy));
  } else if (op == "sigmoid") {
    y_out(ref::sigmoid_forward(x));
    if (dy) grad("dx", ref::sigmoid_backward(y_of(), *dy));
  } else if (op == "tanh") {
    y_out(ref::tanh_forward(x));
    if (dy) grad("dx", ref::tanh_backward(y_of(), *dy));
  } else if (op == "softmax" || op == "log_softmax") {
    check_softmax(x.shape(), op);
    if (op == "softmax") {
      y_out(ref::softmax_forward(x));
      if (dy) grad("dx", ref::softmax_backward(y_of(), *dy));
    } else {
      y_out(ref::log_softmax_forward(x));
      if (dy) grad("dx", ref::log_softmax_backward(y_of(), *dy));
    }
  } else if (op == "flatten") {
    check_flatten(x.shape(), op);
    y_out(ref::flatten_forward(x));
    if (dy) grad("dx", ref::flatten_backward(x.shape(), *dy));
  } else if (op == "max_pool2d" || op == "avg_pool2d") {
    const Pool2dGeom g = pool2d_geom(a, x.shape());
    r.description = op + ": " + g.str();
    if (op == "max_pool2d") {
      y_out(ref::max_pool2d_forward(g, x));
      if (dy) grad("dx", ref::max_pool2d_backward(g, x, *dy));
    } else {
      y_out(ref::avg_pool2d_forward(g, x));
      if (dy) grad("dx", ref::avg_pool2d_backward(g, *dy));
    }
  } else if (op == "mse_loss") {
    check_mse_loss(x.shape(), target_f->shape(), op);
    r.description += " target" + target_f->shape().str();
    y_out(ref::mse_loss_forward(x, *target_f));
    if (dy) grad("dx", ref::mse_loss_backward(x, *target_f, (*dy)[0]));
  } else if (op == "cross_entropy") {
    check_rank(op, "target", target_i->shape(), 1, "(N) of class indices");
    const std::vector<index_t> targets(target_i->begin(), target_i->end());
    check_cross_entropy(x.shape(), targets, op);
    r.description += " target" + target_i->shape().str();
    y_out(ref::cross_entropy_forward(x, targets));
    if (dy) grad("dx", ref::cross_entropy_backward(x, targets, (*dy)[0]));
  }
  return r;
}

int run_ref(const RefArgs& a) {
  if (a.out_dtype != "float64" && a.out_dtype != "float32" && a.out_dtype != "float16" &&
      a.out_dtype != "bfloat16")
    throw BadInput("ref: --out-dtype must be float64, float32, float16 or bfloat16, got " +
                   quote(a.out_dtype));
  check_path_arg(a.out, "--out");
  const fs::path dir = a.out;
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw BadInput("ref: --out " + quote(a.out) + " exists and is not a directory");

  const Results r = compute(a);

  // Round once from f50 to the output dtype (the exact engine's outputs already are), and
  // encode, before touching the disk.
  std::vector<std::pair<fs::path, std::string>> files;
  for (const auto& [name, out] : r.outputs) {
    std::string bytes;
    if (const auto* t = std::get_if<Tensor<f50>>(&out)) {
      if (a.out_dtype == "float16" || a.out_dtype == "bfloat16") {
        // once from f50 (io::round_to_half: through float rounded to odd), written as '<f2'
        // (float16) or '<V2' (bfloat16, as ml_dtypes' np.save writes it)
        const bool h = a.out_dtype == "float16";
        std::vector<std::uint16_t> v;
        v.reserve(t->vec().size());
        for (const f50& e : *t)
          v.push_back(h ? float_to_half_bits(io::round_to_half(e))
                        : float_to_bfloat16_bits(io::round_to_bfloat16(e)));
        bytes = io::encode_npy(t->shape(), v, h ? io::NpyDtype::f2 : io::NpyDtype::bf16);
      } else if (a.out_dtype == "float32") {
        std::vector<float> v;
        v.reserve(t->vec().size());
        for (const f50& e : *t) v.push_back(io::round_to_float(e));
        bytes = io::encode_npy(t->shape(), v);
      } else {
        std::vector<double> v;
        v.reserve(t->vec().size());
        for (const f50& e : *t) v.push_back(io::round_to_double(e));
        bytes = io::encode_npy(t->shape(), v);
      }
    } else if (const auto* f = std::get_if<Tensor<float>>(&out)) {
      bytes = io::encode_npy(f->shape(), f->vec());
    } else {
      const auto& d = std::get<Tensor<double>>(out);
      bytes = io::encode_npy(d.shape(), d.vec());
    }
    files.emplace_back(dir / (name + ".npy"), std::move(bytes));
  }
  fs::create_directories(dir, ec);
  if (ec) throw BadInput("ref: cannot create --out directory " + quote(a.out) + ": " + ec.message());
  io::AtomicBatch batch;
  for (const auto& [path, bytes] : files) batch.stage(path, bytes);
  batch.commit();

  std::cout << r.description << "\n";
  if (r.exact)
    std::cout << "  engine exact: " << r.exact->elements << " elements, " << r.exact->fallbacks
              << " through the 50-digit fallback\n";
  else if (a.engine == "exact")
    std::cout << "  engine f50 (the exact engine covers conv2d, linear and avg_pool2d)\n";
  else
    std::cout << "  engine f50\n";
  for (const auto& [path, bytes] : files) std::cout << "  wrote " << one_line(path.native()) << "\n";
  return exit_ok;
}

}  // namespace

void register_ref(CLI::App& app, Action& run) {
  auto args = std::make_shared<RefArgs>();
  CLI::App* sub = app.add_subcommand(
      "ref", "Reference outputs (and, with --dy, gradients) computed in 50-digit arithmetic");
  add_input_options(sub, *args);
  auto& o = args->opts;
  o["--dy"] = sub->add_option("--dy", args->dy,
                              "Upstream gradient (.npy, y's shape; 0-d for losses): also write "
                              "dx (dw, db)");
  o["--out"] =
      sub->add_option("--out", args->out, "Output directory (created if missing)")->required();
  o["--out-dtype"] = sub->add_option("--out-dtype", args->out_dtype,
                                     "float64 (default), float32, float16 ('<f2') or "
                                     "bfloat16 ('<V2', as ml_dtypes saves it), rounded once "
                                     "from f50");
  o["--engine"] = sub->add_option("--engine", args->engine,
                                  "exact (default: conv2d, linear, avg_pool2d in the exact "
                                  "engine, the same bits as f50) or f50 (the 50-digit reference)");
  add_geometry_options(sub, *args);
  sub->callback([&run, args] { run = [args] { return run_ref(*args); }; });
}

}  // namespace tapegrad::cli
