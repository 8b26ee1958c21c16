// Training progress; see progress.hpp.
#include "progress.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace tapegrad::cli {

Progress::Mode Progress::parse_mode(const std::string& s, bool tty) {
  if (s == "auto") return tty ? Mode::bar : Mode::lines;
  if (s == "bar") return Mode::bar;
  if (s == "lines") return Mode::lines;
  if (s == "none") return Mode::none;
  throw std::invalid_argument("--progress must be auto, bar, lines or none");
}

Progress::Progress(Mode mode, std::int64_t total, std::int64_t per_epoch, std::int64_t epochs,
                   std::int64_t every)
    : mode_(mode), total_(std::max<std::int64_t>(total, 1)), per_epoch_(per_epoch),
      epochs_(epochs), every_(std::max<std::int64_t>(every, 1)) {}

std::string Progress::status(std::int64_t step, std::int64_t epoch, double loss, double ips,
                             double left) const {
  char buf[256];
  std::string s;
  if (per_epoch_ > 1) {  // full-batch training: every step is an epoch, so show steps only
    const long long e = std::min<std::int64_t>(epoch + 1, std::max<std::int64_t>(epochs_, 1));
    std::snprintf(buf, sizeof buf, "epoch %lld/%lld ", e,
                  static_cast<long long>(std::max<std::int64_t>(epochs_, 1)));
    s = buf;
  }
  std::snprintf(buf, sizeof buf, "step %lld/%lld loss %.6g %.0f img/s ETA %.0fs",
                static_cast<long long>(step), static_cast<long long>(total_), loss, ips,
                std::max(0.0, left));
  return s + buf;
}

void Progress::update(std::int64_t step, std::int64_t epoch, double loss, double ips, double left) {
  if (mode_ == Mode::none) return;
  if (mode_ == Mode::lines) {
    if (step % every_ == 0 || step == total_) std::printf("%s\n", status(step, epoch, loss, ips, left).c_str()), std::fflush(stdout);
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (step != total_ && bar_shown_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  constexpr int width = 24;
  const int filled = static_cast<int>(width * static_cast<double>(step) / static_cast<double>(total_));
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(width, '.');
  std::printf("\r[%s] %s\033[K", bar.c_str(), status(step, epoch, loss, ips, left).c_str());
  std::fflush(stdout);
  bar_shown_ = true;
}

void Progress::line(const std::string& text) {
  if (bar_shown_) std::printf("\r\033[K");
  std::printf("%s\n", text.c_str());
  std::fflush(stdout);
  bar_shown_ = false;
}

void Progress::finish() {
  if (bar_shown_) std::printf("\n");
  std::fflush(stdout);
  bar_shown_ = false;
}

}  // namespace tapegrad::cli
