// The failing elements of a report summarised by index pattern; see pattern.hpp.
#include "pattern.hpp"

#include <algorithm>
#include <cctype>
#include <numeric>

namespace tapegrad::oracle::driver {

namespace {

std::string join(const std::vector<index_t>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s;
}

bool contiguous(const std::vector<index_t>& v) {
  return !v.empty() && v.back() - v.front() + 1 == static_cast<index_t>(v.size());
}

// "only <a> ..." for the sorted, non-empty, proper subset v of [0, extent).
std::string describe(const std::string& a, const std::vector<index_t>& v, index_t extent) {
  const index_t lo = v.front(), hi = v.back(), n = static_cast<index_t>(v.size());
  if (n == 1) {
    if (lo == extent - 1) return "only the last " + a + " (" + a + " = " + std::to_string(lo) + ")";
    return "only " + a + " = " + std::to_string(lo);
  }
  if (contiguous(v) && lo == 1 && hi == extent - 1) return "only " + a + " > 0";
  if (contiguous(v) && lo == 0 && hi == extent - 2)
    return "only " + a + " < " + std::to_string(extent - 1) + " (never the last " + a + ")";
  if (contiguous(v)) return "only " + a + " in " + std::to_string(lo) + ".." + std::to_string(hi);
  const bool same_parity =
      std::all_of(v.begin(), v.end(), [&](index_t x) { return x % 2 == lo % 2; });
  std::string s = "only ";
  if (same_parity) s += lo % 2 ? "odd " : "even ";
  s += a;
  if (n <= 8) return s + " in {" + join(v) + "}";
  return s + " (" + std::to_string(n) + " of its " + std::to_string(extent) + " values)";
}

std::string count_of(index_t failing, index_t there) {
  return " (" + std::to_string(failing) + " of its " + std::to_string(there) +
         " elements fail)";
}

std::vector<index_t> present(const std::vector<index_t>& counts) {
  std::vector<index_t> v;
  for (std::size_t i = 0; i < counts.size(); ++i)
    if (counts[i]) v.push_back(static_cast<index_t>(i));
  return v;
}

}  // namespace

std::vector<PatternAxis> axes_of(const std::string& letters, index_t rank) {
  std::vector<PatternAxis> axes;
  std::string cur;
  const bool comma = letters.find(',') != std::string::npos;
  for (char ch : letters) {
    if (comma && ch == ',') {
      axes.push_back({cur});
      cur.clear();
    } else if (comma) {
      cur += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    } else if (std::isalpha(static_cast<unsigned char>(ch))) {
      axes.push_back({std::string(1, static_cast<char>(
                                         std::tolower(static_cast<unsigned char>(ch))))});
    }
  }
  if (comma) axes.push_back({cur});
  if (static_cast<index_t>(axes.size()) != rank) {  // PyTorch's letters by rank, else d0, d1 ...
    axes.clear();
    if (rank == 2) return {{"n"}, {"c"}};
    if (rank == 4) return {{"n"}, {"c"}, {"h"}, {"w"}};
    for (index_t i = 0; i < rank; ++i) {
      std::string name = "d";  // appended, not "d" + ...: GCC 12's -Wrestrict misfires on that
      name += std::to_string(i);
      axes.push_back({name});
    }
  }
  return axes;
}

PatternSpec to_channels_last(const PatternSpec& logical, const Shape& s) {
  PatternSpec out;
  if (logical.axes.size() == 4)
    out.axes = {logical.axes[0], logical.axes[2], logical.axes[3], logical.axes[1]};
  const index_t a = s[0], b = s[1], c = s[2], d = s[3];
  for (const PatternFeature& f : logical.features) {
    PatternFeature t{f.where, f.where_not, std::vector<bool>(f.has.size())};
    for (index_t i = 0; i < a; ++i)
      for (index_t j = 0; j < b; ++j)
        for (index_t k = 0; k < c; ++k)
          for (index_t l = 0; l < d; ++l)
            t.has[static_cast<std::size_t>(((i * c + k) * d + l) * b + j)] =
                f.has[static_cast<std::size_t>(((i * b + j) * c + k) * d + l)];
    out.features.push_back(std::move(t));
  }
  return out;
}

bool WindowAxis::window_touches_pad(index_t o) const {
  const index_t first = o * stride - pad, last = first + (taps - 1) * dilation;
  return first < 0 || last >= in;
}
bool WindowAxis::read_by_padded_window(index_t i) const {
  for (index_t o = 0; o < out; ++o)
    for (index_t t = 0; t < taps; ++t)
      if (o * stride - pad + t * dilation == i && window_touches_pad(o)) return true;
  return false;
}
bool WindowAxis::read_at_all(index_t i) const {
  for (index_t o = 0; o < out; ++o)
    for (index_t t = 0; t < taps; ++t)
      if (o * stride - pad + t * dilation == i) return true;
  return false;
}
bool WindowAxis::tap_reads_pad(index_t t) const {
  for (index_t o = 0; o < out; ++o) {
    const index_t pos = o * stride - pad + t * dilation;
    if (pos < 0 || pos >= in) return true;
  }
  return false;
}

namespace {
// One fact per position of an axis, computed once (the facts are O(out * taps) each).
template <class Fact>
std::vector<bool> along(index_t count, Fact fact) {
  std::vector<bool> v(static_cast<std::size_t>(count));
  for (index_t i = 0; i < count; ++i) v[static_cast<std::size_t>(i)] = fact(i);
  return v;
}
// planes copies of the (rows x cols) plane fact(r, c), row-major.
template <class Fact>
std::vector<bool> planes_of(index_t planes, index_t rows, index_t cols, Fact fact) {
  std::vector<bool> v;
  v.reserve(static_cast<std::size_t>(planes * rows * cols));
  for (index_t a = 0; a < planes; ++a)
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < cols; ++c) v.push_back(fact(static_cast<std::size_t>(r),
                                                          static_cast<std::size_t>(c)));
  return v;
}
}  // namespace

PatternFeature window_output_feature(index_t planes, const WindowAxis& h, const WindowAxis& w) {
  const auto th = along(h.out, [&](index_t o) { return h.window_touches_pad(o); });
  const auto tw = along(w.out, [&](index_t o) { return w.window_touches_pad(o); });
  return {"the window touches padding", "the window does not touch padding",
          planes_of(planes, h.out, w.out, [&](std::size_t p, std::size_t q) { return th[p] || tw[q]; })};
}
std::vector<PatternFeature> window_input_features(index_t planes, const WindowAxis& h,
                                                  const WindowAxis& w) {
  const auto ph = along(h.in, [&](index_t i) { return h.read_by_padded_window(i); });
  const auto pw = along(w.in, [&](index_t i) { return w.read_by_padded_window(i); });
  const auto rh = along(h.in, [&](index_t i) { return h.read_at_all(i); });
  const auto rw = along(w.in, [&](index_t i) { return w.read_at_all(i); });
  return {{"a window that touches padding reads it", "no window that touches padding reads it",
           planes_of(planes, h.in, w.in,
                     [&](std::size_t i, std::size_t j) {
                       return (ph[i] && rw[j]) || (rh[i] && pw[j]);
                     })},
          {"no window reads it (gradient 0)", "some window reads it",
           planes_of(planes, h.in, w.in,
                     [&](std::size_t i, std::size_t j) { return !(rh[i] && rw[j]); })}};
}
PatternFeature window_tap_feature(index_t planes, const WindowAxis& h, const WindowAxis& w) {
  const auto th = along(h.taps, [&](index_t t) { return h.tap_reads_pad(t); });
  const auto tw = along(w.taps, [&](index_t t) { return w.tap_reads_pad(t); });
  return {"the tap reads padding (for some output)", "the tap never reads padding",
          planes_of(planes, h.taps, w.taps, [&](std::size_t r, std::size_t s) { return th[r] || tw[s]; })};
}

std::vector<std::string> failure_pattern(const Shape& shape, const std::vector<bool>& fail,
                                         const PatternSpec& spec) {
  const index_t numel = shape.numel(), rank = shape.rank();
  const index_t failing = std::count(fail.begin(), fail.end(), true);
  if (failing == 0 || static_cast<index_t>(fail.size()) != numel) return {};
  if (failing == numel) return {"every element (" + std::to_string(numel) + " of " +
                                std::to_string(numel) + " fail)"};
  if (failing == 1) return {"one element only (the worst element above)"};
  std::vector<PatternAxis> axes = spec.axes;
  if (static_cast<index_t>(axes.size()) != rank) axes = axes_of("", rank);

  // Failures per value of each axis.
  std::vector<std::vector<index_t>> per(static_cast<std::size_t>(rank));
  for (index_t a = 0; a < rank; ++a) per[static_cast<std::size_t>(a)].assign(
      static_cast<std::size_t>(shape[a]), 0);
  for (index_t i = 0; i < numel; ++i) {
    if (!fail[static_cast<std::size_t>(i)]) continue;
    index_t rest = i;
    for (index_t a = rank - 1; a >= 0; --a) {
      ++per[static_cast<std::size_t>(a)][static_cast<std::size_t>(rest % shape[a])];
      rest /= shape[a];
    }
  }

  std::vector<std::string> lines;
  for (index_t a = 0; a < rank; ++a) {
    const index_t extent = shape[a];
    const std::string& name = axes[static_cast<std::size_t>(a)].name;
    const std::vector<index_t> v = present(per[static_cast<std::size_t>(a)]);
    if (extent <= 1 || static_cast<index_t>(v.size()) == extent) continue;
    const index_t slice = numel / extent;  // elements per value of this axis
    bool said = false;
    const index_t gs = axes[static_cast<std::size_t>(a)].group_size;
    if (gs > 0 && extent % gs == 0 && extent / gs > 1) {
      const index_t groups = extent / gs;
      std::vector<index_t> gc(static_cast<std::size_t>(groups), 0),
          ic(static_cast<std::size_t>(gs), 0);
      for (index_t x : v) {
        ++gc[static_cast<std::size_t>(x / gs)];
        ++ic[static_cast<std::size_t>(x % gs)];
      }
      const std::vector<index_t> gv = present(gc), iv = present(ic);
      const index_t ng = static_cast<index_t>(gv.size()), ni = static_cast<index_t>(iv.size());
      const index_t nv = static_cast<index_t>(v.size());
      if (ng < groups && nv == gs * ng) {  // whole groups fail, the others not at all
        std::string s = ng == 1 ? "only group " + std::to_string(gv[0])
                                : "only groups {" + join(gv) + "}";
        s += " of " + std::to_string(groups);
        if (ng == 1)
          s += " (" + name + " " + std::to_string(gv[0] * gs) + ".." +
               std::to_string(gv[0] * gs + gs - 1) + ")";
        lines.push_back(s + count_of(failing, slice * nv));
        said = true;
      } else if (ng > 1 && ni < gs && nv == ng * ni) {  // the same place in several groups
        const std::string in_group = name + " mod " + std::to_string(gs);
        std::string s = ni == 1 ? "only " + in_group + " = " + std::to_string(iv[0])
                                : "only " + in_group + " in {" + join(iv) + "}";
        s += " (the same channel";
        s += ni == 1 ? "" : "s";
        s += " of ";
        s += ng == groups ? "every group)" : "groups {" + join(gv) + "})";
        lines.push_back(s + count_of(failing, slice * nv));
        said = true;
      }
    }
    if (!said)
      lines.push_back(describe(name, v, extent) +
                      count_of(failing, slice * static_cast<index_t>(v.size())));
  }
  for (const PatternFeature& f : spec.features) {
    if (static_cast<index_t>(f.has.size()) != numel) continue;
    index_t with = 0, failing_with = 0;
    for (index_t i = 0; i < numel; ++i) {
      if (!f.has[static_cast<std::size_t>(i)]) continue;
      ++with;
      if (fail[static_cast<std::size_t>(i)]) ++failing_with;
    }
    if (with == 0 || with == numel) continue;
    if (failing_with == failing)
      lines.push_back("only where " + f.where + count_of(failing, with));
    else if (failing_with == 0)
      lines.push_back("only where " + f.where_not + count_of(failing, numel - with));
  }
  if (lines.empty()) lines.push_back("no index pattern: spread over the whole output");
  return lines;
}

void print_pattern(std::ostream& os, const std::vector<std::string>& lines) {
  for (std::size_t i = 0; i < lines.size(); ++i)
    os << (i ? "                   " : "  pattern          ") << lines[i] << "\n";
}

}  // namespace tapegrad::oracle::driver
