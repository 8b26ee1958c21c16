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
// dur in microseconds), markers instant events ("i"). Spans of one thread nest. An MPI job's
// trace has one process per rank (pid = rank), each with its threads' tracks: every rank
// renders its own (pid = its rank) and rank 0 merges them.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "tapegrad/tape/profile.hpp"

namespace tapegrad::io {

std::string chrome_trace_json(const std::vector<profile::Span>& spans, const std::string& process,
                              int pid = 1);
// One trace of the events of several (from chrome_trace_json, each with its own pid).
std::string merge_chrome_traces(const std::vector<std::string>& traces);
// Written atomically.
void write_chrome_trace(const std::filesystem::path& path, const std::vector<profile::Span>& spans,
                        const std::string& process);

}  // namespace tapegrad::io
