// Network spec parser: see include/tapegrad/net/spec.hpp for the format. Every layer kind and
// loss comes from the tables (net/layer_table.hpp, net/loss_table.hpp).
#include "tapegrad/net/spec.hpp"

#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace tapegrad {

namespace {

[[noreturn]] void fail_line(int line, const std::string& what) {
  throw std::invalid_argument("spec line " + std::to_string(line) + ": " + what);
}

// The per-sample input line: "input C H W".
Shape parse_input(const std::vector<std::string>& tok, int line, std::vector<index_t>& input) {
  if (tok.size() < 2) fail_line(line, "input: expected the per-sample sizes, e.g. 'input 1 28 28'");
  std::vector<index_t> dims{1};
  for (std::size_t i = 1; i < tok.size(); ++i) {
    index_t v = 0;
    if (!parse_index(tok[i], v)) fail_line(line, "input: size must be an integer, got '" + tok[i] + "'");
    if (v <= 0) fail_line(line, "input: size must be positive, got " + tok[i]);
    input.push_back(v);
    dims.push_back(v);
  }
  try {
    return Shape(dims);
  } catch (const std::exception& e) {
    fail_line(line, std::string("input: ") + e.what());
  }
}

}  // namespace

NetSpec parse_spec(std::string_view text, std::string source) {
  NetSpec spec;
  spec.source = std::move(source);
  spec.text = std::string(text);
  std::istringstream in{std::string(text)};
  std::string raw;
  int line = 0;
  bool have_input = false, have_loss = false;
  Shape cur;  // running per-sample shape, batch dimension 1
  std::map<std::string, int> counters;  // per parameter prefix; "" for the others
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
      cur = parse_input(tok, line, spec.input);
      have_input = true;
      continue;
    }
    if (!have_input) fail_line(line, "'" + kw + "' before the input line");
    if (kw == "loss") {
      if (tok.size() != 2) fail_line(line, "loss: expected 'loss " + loss_kind_list() + "'");
      spec.loss = find_loss_kind(tok[1]);
      if (spec.loss < 0)
        fail_line(line, "unknown loss '" + tok[1] + "' (expected " + loss_kind_list() + ")");
      try {
        visit_loss_kind(spec.loss, [&](auto loss) { decltype(loss)::check_output(cur); });
      } catch (const std::invalid_argument& e) {
        fail_line(line, e.what());
      }
      have_loss = true;
      continue;
    }
    LayerSpec L;
    L.line = line;
    L.in_shape = cur;
    L.kind = find_layer_kind(kw);
    if (L.kind < 0) fail_line(line, "unknown layer '" + kw + "'");
    try {
      visit_layer_kind(L.kind, [&](auto kind) {
        using Kind = decltype(kind);
        const std::vector<std::string> opts(tok.begin() + 1, tok.end());
        L.keys = Keys::parse(Kind::keys, Kind::name, opts);
        const std::string prefix(Kind::param_prefix);
        L.name = (prefix.empty() ? std::string(Kind::name) : prefix) +
                 std::to_string(++counters[prefix]);
        std::vector<ParamDecl> decls;
        cur = Kind::infer(L.keys, cur, decls);
        for (ParamDecl& d : decls) {
          L.params.push_back(static_cast<int>(spec.params.size()));
          spec.params.push_back({L.name + "." + d.suffix, std::move(d.shape), d.fan_in,
                                 static_cast<int>(spec.layers.size()), d.bias});
        }
      });
    } catch (const std::invalid_argument& e) {
      fail_line(line, e.what());
    } catch (const std::length_error& e) {
      fail_line(line, e.what());
    }
    L.out_shape = cur;
    spec.layers.push_back(std::move(L));
  }
  if (!have_input) throw std::invalid_argument("spec: no 'input C H W' line");
  if (!have_loss) {
    std::string names;
    for (int k = 0; k < num_loss_kinds; ++k) (names += k ? "|" : "") += loss_kind_name(k);
    throw std::invalid_argument("spec: no 'loss " + names + "' line (must be last)");
  }
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
  // reaches the gradients), plus a few units for each exp/tanh evaluation; then the loss.
  index_t k = 0;
  for (const LayerSpec& L : layers)
    k += visit_layer_kind(L.kind, [&](auto kind) { return decltype(kind)::reduction_length(L, n); });
  const Shape out = output_shape(n);
  return k + visit_loss_kind(loss, [&](auto l) { return decltype(l)::reduction_length(out); });
}

double NetSpec::forward_macs(std::size_t start, index_t n) const {
  double m = 0;
  for (std::size_t i = start; i < layers.size(); ++i)
    m += visit_layer_kind(layers[i].kind,
                          [&](auto kind) { return decltype(kind)::macs(layers[i], n); });
  return m;
}

index_t NetSpec::loss_count(index_t n) const {
  const Shape out = output_shape(n);
  return visit_loss_kind(loss, [&](auto l) { return decltype(l)::count_of(out); });
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
