// The inputs `tapegrad ref` and `tapegrad verify` share: the ops and which inputs and options
// each takes, reading a float .npy input, the geometry options, and the memory estimate from
// the headers alone (before any data is read). Messages name the subcommand (RefArgs::command).
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <set>
#include <string>

#include "common.hpp"
#include "tapegrad/io/npy.hpp"
#include "tapegrad/kernels/conv2d_exact.hpp"
#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/kernels/linear_exact.hpp"
#include "tapegrad/kernels/pool_exact.hpp"
#include "tapegrad/memory.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::cli {

struct RefArgs {
  std::string command = "ref";  // the subcommand, in messages: "ref", "verify"
  std::string op;
  std::string x, w, b, target, dy, out;
  std::string out_dtype = "float64";
  std::string engine = "exact";
  std::string stride, pad, dilation, kernel;
  std::string groups = "1";
  std::string dtype16;  // --dtype bfloat16: '<u2' files hold bfloat16 bit patterns
  std::map<std::string, CLI::Option*> opts;  // "--w" -> option, to see which were given

  bool given(const std::string& name) const { return opts.at(name)->count() > 0; }
};

// Which inputs and options each op takes (beyond --x, --out, --dy, --out-dtype, taken by all).
struct OpSpec {
  std::set<std::string> required, optional;
};
inline const std::map<std::string, OpSpec>& op_table() {
  static const std::map<std::string, OpSpec> t{
      {"conv2d", {{"--w"}, {"--b", "--stride", "--pad", "--dilation", "--groups"}}},
      {"linear", {{"--w"}, {"--b"}}},
      {"relu", {}},
      {"sigmoid", {}},
      {"tanh", {}},
      {"softmax", {}},
      {"log_softmax", {}},
      {"flatten", {}},
      {"max_pool2d", {{"--kernel"}, {"--stride", "--pad"}}},
      {"avg_pool2d", {{"--kernel"}, {"--stride", "--pad"}}},
      {"mse_loss", {{"--target"}, {}}},
      {"cross_entropy", {{"--target"}, {}}},
  };
  return t;
}

inline std::string op_list() {
  std::string s;
  for (const auto& [name, spec] : op_table()) s += (s.empty() ? "" : ", ") + name;
  return s;
}

// A '<u2' file (raw 16-bit patterns) is bfloat16 under --dtype bfloat16 and bad input
// otherwise; every other dtype is left alone. For headers and arrays alike.
template <class A>
A as_dtype16(A a, const std::string& dtype16, const std::string& path) {
  if (a.dtype != io::NpyDtype::u2) return a;
  if (dtype16 != "bfloat16")
    throw BadInput(quote(path) + " has dtype uint16; pass --dtype bfloat16 if it holds bfloat16 "
                   "bit patterns (ml_dtypes' np.save writes '<V2', read as bfloat16 as it is)");
  a.dtype = io::NpyDtype::bf16;
  return a;
}
inline void check_dtype16_arg(const std::string& command, const std::string& dtype16) {
  if (!dtype16.empty() && dtype16 != "bfloat16")
    throw BadInput(command + ": --dtype must be bfloat16 (how '<u2' files are read), got " +
                   quote(dtype16));
}

// A float input as T = f50 or double (exact either way: float16, bfloat16, float32, float64),
// rejecting int dtypes and NaN/Inf with the file named.
template <class T = f50>
Tensor<T> read_float_input(const std::string& path, const std::string& what,
                           const std::string& dtype16 = "") {
  return read_arg("--" + what, [&] {
    const io::NpyArray a = as_dtype16(io::read_npy(path), dtype16, path);
    if (a.dtype == io::NpyDtype::i8)
      throw BadInput(quote(path) + ": " + what +
                     " has dtype int64, expected float16, bfloat16, float32 or float64");
    io::check_all_finite(a, path);
    return io::to_tensor<T>(a, path);
  });
}

// conv2d, linear and avg_pool2d run in the exact engine unless --engine f50 (see the top).
// (A 16-bit --out-dtype goes through f50: the exact engine rounds to float or double, and a
// second rounding to float16 / bfloat16 could be a double rounding.)
inline bool uses_exact_engine(const RefArgs& a) {
  return a.engine == "exact" && (a.out_dtype == "float64" || a.out_dtype == "float32") &&
         (a.op == "conv2d" || a.op == "linear" || a.op == "avg_pool2d");
}

// Geometry options as parsed (ranges checked; the geometry makers check the rest).
inline Pair stride_arg(const RefArgs& a, Pair dflt) {
  return a.given("--stride") ? parse_pair(a.stride, "--stride", 1, max_size_arg) : dflt;
}
inline Pair pad_arg(const RefArgs& a) {
  return a.given("--pad") ? parse_pair(a.pad, "--pad", 0, max_size_arg) : Pair{0, 0};
}
inline Pair dilation_arg(const RefArgs& a) {
  return a.given("--dilation") ? parse_pair(a.dilation, "--dilation", 1, max_size_arg)
                               : Pair{1, 1};
}
inline Pair kernel_arg(const RefArgs& a) { return parse_pair(a.kernel, "--kernel", 1, max_size_arg); }

// "--pad '1,2' --stride '3'": the geometry options given, for messages about the output size.
inline std::string geometry_options(const RefArgs& a) {
  std::string s;
  for (const auto& [name, value] : {std::pair{"--kernel", &a.kernel}, {"--stride", &a.stride},
                                    {"--pad", &a.pad}, {"--dilation", &a.dilation}})
    if (a.given(name)) s += std::string(s.empty() ? "" : " ") + name + " " + quote(*value, 64);
  return s;
}

// The argument behind the size of a windowed op's output: --pad when padding more than doubles
// the input, else the input itself.
inline std::string window_cause(const RefArgs& a, const Shape& x, Pair pad) {
  if (a.given("--pad") && x.rank() == 4 && (2 * pad[0] > x[2] || 2 * pad[1] > x[3]))
    return "--pad " + quote(a.pad, 64);
  return "--x " + quote(a.x);
}

// A geometry maker's size overflow, said with the options that caused it.
template <class Make>
auto with_size_context(const RefArgs& a, const Shape& x, Make make) {
  try {
    return make();
  } catch (const std::length_error& e) {
    const std::string opts = geometry_options(a);
    throw std::length_error(a.command + " " + a.op + ": the output size of x " + x.str() +
                            (opts.empty() ? "" : " with " + opts) + " overflows (" + e.what() +
                            ")");
  }
}

// Before any data is read: every input's header (type of file, format, size against the file),
// the output shapes from the input shapes, and the memory all of it takes, refused up front.
// Shape errors found here are the ones compute() would raise, only earlier.
inline void check_memory(const RefArgs& a, memory::Estimate& est) {
  struct In {
    const char* option;
    const std::string* path;
  };
  std::map<std::string, io::NpyHeader> h;
  const auto f50_bytes = static_cast<std::uint64_t>(sizeof(f50));
  // The exact engine reads floats as double, keeps each output once in the output dtype (then
  // encoded), and allocates the workspace its kernels report; the f50 engine holds f50 copies.
  const bool exact_engine = uses_exact_engine(a);
  const std::uint64_t float_item = exact_engine ? sizeof(double) : f50_bytes;
  const char* float_as = exact_engine ? " as double" : " in 50 digits";
  for (const In& in : {In{"--x", &a.x}, In{"--w", &a.w}, In{"--b", &a.b}, In{"--target", &a.target},
                       In{"--dy", &a.dy}}) {
    if (!a.given(in.option)) continue;
    const io::NpyHeader hd = read_arg(in.option, [&] { return io::read_npy_header(*in.path); });
    const auto n = static_cast<std::uint64_t>(hd.shape.numel());
    const std::string cause = std::string(in.option) + " " + quote(*in.path);
    const std::string name = std::string(in.option).substr(2) + " " + hd.shape.str();
    est.add(name + " as read", 1, hd.data_bytes, cause);
    // floats become f50; int64 targets become a vector of indices
    est.add(name + (hd.dtype == io::NpyDtype::i8 ? " as indices" : float_as), n,
            hd.dtype == io::NpyDtype::i8 ? 8 : float_item, cause);
    h.emplace(in.option, hd);
  }
  const Shape& x = h.at("--x").shape;
  const auto shape_of = [&](const char* o) { return h.count(o) ? &h.at(o).shape : nullptr; };
  // Outputs: y, and with --dy the gradients (x's shape, and w's and b's where the op has them).
  std::vector<std::pair<std::string, std::pair<Shape, std::string>>> outs;
  const std::string x_cause = "--x " + quote(a.x);
  if (a.op == "conv2d" && shape_of("--w")) {
    Conv2dParams prm;
    prm.stride = stride_arg(a, {1, 1});
    prm.pad = pad_arg(a);
    prm.dilation = dilation_arg(a);
    prm.groups = parse_int(a.groups, "--groups", 1, max_size_arg);
    const Conv2dGeom g = with_size_context(a, x, [&] {
      return make_conv2d_geom(x, *shape_of("--w"), shape_of("--b"), prm);
    });
    outs.push_back({"y", {g.y_shape(), window_cause(a, x, prm.pad)}});
    if (a.given("--dy")) {
      outs.push_back({"dw", {g.w_shape(), "--w " + quote(a.w)}});
      if (a.given("--b")) outs.push_back({"db", {g.b_shape(), "--b " + quote(a.b)}});
    }
    if (exact_engine)
      est.add("exact engine workspace for " + g.str(), 1, exact::conv2d_workspace_bytes(g),
              window_cause(a, x, prm.pad));
  } else if (a.op == "linear" && shape_of("--w")) {
    const LinearGeom g = make_linear_geom(x, *shape_of("--w"), shape_of("--b"));
    if (exact_engine)
      est.add("exact engine workspace for " + g.str(), 1, exact::linear_workspace_bytes(g),
              "--x " + quote(a.x));
    outs.push_back({"y", {g.y_shape(), "--w " + quote(a.w)}});
    if (a.given("--dy")) {
      outs.push_back({"dw", {g.w_shape(), "--w " + quote(a.w)}});
      if (a.given("--b")) outs.push_back({"db", {g.b_shape(), "--b " + quote(a.b)}});
    }
  } else if (a.op == "max_pool2d" || a.op == "avg_pool2d") {
    Pool2dParams prm;
    prm.kernel = kernel_arg(a);
    prm.stride = stride_arg(a, prm.kernel);
    prm.pad = pad_arg(a);
    const Pool2dGeom g =
        with_size_context(a, x, [&] { return make_pool2d_geom(x, prm, a.op); });
    outs.push_back({"y", {g.y_shape(), window_cause(a, x, prm.pad)}});
    if (exact_engine)
      est.add("exact engine workspace for " + g.str(), 1, exact::avg_pool2d_workspace_bytes(g),
              window_cause(a, x, prm.pad));
  } else if (a.op == "mse_loss" || a.op == "cross_entropy") {
    outs.push_back({"y", {Shape{}, x_cause}});
  } else {
    outs.push_back({"y", {x, x_cause}});  // element-wise ops and flatten: x's size
  }
  if (a.given("--dy")) outs.push_back({"dx", {x, x_cause}});
  // Each output in f50 (the exact engine: not at all), then rounded and encoded (both kept
  // until the files are written).
  const std::uint64_t out_item = a.out_dtype == "float32" ? 4 : a.out_dtype == "float64" ? 8 : 2;
  for (const auto& [name, shape_cause] : outs) {
    const auto& [shape, cause] = shape_cause;
    const auto n = static_cast<std::uint64_t>(shape.numel());
    if (!exact_engine) est.add(name + " " + shape.str() + " in 50 digits", n, f50_bytes, cause);
    est.add(name + " " + shape.str() + " rounded and encoded", n, 2 * out_item, cause);
  }
}

// The geometries from the options, one place for both engines.
inline Conv2dGeom conv2d_geom(const RefArgs& a, const Shape& x, const Shape& w, const Shape* b) {
  Conv2dParams prm;
  prm.stride = stride_arg(a, {1, 1});
  prm.pad = pad_arg(a);
  prm.dilation = dilation_arg(a);
  prm.groups = parse_int(a.groups, "--groups", 1, max_size_arg);
  return make_conv2d_geom(x, w, b, prm);
}
inline Pool2dGeom pool2d_geom(const RefArgs& a, const Shape& x) {
  Pool2dParams prm;
  prm.kernel = kernel_arg(a);
  prm.stride = stride_arg(a, prm.kernel);
  prm.pad = pad_arg(a);
  return make_pool2d_geom(x, prm, a.op);
}


// The op is known, takes the inputs and options given, has the ones it requires; the engine is
// one of the two; every input path is usable.
inline void validate_ref_args(const RefArgs& a) {
  const auto& table = op_table();
  const auto it = table.find(a.op);
  if (it == table.end())
    throw BadInput(a.command + ": unknown op " + quote(a.op) + "; expected one of " + op_list());
  const OpSpec& spec = it->second;
  for (const char* name :
       {"--w", "--b", "--target", "--stride", "--pad", "--dilation", "--groups", "--kernel"}) {
    const bool takes = spec.required.count(name) || spec.optional.count(name);
    if (a.given(name) && !takes) throw BadInput(a.command + " " + a.op + ": does not take " + name);
    if (!a.given(name) && spec.required.count(name))
      throw BadInput(a.command + " " + a.op + ": " + name + " is required");
  }
  check_dtype16_arg(a.command, a.dtype16);
  if (a.engine != "exact" && a.engine != "f50")
    throw BadInput(a.command + ": --engine must be exact or f50, got " + quote(a.engine));
  for (const auto& [name, path] : {std::pair{"--x", &a.x}, {"--w", &a.w}, {"--b", &a.b},
                                   {"--target", &a.target}, {"--dy", &a.dy}})
    if (a.given(name)) check_path_arg(*path, name);
}

// The options ref and verify share, registered on `sub` into `a`: the op, the inputs (x, w, b,
// target) and the geometry (stride, pad, dilation, groups, kernel).
inline void add_input_options(CLI::App* sub, RefArgs& a) {
  sub->add_option("op", a.op, "Op: " + op_list())->required();
  auto& o = a.opts;
  o["--x"] = sub->add_option("--x", a.x, "Input x (.npy: float64, float32, float16, bfloat16)")
                 ->required();
  o["--w"] = sub->add_option("--w", a.w, "Weights (.npy) for conv2d / linear");
  o["--b"] = sub->add_option("--b", a.b, "Bias (.npy) for conv2d / linear (optional)");
  o["--target"] = sub->add_option("--target", a.target,
                                  "Target (.npy): float for mse_loss, int64 (N) for cross_entropy");
}
inline void add_geometry_options(CLI::App* sub, RefArgs& a) {
  auto& o = a.opts;
  o["--stride"] = sub->add_option("--stride", a.stride, "SH,SW or S (conv2d, pools)");
  o["--pad"] = sub->add_option("--pad", a.pad, "PH,PW or P (conv2d, pools)");
  o["--dilation"] = sub->add_option("--dilation", a.dilation, "DH,DW or D (conv2d)");
  o["--groups"] = sub->add_option("--groups", a.groups, "Groups (conv2d), at least 1");
  o["--kernel"] = sub->add_option("--kernel", a.kernel, "KH,KW or K (pools)");
  o["--dtype"] = sub->add_option("--dtype", a.dtype16,
                                 "bfloat16: read '<u2' .npy files as bfloat16 bit patterns "
                                 "(float16 '<f2' and ml_dtypes bfloat16 '<V2' need nothing)");
}

}  // namespace tapegrad::cli
