// The Chrome trace event format (the JSON that chrome://tracing, Perfetto and speedscope load):
//
//   {"displayTimeUnit": "ms", "traceEvents": [
//     {"name": "process_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": "tapegrad train"}},
//     {"name": "thread_name",  "ph": "M", "pid": 1, "tid": 0, "args": {"name": "main"}},
//     {"name": "conv2d", "cat": "forward", "ph": "X", "ts": 12.5, "dur": 310.2, "pid": 1,
//      "tid": 0, "args": {"step": 3, "gflop": 0.0151, "geometry": "x[64,1,28,28] w[...] ..."}},
//     {"name": "epoch", "cat": "marker", "ph": "i", "s": "g", "ts": 9.0e6, "pid": 1, "tid": 0,
//      "args": {"value": "2"}}, ...]}
//
// One track (tid) per thread of the profile; profiler spans become complete events ("X", ts and
// dur in microseconds), markers instant events ("i"). Spans of one thread nest.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "tapegrad/tape/profile.hpp"

namespace tapegrad::io {

std::string chrome_trace_json(const std::vector<profile::Span>& spans, const std::string& process);
// Written atomically.
void write_chrome_trace(const std::filesystem::path& path, const std::vector<profile::Span>& spans,
                        const std::string& process);

}  // namespace tapegrad::io
