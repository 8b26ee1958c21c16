// Training progress on the console: a bar redrawn in place when stdout is a terminal
//   epoch 2/3 [#########.........] step 1412/2814 loss 0.3512 4210 img/s ETA 12s
// and plain lines at a fixed interval of steps otherwise (CI logs), so a log never fills with
// carriage returns. Other output goes through line(), which clears the bar first.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace tapegrad::cli {

class Progress {
 public:
  enum class Mode { bar, lines, none };

  // mode "auto": bar when stdout is a terminal, lines otherwise.
  static Mode parse_mode(const std::string& s, bool stdout_is_tty);

  Progress(Mode mode, std::int64_t total_steps, std::int64_t steps_per_epoch,
           std::int64_t total_epochs, std::int64_t line_every);

  // After step `step` (1-based) of epoch `epoch` (0-based); loss of the latest logged interval.
  void update(std::int64_t step, std::int64_t epoch, double loss, double images_per_s,
              double seconds_left);
  void line(const std::string& text);  // a line of its own (clears the bar)
  void finish();                       // ends the bar's line

 private:
  std::string status(std::int64_t step, std::int64_t epoch, double loss, double ips,
                     double left) const;
  Mode mode_;
  std::int64_t total_, per_epoch_, epochs_, every_;
  bool bar_shown_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace tapegrad::cli
