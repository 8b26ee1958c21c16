// tapegrad verify OP <the inputs ref takes> --y MINE.npy [--dy DY.npy --dx MINE_DX.npy
//                                           --dw MINE_DW.npy --db MINE_DB.npy]
// Judges someone's results of one op against the exact ones, with the derived per-element
// bound of oracle/bounds.hpp (|mine - exact| <= gamma_T(K) * S, T the precision of each MINE
// file: float64, float32, float16 or bfloat16, u that of --accumulate when given, plus one
// rounding to the file's precision; the verdict by --tier: the probabilistic tier,
// gamma~_T(K, lambda) in place of gamma_T(K) where the op's bound is a sum, by default, or the
// sound one; both are reported): computes the reference of every output given, judges each, prints
// each report, and exits 0 when all pass, 1 when one fails, 2 for bad input (nothing is
// written). The VJPs of sigmoid, tanh, softmax and log_softmax are judged as the reference's
// backward defines them, at the forward output y: YOUR y (--y), so that dx is judged on its
// own (a y that is off fails the y check); a y with NaN or Inf falls back to the exact y
// rounded to its precision, said in the report.
//
// Order of work: options -> every header (inputs and MINE files) and the memory estimate ->
// inputs read and validated -> references and bounds -> MINE files read, shapes checked ->
// judged -> printed.
#include <iostream>
#include <memory>
#include <optional>

#include "common.hpp"
#include "ref_inputs.hpp"
#include "tapegrad/kernels/activation_ref.hpp"
#include "tapegrad/kernels/loss_ref.hpp"
#include "tapegrad/oracle/bounds.hpp"

namespace tapegrad::cli {

namespace {

struct VerifyArgs : RefArgs {
  std::string y, dx, dw, db;
  std::string tier = "probabilistic";
  std::string accumulate;  // "" : each file's own precision
};

// One MINE file and what it is judged against.
struct Judged {
  std::string option;  // "--y"
  std::string name;    // "y"
  std::string path;
};

// A MINE file as float or double (NaN and Inf allowed: they fail, they are not bad input);
// float16 and bfloat16 files as floats (exact), with their storage precision.
struct Mine {
  std::optional<Tensor<float>> f;
  std::optional<Tensor<double>> d;
  gradcheck::UlpPrecision storage = gradcheck::UlpPrecision::float64;
  const Shape& shape() const { return f ? f->shape() : d->shape(); }
  Tensor<double> as_double() const { return f ? f->cast<double>() : *d; }
  bool finite() const {
    if (f) return std::all_of(f->begin(), f->end(), [](float v) { return std::isfinite(v); });
    return std::all_of(d->begin(), d->end(), [](double v) { return std::isfinite(v); });
  }
};

Mine read_mine(const Judged& j, const std::string& dtype16) {
  return read_arg(j.option, [&] {
    const io::NpyArray a = as_dtype16(io::read_npy(j.path), dtype16, j.path);
    Mine m;
    using P = gradcheck::UlpPrecision;
    if (a.dtype == io::NpyDtype::f4 || a.dtype == io::NpyDtype::f2 ||
        a.dtype == io::NpyDtype::bf16) {
      m.f = io::to_tensor<float>(a, j.path);
      m.storage = a.dtype == io::NpyDtype::f4   ? P::float32
                  : a.dtype == io::NpyDtype::f2 ? P::float16
                                                : P::bfloat16;
    } else if (a.dtype == io::NpyDtype::f8) {
      m.d = io::to_tensor<double>(a, j.path);
    } else {
      throw BadInput(quote(j.path) + ": " + j.name + " has dtype " + io::dtype_name(a.dtype) +
                     ", expected float16, bfloat16, float32 or float64");
    }
    return m;
  });
}

// --accumulate's precision, or the storage's when not given.
gradcheck::UlpPrecision accumulation_of(const std::string& acc, gradcheck::UlpPrecision storage) {
  using P = gradcheck::UlpPrecision;
  if (acc.empty()) return storage;
  for (P p : {P::float16, P::bfloat16, P::float32, P::float64})
    if (acc == gradcheck::precision_name(p)) return p;
  throw BadInput("verify: --accumulate must be float16, bfloat16, float32 or float64, got " +
                 quote(acc));
}

// Which VJP outputs an op has beyond dx.
bool has_weights(const std::string& op) { return op == "conv2d" || op == "linear"; }

int run_verify(const VerifyArgs& a) {
  validate_ref_args(a);
  const std::string& op = a.op;
  if (a.tier != "probabilistic" && a.tier != "sound")
    throw BadInput("verify: --tier must be probabilistic or sound, got " + quote(a.tier));
  oracle::OracleOptions judge_opt;
  judge_opt.tier = a.tier == "sound" ? oracle::Tier::sound : oracle::Tier::probabilistic;
  accumulation_of(a.accumulate, gradcheck::UlpPrecision::float64);  // validated up front
  std::vector<Judged> judged{{"--y", "y", a.y}};
  for (const auto& [opt, name, path] : {std::tuple{"--dx", "dx", &a.dx}, {"--dw", "dw", &a.dw},
                                        {"--db", "db", &a.db}}) {
    if (!a.given(opt)) continue;
    if (!a.given("--dy"))
      throw BadInput("verify " + op + ": " + opt + " needs --dy (the upstream gradient it is "
                     "the vector-Jacobian product of)");
    if (std::string(opt) != "--dx" && !has_weights(op))
      throw BadInput("verify " + op + ": does not take " + opt + " (" + op + " has no weights)");
    if (std::string(opt) == "--db" && !a.given("--b"))
      throw BadInput("verify " + op + ": --db needs --b (the bias it is the gradient of)");
    judged.push_back({opt, name, *path});
  }
  if (a.given("--dy") && judged.size() == 1)
    throw BadInput("verify " + op + ": --dy given but none of --dx, --dw, --db to judge");
  for (const Judged& j : judged) check_path_arg(j.path, j.option);

  // Memory: the inputs and outputs as `ref` estimates them, each MINE file as read and as a
  // tensor, and per output the exact value and S in 50 digits (K as 8 bytes).
  memory::Estimate est("verify " + op);
  check_memory(a, est);
  std::map<std::string, io::NpyHeader> headers;
  for (const Judged& j : judged) {
    const io::NpyHeader h = read_arg(j.option, [&] { return io::read_npy_header(j.path); });
    const auto n = static_cast<std::uint64_t>(h.shape.numel());
    const std::string cause = j.option + " " + quote(j.path);
    est.add(j.name + " " + h.shape.str() + " as read", 1, h.data_bytes, cause);
    est.add(j.name + " " + h.shape.str() + " as a tensor and in 50 digits", n,
            8 + 2 * sizeof(f50) + 8, cause);
    headers.emplace(j.option, h);
  }
  est.check();

  // Inputs, as double (float32 and float64 convert exactly).
  const Tensor<double> x = read_float_input<double>(a.x, "x", a.dtype16);
  std::optional<Tensor<double>> w, b, target_f, dy;
  std::vector<index_t> targets;
  if (a.given("--w")) w = read_float_input<double>(a.w, "w", a.dtype16);
  if (a.given("--b")) b = read_float_input<double>(a.b, "b", a.dtype16);
  if (a.given("--target")) {
    if (op == "cross_entropy") {
      const Tensor<std::int64_t> t =
          read_arg("--target", [&] { return io::read_npy_int64(a.target); });
      check_rank(op, "target", t.shape(), 1, "(N) of class indices");
      targets.assign(t.begin(), t.end());
    } else {
      target_f = read_float_input<double>(a.target, "target", a.dtype16);
    }
  }
  if (a.given("--dy")) dy = read_float_input<double>(a.dy, "dy", a.dtype16);
  const oracle::Engine engine =
      a.engine == "f50" ? oracle::Engine::f50 : oracle::Engine::exact;

  // The reference and bound of each judged output, by name; dy's shape checked against y's.
  std::map<std::string, oracle::Bound> bounds;
  std::string problem = std::string("x") + x.shape().str();
  auto forward = [&](oracle::Bound y) {
    if (dy) check_shape(op, "dy", dy->shape(), y.exact.shape());
    bounds.emplace("y", std::move(y));
  };
  auto wants = [&](const char* name) {
    return std::any_of(judged.begin(), judged.end(), [&](const Judged& j) { return j.name == name; });
  };
  // The forward output a backward formula takes: the user's y when finite, else the exact one.
  std::string y_note;
  auto y_for_backward = [&]() -> Tensor<double> {
    const Mine mine = read_mine(judged[0], a.dtype16);
    const oracle::Bound& yb = bounds.at("y");
    if (mine.shape() == yb.exact.shape() && mine.finite()) {
      y_note = " (dx at your y)";
      return mine.as_double();
    }
    y_note = " (dx at the exact y rounded to float64: yours is not finite or misshapen)";
    return map(yb.exact, io::round_to<double>);
  };

  if (op == "conv2d") {
    const Shape bs = b ? b->shape() : Shape{};
    const Conv2dGeom g = conv2d_geom(a, x.shape(), w->shape(), b ? &bs : nullptr);
    problem = g.str();
    forward(oracle::conv2d_forward_bound(g, x, *w, b ? &*b : nullptr, engine));
    if (wants("dx")) bounds.emplace("dx", oracle::conv2d_backward_data_bound(g, *dy, *w, engine));
    if (wants("dw"))
      bounds.emplace("dw", oracle::conv2d_backward_weights_bound(g, x, *dy, engine));
    if (wants("db")) bounds.emplace("db", oracle::conv2d_backward_bias_bound(g, *dy, engine));
  } else if (op == "linear") {
    const Shape bs = b ? b->shape() : Shape{};
    const LinearGeom g = make_linear_geom(x.shape(), w->shape(), b ? &bs : nullptr);
    problem = g.str();
    forward(oracle::linear_forward_bound(g, x, *w, b ? &*b : nullptr, engine));
    if (wants("dx")) bounds.emplace("dx", oracle::linear_backward_data_bound(g, *dy, *w, engine));
    if (wants("dw"))
      bounds.emplace("dw", oracle::linear_backward_weights_bound(g, x, *dy, engine));
    if (wants("db")) bounds.emplace("db", oracle::linear_backward_bias_bound(g, *dy, engine));
  } else if (op == "max_pool2d" || op == "avg_pool2d") {
    const Pool2dGeom g = pool2d_geom(a, x.shape());
    problem = g.str();
    if (op == "max_pool2d") {
      forward(oracle::max_pool2d_forward_bound(g, x));
      if (wants("dx")) bounds.emplace("dx", oracle::max_pool2d_backward_bound(g, x, *dy));
    } else {
      forward(oracle::avg_pool2d_forward_bound(g, x, engine));
      if (wants("dx")) bounds.emplace("dx", oracle::avg_pool2d_backward_bound(g, *dy, engine));
    }
  } else if (op == "relu") {
    forward(oracle::relu_forward_bound(x));
    if (wants("dx")) bounds.emplace("dx", oracle::relu_backward_bound(x, *dy));
  } else if (op == "flatten") {
    check_flatten(x.shape(), op);
    const Tensor<f50> x50 = x.cast<f50>();
    oracle::Bound yb;
    yb.exact = ref::flatten_forward(x50);
    yb.s = map(yb.exact, [](const f50& v) { return f50(abs(v)); });
    yb.k.assign(static_cast<std::size_t>(x.numel()), 0);
    yb.model = "S = |y|, K = 0 (a reshape: equality)";
    forward(yb);
    if (wants("dx")) {
      oracle::Bound db;
      db.exact = ref::flatten_backward(x.shape(), dy->cast<f50>());
      db.s = map(db.exact, [](const f50& v) { return f50(abs(v)); });
      db.k.assign(static_cast<std::size_t>(x.numel()), 0);
      db.model = "S = |dx|, K = 0 (a reshape: equality)";
      bounds.emplace("dx", db);
    }
  } else if (op == "sigmoid" || op == "tanh" || op == "softmax" || op == "log_softmax") {
    if (op == "softmax" || op == "log_softmax") check_softmax(x.shape(), op);
    using Fwd = oracle::Bound (*)(const Tensor<double>&);
    using Bwd = oracle::Bound (*)(const Tensor<double>&, const Tensor<double>&);
    const auto [fwd, bwd] =
        op == "sigmoid"   ? std::pair<Fwd, Bwd>{oracle::sigmoid_forward_bound,
                                                oracle::sigmoid_backward_bound}
        : op == "tanh"    ? std::pair<Fwd, Bwd>{oracle::tanh_forward_bound,
                                                oracle::tanh_backward_bound}
        : op == "softmax" ? std::pair<Fwd, Bwd>{oracle::softmax_forward_bound,
                                                oracle::softmax_backward_bound}
                          : std::pair<Fwd, Bwd>{oracle::log_softmax_forward_bound,
                                                oracle::log_softmax_backward_bound};
    forward(fwd(x));
    if (wants("dx")) bounds.emplace("dx", bwd(y_for_backward(), *dy));
  } else if (op == "mse_loss") {
    check_mse_loss(x.shape(), target_f->shape(), op);
    problem += " target";
    problem += target_f->shape().str();
    forward(oracle::mse_loss_forward_bound(x, *target_f));
    if (wants("dx")) bounds.emplace("dx", oracle::mse_loss_backward_bound(x, *target_f, (*dy)[0]));
  } else if (op == "cross_entropy") {
    check_cross_entropy(x.shape(), targets, op);
    problem += " target[";
    problem += std::to_string(targets.size());
    problem += "]";
    forward(oracle::cross_entropy_forward_bound(x, targets));
    if (wants("dx"))
      bounds.emplace("dx", oracle::cross_entropy_backward_bound(x, targets, (*dy)[0]));
  }

  // Each MINE file: its shape must be the reference's, then judged in its own precision.
  std::vector<oracle::OracleReport> reports;
  for (const Judged& j : judged) {
    const oracle::Bound& bd = bounds.at(j.name);
    const io::NpyHeader& h = headers.at(j.option);
    if (h.shape != bd.exact.shape())
      throw BadInput("verify " + op + ": " + j.option + " " + quote(j.path) + " has shape " +
                     h.shape.str() + ", expected " + bd.exact.shape().str() + " (" + j.name +
                     " of " + problem + ")");
    const Mine mine = read_mine(j, a.dtype16);
    const std::string what = problem + (j.name == "dx" ? y_note : std::string());
    const std::string op_dir = op + (j.name == "y" ? "_forward" : "_backward (" + j.name + ")");
    // The sums of conv2d, linear and avg_pool2d come from the engine asked for; the rest from
    // the reference kernels in 50 digits.
    const oracle::Engine used = uses_exact_engine(a) ? engine : oracle::Engine::f50;
    const gradcheck::UlpPrecision acc = accumulation_of(a.accumulate, mine.storage);
    reports.push_back(mine.f ? oracle::judge_bound(bd, *mine.f, op_dir, what, j.name, used,
                                                   judge_opt, mine.storage, acc)
                             : oracle::judge_bound(bd, *mine.d, op_dir, what, j.name, used,
                                                   judge_opt, mine.storage, acc));
  }
  bool pass = true;
  for (const auto& r : reports) {
    r.print(std::cout);
    pass = pass && r.passed();
  }
  std::cout << "verify " << op << ": " << reports.size() << " output"
            << (reports.size() == 1 ? "" : "s") << " judged, " << (pass ? "all pass" : "FAIL")
            << "\n";
  return pass ? exit_ok : exit_check_failed;
}

}  // namespace

void register_verify(CLI::App& app, Action& run) {
  auto args = std::make_shared<VerifyArgs>();
  args->command = "verify";
  CLI::App* sub = app.add_subcommand(
      "verify", "Judge your .npy results of an op (and its gradients) against the exact ones, "
                "with a derived per-element tolerance");
  add_input_options(sub, *args);
  auto& o = args->opts;
  o["--dy"] = sub->add_option("--dy", args->dy,
                              "Upstream gradient (.npy, y's shape; 0-d for losses)");
  o["--y"] = sub->add_option("--y", args->y,
                             "YOUR output y (.npy: float64, float32, float16, bfloat16)")
                 ->required();
  o["--dx"] = sub->add_option("--dx", args->dx, "YOUR dx (.npy): the VJP of dy in x");
  o["--dw"] = sub->add_option("--dw", args->dw, "YOUR dw (.npy), conv2d / linear");
  o["--db"] = sub->add_option("--db", args->db, "YOUR db (.npy), conv2d / linear with --b");
  o["--engine"] = sub->add_option("--engine", args->engine,
                                  "exact (default) or f50: how the sums of conv2d, linear and "
                                  "avg_pool2d are computed (the same verdicts)");
  o["--accumulate"] = sub->add_option(
      "--accumulate", args->accumulate,
      "float16|bfloat16|float32|float64: the precision your kernel sums in (default: each "
      "file's own); u is its unit roundoff, plus one rounding to the file's precision");
  o["--tier"] = sub->add_option("--tier", args->tier,
                                "probabilistic (default) or sound: the bound the verdict uses "
                                "(the report gives both)");
  add_geometry_options(sub, *args);
  sub->footer(
      "Each of your files (float16 '<f2', bfloat16 '<V2' or '<u2' with --dtype bfloat16,\n"
      "float32, float64) is judged per element, K and S derived per op (the report says which),\n"
      "with u of --accumulate (default: the file's precision; float16 2^-11, bfloat16 2^-8,\n"
      "float32 2^-24, float64 2^-53) plus one rounding to the file's precision, in two tiers:\n"
      "  sound          |mine - exact| <= gamma(K) * S, gamma(K) = K u / (1 - K u): a proof;\n"
      "  probabilistic  |mine - exact| <= gamma~(K, lambda) * S ~ lambda sqrt(K) u S (Higham &\n"
      "                 Mary 2019) where the op's bound is a sum: a correct kernel fails an\n"
      "                 element with probability < 1e-9; catches low-precision accumulation.\n"
      "The verdict is --tier's (default probabilistic). softmax and log_softmax reduce over\n"
      "dim 1. Exit status: 0 all pass, 1 a check failed, 2 bad input.");
  sub->callback([&run, args] { run = [args] { return run_verify(*args); }; });
}

}  // namespace tapegrad::cli
