// Line plots of training metrics, drawn with PLplot (Debian's libplplot-dev) and written as
// SVG (PLplot's svg device) and PNG (its cairo device, pngcairo): black on white, one colour
// per series, a legend. Each file is rendered to a temporary name and renamed into place.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace tapegrad::cli {

struct PlotSeries {
  std::string label;
  std::vector<double> x, y;
  bool points = false;  // markers (few points, e.g. per-epoch test values) instead of a line
};

struct Plot {
  std::string title, xlabel, ylabel;
  std::vector<PlotSeries> series;
  bool log_y = false;  // y on a log scale (every y must then be positive)
};

// Writes stem.svg and stem.png; returns the two paths. Throws std::invalid_argument for a plot
// with no finite point, std::runtime_error when a file cannot be written.
std::vector<std::filesystem::path> write_plot(const std::filesystem::path& stem, const Plot& plot);

}  // namespace tapegrad::cli
