// Network spec parser: see include/tapegrad/layers/spec.hpp for the format.
#include "tapegrad/layers/spec.hpp"

#include <cctype>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace tapegrad {

const char* layer_kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::conv2d: return "conv2d";
    case LayerKind::linear: return "linear";
    case LayerKind::relu: return "relu";
    case LayerKind::sigmoid: return "sigmoid";
    case LayerKind::tanh: return "tanh";
    case LayerKind::max_pool2d: return "max_pool2d";
    case LayerKind::avg_pool2d: return "avg_pool2d";
    case LayerKind::flatten: return "flatten";
  }
  return "?";
}

const char* loss_kind_name(LossKind k) {
  return k == LossKind::mse ? "mse" : "cross_entropy";
}

namespace {

[[noreturn]] void fail_line(int line, const std::string& what) {
  throw std::invalid_argument("spec line " + std::to_string(line) + ": " + what);
}

// key=value options of one line, each consumed at most once; leftovers are errors.
class Options {
 public:
  Options(int line, const std::string& layer, const std::vector<std::string>& tokens)
      : line_(line), layer_(layer) {
    for (std::size_t i = 1; i < tokens.size(); ++i) {
      const auto eq = tokens[i].find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == tokens[i].size())
        fail_line(line, layer + ": expected key=value, got '" + tokens[i] + "'");
      const std::string key = tokens[i].substr(0, eq);
      if (kv_.count(key)) fail_line(line, layer + ": option '" + key + "' given twice");
      kv_[key] = tokens[i].substr(eq + 1);
    }
  }

  std::optional<index_t> integer(const std::string& key) {
    auto it = kv_.find(key);
    if (it == kv_.end()) return std::nullopt;
    const std::string v = it->second;
    kv_.erase(it);
    return parse_int(key, v);
  }
  std::optional<Pair> pair(const std::string& key) {
    auto it = kv_.find(key);
    if (it == kv_.end()) return std::nullopt;
    const std::string v = it->second;
    kv_.erase(it);
    const auto comma = v.find(',');
    if (comma == std::string::npos) {
      const index_t a = parse_int(key, v);
      return Pair{a, a};
    }
    return Pair{parse_int(key, v.substr(0, comma)), parse_int(key, v.substr(comma + 1))};
  }
  std::optional<bool> boolean(const std::string& key) {
    auto it = kv_.find(key);
    if (it == kv_.end()) return std::nullopt;
    const std::string v = it->second;
    kv_.erase(it);
    if (v == "true" || v == "1") return true;
    if (v == "false" || v == "0") return false;
    fail_line(line_, layer_ + ": " + key + " must be true or false, got '" + v + "'");
  }
  void finish() const {
    if (!kv_.empty())
      fail_line(line_, layer_ + ": unknown option '" + kv_.begin()->first + "'");
  }

 private:
  index_t parse_int(const std::string& key, const std::string& v) const {
    std::size_t used = 0;
    long long x = 0;
    try {
      x = std::stoll(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != v.size())
      fail_line(line_, layer_ + ": " + key + " must be an integer, got '" + v + "'");
    return x;
  }

  int line_;
  std::string layer_;
  std::map<std::string, std::string> kv_;
};

index_t shape_tail_numel(const Shape& s) {
  index_t m = 1;
  for (index_t d = 1; d < s.rank(); ++d) m = checked_mul(m, s[d], "spec");
  return m;
}

}  // namespace

NetSpec parse_spec(std::string_view text, std::string source) {
  NetSpec spec;
  spec.source = std::move(source);
  std::istringstream in{std::string(text)};
  std::string raw;
  int line = 0;
  bool have_input = false, have_loss = false;
  Shape cur;  // running per-sample shape, batch dimension 1
  int n_conv = 0, n_fc = 0, n_other = 0;
  while (std::getline(in, raw)) {
    ++line;
    const auto hash = raw.find('#');
    if (hash != std::string::npos) raw.resize(hash);
    std::istringstream ls(raw);
    std::vector<std::string> tok;
    for (std::string t; ls >> t;) tok.push_back(t);
    if (tok.empty()) continue;
    const std::string& kw = tok[0];
    if (have_loss) fail_line(line, "'" + kw + "' after the loss line (loss must be last)");
    if (kw == "input") {
      if (have_input) fail_line(line, "input given twice");
      if (tok.size() < 2) fail_line(line, "input: expected the per-sample sizes, e.g. 'input 1 28 28'");
      std::vector<index_t> dims{1};
      for (std::size_t i = 1; i < tok.size(); ++i) {
        std::size_t used = 0;
        long long v = 0;
        try {
          v = std::stoll(tok[i], &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != tok[i].size())
          fail_line(line, "input: size must be an integer, got '" + tok[i] + "'");
        if (v <= 0) fail_line(line, "input: size must be positive, got " + tok[i]);
        spec.input.push_back(v);
        dims.push_back(v);
      }
      try {
        cur = Shape(dims);
      } catch (const std::exception& e) {
        fail_line(line, std::string("input: ") + e.what());
      }
      have_input = true;
      continue;
    }
    if (!have_input) fail_line(line, "'" + kw + "' before the input line");
    if (kw == "loss") {
      if (tok.size() != 2) fail_line(line, "loss: expected 'loss mse' or 'loss cross_entropy'");
      if (tok[1] == "mse") {
        spec.loss = LossKind::mse;
      } else if (tok[1] == "cross_entropy") {
        spec.loss = LossKind::cross_entropy;
        if (cur.rank() != 2)
          fail_line(line, "cross_entropy: the network output must be 2-d (N,classes), got " +
                              cur.str() + " (add 'flatten' / 'linear' before it)");
      } else {
        fail_line(line, "unknown loss '" + tok[1] + "' (expected mse or cross_entropy)");
      }
      have_loss = true;
      continue;
    }
    LayerSpec L;
    L.line = line;
    L.in_shape = cur;
    Options opt(line, kw, tok);
    try {
      if (kw == "conv2d") {
        L.kind = LayerKind::conv2d;
        L.name = "conv" + std::to_string(++n_conv);
        const auto out = opt.integer("out");
        const auto ker = opt.pair("kernel");
        if (!out) fail_line(line, "conv2d: missing out=");
        if (!ker) fail_line(line, "conv2d: missing kernel=");
        L.out = *out;
        L.kernel = *ker;
        if (auto v = opt.pair("stride")) L.conv.stride = *v;
        if (auto v = opt.pair("pad")) L.conv.pad = *v;
        if (auto v = opt.pair("dilation")) L.conv.dilation = *v;
        if (auto v = opt.integer("groups")) L.conv.groups = *v;
        if (auto v = opt.boolean("bias")) L.bias = *v;
        opt.finish();
        check_positive("conv2d", "out", L.out);
        check_positive("conv2d", "kernel", L.kernel[0]);
        check_positive("conv2d", "kernel", L.kernel[1]);
        check_positive("conv2d", "groups", L.conv.groups);
        check_rank("conv2d", "x", cur, 4, "(N,C,H,W) (input must be 'input C H W')");
        check_arg(cur[1] % L.conv.groups == 0, "conv2d", "groups ", L.conv.groups,
                  " does not divide the input channels ", cur[1]);
        const Shape w{L.out, cur[1] / L.conv.groups, L.kernel[0], L.kernel[1]};
        const Shape b{L.out};
        const Conv2dGeom g = make_conv2d_geom(cur, w, L.bias ? &b : nullptr, L.conv, "conv2d");
        cur = g.y_shape();
        const index_t fan_in = w[1] * w[2] * w[3];
        L.w_param = static_cast<int>(spec.params.size());
        spec.params.push_back({L.name + ".w", w, fan_in, static_cast<int>(spec.layers.size())});
        if (L.bias) {
          L.b_param = static_cast<int>(spec.params.size());
          spec.params.push_back({L.name + ".b", b, fan_in, static_cast<int>(spec.layers.size())});
        }
      } else if (kw == "linear") {
        L.kind = LayerKind::linear;
        L.name = "fc" + std::to_string(++n_fc);
        const auto out = opt.integer("out");
        if (!out) fail_line(line, "linear: missing out=");
        L.out = *out;
        if (auto v = opt.boolean("bias")) L.bias = *v;
        opt.finish();
        check_positive("linear", "out", L.out);
        if (cur.rank() != 2)
          fail_line(line, "linear: x must be 2-d (N,in), got " + cur.str() +
                              " (add 'flatten' before it)");
        const Shape w{L.out, cur[1]};
        const Shape b{L.out};
        const LinearGeom g = make_linear_geom(cur, w, L.bias ? &b : nullptr, "linear");
        cur = g.y_shape();
        L.w_param = static_cast<int>(spec.params.size());
        spec.params.push_back({L.name + ".w", w, w[1], static_cast<int>(spec.layers.size())});
        if (L.bias) {
          L.b_param = static_cast<int>(spec.params.size());
          spec.params.push_back({L.name + ".b", b, w[1], static_cast<int>(spec.layers.size())});
        }
      } else if (kw == "relu" || kw == "sigmoid" || kw == "tanh") {
        L.kind = kw == "relu" ? LayerKind::relu
                 : kw == "sigmoid" ? LayerKind::sigmoid
                                   : LayerKind::tanh;
        L.name = kw + std::to_string(++n_other);
        opt.finish();
      } else if (kw == "max_pool2d" || kw == "avg_pool2d") {
        L.kind = kw == "max_pool2d" ? LayerKind::max_pool2d : LayerKind::avg_pool2d;
        L.name = kw + std::to_string(++n_other);
        const auto ker = opt.pair("kernel");
        if (!ker) fail_line(line, kw + ": missing kernel=");
        L.pool.kernel = *ker;
        L.pool.stride = *ker;
        if (auto v = opt.pair("stride")) L.pool.stride = *v;
        L.pool.pad = {0, 0};
        if (auto v = opt.pair("pad")) L.pool.pad = *v;
        opt.finish();
        cur = make_pool2d_geom(cur, L.pool, kw).y_shape();
      } else if (kw == "flatten") {
        L.kind = LayerKind::flatten;
        L.name = "flatten" + std::to_string(++n_other);
        opt.finish();
        if (cur.rank() < 2) fail_line(line, "flatten: x must have rank >= 2, got " + cur.str());
        cur = Shape{cur[0], shape_tail_numel(cur)};
      } else {
        fail_line(line, "unknown layer '" + kw + "'");
      }
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      if (what.rfind("spec line ", 0) == 0) throw;
      fail_line(line, what);
    } catch (const std::length_error& e) {
      fail_line(line, e.what());
    }
    L.out_shape = cur;
    spec.layers.push_back(std::move(L));
  }
  if (!have_input) throw std::invalid_argument("spec: no 'input C H W' line");
  if (!have_loss) throw std::invalid_argument("spec: no 'loss mse|cross_entropy' line (must be last)");
  return spec;
}

Shape NetSpec::input_shape(index_t n) const {
  std::vector<index_t> d{n};
  d.insert(d.end(), input.begin(), input.end());
  return Shape(d);
}

Shape NetSpec::output_shape(index_t n) const {
  const Shape& s = layers.empty() ? input_shape(1) : layers.back().out_shape;
  std::vector<index_t> d = s.dims();
  d[0] = n;
  return Shape(d);
}

index_t NetSpec::reduction_depth(index_t n) const {
  // Per layer: forward + backward-data + backward-weights dot-product lengths (each error
  // reaches the gradients), plus a few units for each exp/tanh evaluation.
  index_t k = 0;
  for (const LayerSpec& L : layers) {
    const Shape& x = L.in_shape;
    const Shape& y = L.out_shape;
    switch (L.kind) {
      case LayerKind::conv2d: {
        const index_t rs = L.kernel[0] * L.kernel[1];
        k += x[1] / L.conv.groups * rs + 1;       // forward (+ bias)
        k += y[1] / L.conv.groups * rs;           // backward-data
        k += n * y[2] * y[3];                     // backward-weights / bias
        break;
      }
      case LayerKind::linear:
        k += x[1] + 1 + y[1] + n;
        break;
      case LayerKind::avg_pool2d:
        k += 2 * L.pool.kernel[0] * L.pool.kernel[1];
        break;
      case LayerKind::sigmoid:
      case LayerKind::tanh:
        k += 8;  // exp/tanh (a few ulps) forward, and the (1 - y) products backward
        break;
      default:
        break;
    }
  }
  const Shape out = output_shape(n);
  if (loss == LossKind::mse)
    k += out.numel() + 2;  // mean over all elements
  else
    k += 2 * out[1] + n + 8;  // log-sum-exp over classes, mean over the batch
  return k;
}

std::optional<std::string> preset_spec_text(std::string_view name) {
  if (name == "seed")
    return std::string(
        "# seed: the tutorial's network\n"
        "input 1 3 3\n"
        "conv2d out=1 kernel=3 bias=false\n"
        "sigmoid\n"
        "flatten\n"
        "linear out=1\n"
        "sigmoid\n"
        "loss mse\n");
  if (name == "lenet5")
    return std::string(
        "# lenet5 for 28x28 inputs, 10 classes\n"
        "input 1 28 28\n"
        "conv2d out=6 kernel=5 pad=2\n"
        "relu\n"
        "max_pool2d kernel=2\n"
        "conv2d out=16 kernel=5\n"
        "relu\n"
        "max_pool2d kernel=2\n"
        "flatten\n"
        "linear out=120\n"
        "relu\n"
        "linear out=84\n"
        "relu\n"
        "linear out=10\n"
        "loss cross_entropy\n");
  return std::nullopt;
}

NetSpec load_spec(const std::string& name_or_path) {
  if (auto text = preset_spec_text(name_or_path)) return parse_spec(*text, name_or_path);
  std::ifstream f(name_or_path);
  if (!f)
    throw std::invalid_argument("spec: cannot read '" + name_or_path +
                                "' (not a file, and not a preset: seed, lenet5)");
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_spec(ss.str(), name_or_path);
}

}  // namespace tapegrad
