// Chrome trace files; see include/tapegrad/io/chrome_trace.hpp.
#include "tapegrad/io/chrome_trace.hpp"

#include <nlohmann/json.hpp>
#include <set>

#include "tapegrad/io/atomic_file.hpp"

namespace tapegrad::io {

std::string chrome_trace_json(const std::vector<profile::Span>& spans, const std::string& process,
                              int pid) {
  using nlohmann::json;
  json events = json::array();
  events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", pid}, {"tid", 0},
                    {"args", {{"name", process}}}});
  std::set<int> threads;
  for (const auto& s : spans) threads.insert(s.thread);
  for (int t : threads)
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", pid}, {"tid", t},
                      {"args", {{"name", t == 0 ? std::string("main") : "worker " + std::to_string(t)}}}});
  for (const auto& s : spans) {
    json e{{"name", s.name}, {"pid", pid}, {"tid", s.thread}, {"ts", static_cast<double>(s.t0) * 1e-3}};
    json args = json::object();
    if (s.step >= 0) args["step"] = s.step;
    if (s.t1 < 0) {
      e["ph"] = "i";
      e["s"] = "g";
      e["cat"] = "marker";
      if (!s.args.empty()) args["value"] = s.args;
    } else {
      e["ph"] = "X";
      e["cat"] = profile::phase_name(s.phase);
      e["dur"] = static_cast<double>(s.t1 - s.t0) * 1e-3;
      if (s.flops > 0) args["gflop"] = s.flops * 1e-9;
      if (!s.args.empty()) args["geometry"] = s.args;
    }
    if (!args.empty()) e["args"] = args;
    events.push_back(std::move(e));
  }
  return json{{"displayTimeUnit", "ms"}, {"traceEvents", events}}.dump() + "\n";
}

std::string merge_chrome_traces(const std::vector<std::string>& traces) {
  using nlohmann::json;
  json events = json::array();
  for (const auto& t : traces) {
    if (t.empty()) continue;
    json one = json::parse(t);  // kept whole: its events are moved out of it
    for (auto& e : one.at("traceEvents")) events.push_back(std::move(e));
  }
  return json{{"displayTimeUnit", "ms"}, {"traceEvents", events}}.dump() + "\n";
}

void write_chrome_trace(const std::filesystem::path& path, const std::vector<profile::Span>& spans,
                        const std::string& process) {
  write_file_atomic(path, chrome_trace_json(spans, process));
}

}  // namespace tapegrad::io
