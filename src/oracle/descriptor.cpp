// Case descriptors: one line of text per search case; see oracle/descriptor.hpp.
#include "tapegrad/oracle/descriptor.hpp"

#include <cctype>
#include <charconv>
#include <map>
#include <stdexcept>
#include <vector>

namespace tapegrad::oracle {

const char* case_values_name(CaseValues v) {
  switch (v) {
    case CaseValues::exact: return "exact";
    case CaseValues::uniform: return "uniform";
    case CaseValues::ties: return "ties";
    case CaseValues::wide: return "wide";
  }
  return "?";
}

namespace {

[[noreturn]] void bad(std::string_view what, std::string_view text) {
  std::string m = "descriptor: ";
  m += what;
  m += " in '";
  m += text;
  m += "'";
  throw std::invalid_argument(m);
}

index_t number(std::string_view digits, std::string_view text) {
  index_t v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty())
    bad("a number expected", text);
  return v;
}

// "mb2ic3ih8" -> {mb:2, ic:3, ih:8}; every key one of `keys`, at most once.
std::map<std::string, index_t> keyed(std::string_view text, const std::vector<std::string>& keys) {
  std::map<std::string, index_t> m;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = i;
    while (j < text.size() && std::isalpha(static_cast<unsigned char>(text[j]))) ++j;
    std::size_t k = j;
    while (k < text.size() && std::isdigit(static_cast<unsigned char>(text[k]))) ++k;
    const std::string key(text.substr(i, j - i));
    if (key.empty() || k == j) bad("expected <key><number> pairs", text);
    bool known = false;
    for (const auto& kk : keys) known = known || kk == key;
    if (!known) {
      std::string all;
      for (const auto& kk : keys) all += (all.empty() ? "" : " ") + kk;
      bad("unknown key '" + key + "' (keys: " + all + ")", text);
    }
    if (m.count(key)) bad("key '" + key + "' given twice", text);
    m[key] = number(text.substr(j, k - j), text);
    i = k;
  }
  return m;
}

index_t get(const std::map<std::string, index_t>& m, const std::string& key, index_t dflt) {
  const auto it = m.find(key);
  return it == m.end() ? dflt : it->second;
}
index_t need(const std::map<std::string, index_t>& m, const std::string& key,
             std::string_view text) {
  const auto it = m.find(key);
  if (it == m.end()) bad("key '" + key + "' is required", text);
  return it->second;
}

}  // namespace

std::string CaseDescriptor::str() const {
  std::string s = op;
  if (!s.empty()) s += ' ';
  s += geometry;
  s += " values=";
  s += case_values_name(values);
  s += " seed=";
  s += std::to_string(seed);
  return s;
}

OracleOptions CaseDescriptor::options(OracleOptions base) const {
  base.seed = seed;
  base.exact_inputs = values == CaseValues::exact;
  base.values = values == CaseValues::ties   ? Values::ties
                : values == CaseValues::wide ? Values::wide
                                             : Values::uniform;
  return base;
}

CaseDescriptor parse_descriptor(std::string_view line) {
  std::vector<std::string_view> tokens;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    std::size_t j = i;
    while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
    if (j > i) tokens.push_back(line.substr(i, j - i));
    i = j;
  }
  CaseDescriptor d;
  bool have_geometry = false;
  for (std::string_view t : tokens) {
    if (t.rfind("values=", 0) == 0) {
      const std::string_view v = t.substr(7);
      if (v == "exact") d.values = CaseValues::exact;
      else if (v == "uniform") d.values = CaseValues::uniform;
      else if (v == "ties") d.values = CaseValues::ties;
      else if (v == "wide") d.values = CaseValues::wide;
      else bad("values must be exact, uniform, ties or wide", line);
    } else if (t.rfind("seed=", 0) == 0) {
      d.seed = static_cast<std::uint64_t>(number(t.substr(5), line));
    } else if (!have_geometry && d.op.empty() && t.find('_') != std::string_view::npos) {
      d.op = std::string(t);  // every op name has an underscore, no geometry does
    } else if (!have_geometry) {
      d.geometry = std::string(t);
      have_geometry = true;
    } else {
      bad("unexpected token '" + std::string(t) + "'", line);
    }
  }
  if (!have_geometry) bad("no geometry", line);
  return d;
}

std::string geometry_of(const Conv2dProblem& p) {
  const Shape b{p.w.rank() >= 1 ? p.w[0] : 0};
  const Conv2dGeom g = make_conv2d_geom(p.x, p.w, p.bias ? &b : nullptr, p.params, "descriptor");
  return g.descriptor() + (p.bias ? "b1" : "b0");
}
std::string geometry_of(const Pool2dProblem& p) {
  return make_pool2d_geom(p.x, p.params, "descriptor").descriptor();
}
std::string geometry_of(const LinearProblem& p) {
  const Shape b{p.w.rank() >= 1 ? p.w[0] : 0};
  return make_linear_geom(p.x, p.w, p.bias ? &b : nullptr, "descriptor").descriptor();
}
std::string geometry_of(const Shape& s) {
  std::string out;
  for (index_t i = 0; i < s.rank(); ++i) {
    if (i) out += 'x';
    out += std::to_string(s[i]);
  }
  return out;
}
std::string geometry_of(const CrossEntropyProblem& p) { return geometry_of(Shape{p.n, p.c}); }

Conv2dProblem conv2d_problem(std::string_view text, Layout layout) {
  const auto m = keyed(text, {"mb", "ic", "ih", "iw", "oc", "kh", "kw", "sh", "sw", "ph", "pw",
                              "dh", "dw", "g", "b"});
  Conv2dProblem p;
  const index_t ic = need(m, "ic", text), ih = need(m, "ih", text), oc = need(m, "oc", text),
                kh = need(m, "kh", text), g = get(m, "g", 1);
  if (g <= 0) bad("g must be positive", text);
  const index_t sh = get(m, "sh", 1), ph = get(m, "ph", 0), dh = get(m, "dh", 1);
  p.x = Shape{get(m, "mb", 1), ic, ih, get(m, "iw", ih)};
  p.w = Shape{oc, ic / g, kh, get(m, "kw", kh)};
  p.params.stride = {sh, get(m, "sw", sh)};
  p.params.pad = {ph, get(m, "pw", ph)};
  p.params.dilation = {dh, get(m, "dw", dh)};
  p.params.groups = g;
  p.bias = get(m, "b", 0) != 0;
  p.layout = layout;
  const Shape b{oc};
  (void)make_conv2d_geom(p.x, p.w, p.bias ? &b : nullptr, p.params, "descriptor");
  return p;
}

Pool2dProblem pool2d_problem(std::string_view text, Layout layout) {
  const auto m = keyed(text, {"mb", "ic", "ih", "iw", "kh", "kw", "sh", "sw", "ph", "pw"});
  Pool2dProblem p;
  const index_t ih = need(m, "ih", text), kh = need(m, "kh", text), kw = get(m, "kw", kh);
  const index_t sh = get(m, "sh", kh), ph = get(m, "ph", 0);
  p.x = Shape{get(m, "mb", 1), need(m, "ic", text), ih, get(m, "iw", ih)};
  p.params.kernel = {kh, kw};
  p.params.stride = {sh, get(m, "sw", m.count("sh") ? sh : kw)};
  p.params.pad = {ph, get(m, "pw", ph)};
  p.layout = layout;
  (void)make_pool2d_geom(p.x, p.params, "descriptor");
  return p;
}

LinearProblem linear_problem(std::string_view text) {
  const auto m = keyed(text, {"mb", "ic", "oc", "b"});
  LinearProblem p;
  const index_t ic = need(m, "ic", text), oc = need(m, "oc", text);
  p.x = Shape{get(m, "mb", 1), ic};
  p.w = Shape{oc, ic};
  p.bias = get(m, "b", 0) != 0;
  const Shape b{oc};
  (void)make_linear_geom(p.x, p.w, p.bias ? &b : nullptr, "descriptor");
  return p;
}

Shape shape_problem(std::string_view text) {
  std::vector<index_t> dims;
  std::size_t i = 0;
  while (i <= text.size()) {
    std::size_t j = text.find('x', i);
    if (j == std::string_view::npos) j = text.size();
    const index_t d = number(text.substr(i, j - i), text);
    if (d <= 0) bad("every dimension must be positive", text);
    dims.push_back(d);
    i = j + 1;
  }
  return Shape(std::move(dims));
}

CrossEntropyProblem cross_entropy_problem(std::string_view text) {
  const Shape s = shape_problem(text);
  if (s.rank() != 2) bad("cross_entropy takes NxC", text);
  return {s[0], s[1]};
}

}  // namespace tapegrad::oracle
