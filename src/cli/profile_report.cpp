// Profile tables; see profile_report.hpp.
#include "profile_report.hpp"

#include <cstdarg>
#include <cstdio>

namespace tapegrad::cli {

namespace {
std::string row(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string row(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}
}  // namespace

std::string profile_table(const profile::Summary& s, const ProfileContext& c) {
  const double n = s.steps > 0 ? static_cast<double>(s.steps) : 1;
  const double step_ms = s.step_s * 1e3 / n;
  std::string t = row("profile: %lld steps of %s, %d thread%s: %.3f ms per step; peak %.1f GFLOP/s "
                      "(%d core%s, measured)\n",
                      static_cast<long long>(s.steps), c.title.c_str(), c.threads,
                      c.threads == 1 ? "" : "s", step_ms, c.peak_gflops, c.threads,
                      c.threads == 1 ? "" : "s");
  t += row("%-16s %8s %12s %12s %8s %9s %7s\n", "op", "calls", "fwd ms/step", "bwd ms/step",
           "share", "GFLOP/s", "% peak");
  for (const auto& op : s.ops) {
    const double share = s.step_s > 0 ? 100 * op.seconds() / s.step_s : 0;
    if (op.flops() > 0) {
      const double gf = op.seconds() > 0 ? op.flops() / op.seconds() * 1e-9 : 0;
      t += row("%-16s %8lld %12.3f %12.3f %7.1f%% %9.1f %6.1f%%\n", op.name.c_str(),
               static_cast<long long>(op.calls), op.forward_s * 1e3 / n, op.backward_s * 1e3 / n,
               share, gf, c.peak_gflops > 0 ? 100 * gf / c.peak_gflops : 0);
    } else {
      t += row("%-16s %8lld %12.3f %12.3f %7.1f%% %9s %7s\n", op.name.c_str(),
               static_cast<long long>(op.calls), op.forward_s * 1e3 / n, op.backward_s * 1e3 / n,
               share, "-", "-");
    }
  }
  for (const auto& p : s.parts) {
    const std::string name = p.name + " (" + profile::phase_name(p.phase) + ")";
    t += row("%-16s %8lld %12.3f %12s %7.1f%% %9s %7s\n", name.c_str(),
             static_cast<long long>(p.calls), p.seconds * 1e3 / n, "",
             s.step_s > 0 ? 100 * p.seconds / s.step_s : 0, "-", "-");
  }
  if (s.shards_wait_s > 0)
    t += row("%-16s %8s %12.3f %12s %7.1f%%   (threads of the shards side by side waiting for "
             "each other)\n", "shards wait", "", s.shards_wait_s * 1e3 / n, "",
             s.step_s > 0 ? 100 * s.shards_wait_s / s.step_s : 0);
  t += row("%-16s %8s %12.3f %12s %7.1f%%   (tape bookkeeping between spans)\n", "untracked", "",
           s.untracked_s * 1e3 / n, "", s.step_s > 0 ? 100 * s.untracked_s / s.step_s : 0);
  return t;
}

nlohmann::json profile_json(const profile::Summary& s, const ProfileContext& c) {
  using nlohmann::json;
  const double n = s.steps > 0 ? static_cast<double>(s.steps) : 1;
  json ops = json::array();
  for (const auto& op : s.ops) {
    json o{{"name", op.name},
           {"calls", op.calls},
           {"forward_ms_per_step", op.forward_s * 1e3 / n},
           {"backward_ms_per_step", op.backward_s * 1e3 / n},
           {"share", s.step_s > 0 ? op.seconds() / s.step_s : 0}};
    if (op.flops() > 0) {
      const double gf = op.seconds() > 0 ? op.flops() / op.seconds() * 1e-9 : 0;
      o["gflops"] = gf;
      o["forward_gflop_per_step"] = op.forward_flops * 1e-9 / n;
      o["backward_gflop_per_step"] = op.backward_flops * 1e-9 / n;
      o["fraction_of_peak"] = c.peak_gflops > 0 ? gf / c.peak_gflops : 0;
    }
    ops.push_back(o);
  }
  json parts = json::array();
  for (const auto& p : s.parts)
    parts.push_back({{"name", p.name}, {"phase", profile::phase_name(p.phase)}, {"calls", p.calls},
                     {"ms_per_step", p.seconds * 1e3 / n},
                     {"share", s.step_s > 0 ? p.seconds / s.step_s : 0}});
  return json{{"title", c.title},
              {"steps", s.steps},
              {"threads", c.threads},
              {"ms_per_step", s.step_s * 1e3 / n},
              {"peak_gflops", c.peak_gflops},
              {"ops", ops},
              {"parts", parts},
              {"shards_wait_ms_per_step", s.shards_wait_s * 1e3 / n},
              {"shards_wait_share", s.step_s > 0 ? s.shards_wait_s / s.step_s : 0},
              {"untracked_ms_per_step", s.untracked_s * 1e3 / n},
              {"untracked_share", s.step_s > 0 ? s.untracked_s / s.step_s : 0},
              {"evaluation_seconds", s.eval_s}};
}

}  // namespace tapegrad::cli
