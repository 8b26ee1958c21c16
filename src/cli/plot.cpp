// Training plots with PLplot; see plot.hpp.
#include "plot.hpp"

#include <plplot/plplot.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "tapegrad/io/atomic_file.hpp"

namespace tapegrad::cli {

namespace {

// PLplot calls this on a fatal error before it exits the process (it cannot return an error):
// say so on one line. The outputs are temporaries until renamed, so no half-written plot stays.
int on_plplot_exit(PLCHAR_VECTOR message) {
  std::fprintf(stderr, "tapegrad: error: plot: %s\n", message ? message : "PLplot failed");
  return 0;
}
void on_plplot_abort(PLCHAR_VECTOR) {}  // non-fatal complaints: the plot is validated first

// Colours of the series (Tableau's first five), after black for axes and labels.
constexpr int palette[][3] = {{31, 119, 180}, {214, 39, 40}, {44, 160, 44}, {255, 127, 14},
                              {148, 103, 189}};

void render(const char* device, const std::string& file, const Plot& p, double x0, double x1,
            double y0, double y1) {
  plsexit(on_plplot_exit);
  plsabort(on_plplot_abort);
  plsdev(device);
  plsfnam(file.c_str());
  plspage(0, 0, 900, 560, 0, 0);
  plscolbg(255, 255, 255);     // white background
  plscol0(0, 255, 255, 255);
  plscol0(1, 0, 0, 0);         // black axes and text
  for (int i = 0; i < 5; ++i) plscol0(2 + i, palette[i][0], palette[i][1], palette[i][2]);
  plinit();
  plcol0(1);
  plenv(x0, x1, y0, y1, 0, p.log_y ? 20 : 2);  // 2: grid; 20: log y
  pllab(p.xlabel.c_str(), p.ylabel.c_str(), p.title.c_str());
  std::vector<PLINT> opt, colours, styles, symbol_colours, symbol_numbers;
  std::vector<PLFLT> widths, scales;
  std::vector<const char*> texts, symbols;
  for (std::size_t s = 0; s < p.series.size(); ++s) {
    const PlotSeries& ser = p.series[s];
    const PLINT colour = 2 + static_cast<PLINT>(s % 5);
    std::vector<PLFLT> xs, ys;
    for (std::size_t i = 0; i < ser.x.size(); ++i) {
      const double y = p.log_y ? std::log10(ser.y[i]) : ser.y[i];
      if (std::isfinite(ser.x[i]) && std::isfinite(y)) xs.push_back(ser.x[i]), ys.push_back(y);
    }
    plcol0(colour);
    plwidth(2);
    if (ser.points)
      plstring(static_cast<PLINT>(xs.size()), xs.data(), ys.data(), "#(728)");
    else
      plline(static_cast<PLINT>(xs.size()), xs.data(), ys.data());
    opt.push_back(ser.points ? PL_LEGEND_SYMBOL : PL_LEGEND_LINE);
    colours.push_back(colour);
    styles.push_back(1);
    widths.push_back(2);
    symbol_colours.push_back(colour);
    symbol_numbers.push_back(1);
    scales.push_back(1);
    texts.push_back(ser.label.c_str());
    symbols.push_back("#(728)");
  }
  plwidth(1);
  PLFLT lw = 0, lh = 0;
  std::vector<PLINT> text_colours(p.series.size(), 1), box_colours(p.series.size(), 0),
      box_patterns(p.series.size(), 0);
  std::vector<PLFLT> box_scales(p.series.size(), 1), box_widths(p.series.size(), 1);
  pllegend(&lw, &lh, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, PL_POSITION_TOP | PL_POSITION_RIGHT,
           0.02, 0.02, 0.1, 0, 1, 1, static_cast<PLINT>(p.series.size()), 1,
           static_cast<PLINT>(p.series.size()), opt.data(), 1.0, 1.0, 2.0, 0.0, text_colours.data(), texts.data(), box_colours.data(),
           box_patterns.data(), box_scales.data(), box_widths.data(), colours.data(),
           styles.data(), widths.data(), symbol_colours.data(), scales.data(),
           symbol_numbers.data(), symbols.data());
  plend();
}

}  // namespace

std::vector<std::filesystem::path> write_plot(const std::filesystem::path& stem, const Plot& p) {
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const PlotSeries& s : p.series)
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      const double y = p.log_y ? std::log10(s.y[i]) : s.y[i];
      if (!std::isfinite(s.x[i]) || !std::isfinite(y)) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  if (!(x0 <= x1)) throw std::invalid_argument("plot " + stem.string() + ": no finite point to draw");
  if (x1 == x0) x0 -= 0.5, x1 += 0.5;
  if (p.log_y) {
    y0 = std::floor(y0), y1 = std::ceil(y1);
    if (y1 == y0) y1 += 1;
  } else {
    const double pad = y1 > y0 ? 0.05 * (y1 - y0) : 0.5;
    y0 -= pad, y1 += pad;
  }
  std::vector<std::filesystem::path> out;
  for (const auto& [device, ext] : {std::pair{"svg", ".svg"}, std::pair{"pngcairo", ".png"}}) {
    std::filesystem::path dest = stem;
    dest += ext;
    const auto tmp = io::detail::temp_path_for(dest);
    render(device, tmp.string(), p, x0, x1, y0, y1);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(tmp, ec) || std::filesystem::file_size(tmp, ec) == 0) {
      std::filesystem::remove(tmp, ec);
      throw std::runtime_error("cannot write " + dest.string() + ": PLplot wrote nothing");
    }
    io::detail::rename_into_place(tmp, dest);
    out.push_back(dest);
  }
  return out;
}

}  // namespace tapegrad::cli
