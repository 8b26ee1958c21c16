// The search loop (search_driver.hpp) and the search result's report (oracle/search.hpp).
#include "search_driver.hpp"

#include <rapidcheck.h>

#include <fstream>
#include <map>
#include <optional>
#include <stdexcept>
#include <typeinfo>

namespace tapegrad::oracle {

namespace search_driver {

void rethrow_as_kernel_threw() {
  try {
    throw;
  } catch (const KernelThrew&) {
    throw;
  } catch (const std::exception& e) {
    throw KernelThrew{std::string(e.what()) + " (" + typeid(e).name() + ")"};
  } catch (...) {
    throw KernelThrew{"an exception that is not a std::exception"};
  }
}

namespace {

// Listens to RapidCheck quietly, counting the accepted shrinks.
struct QuietListener : rc::detail::TestListener {
  int shrinks = 0;
  void onTestCaseFinished(const rc::detail::CaseDescription&) override {}
  void onShrinkTried(const rc::detail::CaseDescription&, bool accepted) override {
    if (accepted) ++shrinks;
  }
  void onTestFinished(const rc::detail::TestMetadata&, const rc::detail::TestResult&) override {}
};

// One case: the check, the callback's exceptions caught. nullopt: it passed.
std::optional<SearchFailure> run_one(const SearchOp& op, const CaseDescriptor& d,
                                     const SearchOptions& opt) {
  SearchFailure f;
  f.descriptor = d;
  try {
    OracleOptions base = opt.check;
    base.grad_mode = opt.grad_mode;
    OracleReport r = op.run(d.geometry, d.options(base));
    if (r.passed()) return std::nullopt;
    f.report = std::move(r);
  } catch (const KernelThrew& e) {
    f.exception = "the kernel threw: " + e.what;
    f.report.op = op.op;
  }
  return f;
}

void check_values(const SearchOp& op, const std::vector<CaseValues>& values) {
  for (CaseValues v : values)
    if (v == CaseValues::exact && !op.exact_inputs)
      throw std::invalid_argument("search_" + op.op +
                                  ": values=exact (exact-input mode) is for conv2d and linear");
}

CaseDescriptor parse_for(const SearchOp& op, std::string_view line, const std::string& where) {
  try {
    CaseDescriptor d = parse_descriptor(line);
    if (!d.op.empty() && d.op != op.op)
      throw std::invalid_argument("the line is for " + d.op + ", this search is " + op.op);
    d.op = op.op;
    check_values(op, {d.values});
    return d;
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("search_" + op.op + ": " + where + ": " + e.what());
  }
}

// The weighted value mix, first the value shrinking goes to: exact inputs in half the cases of
// the ops that have them, the rest alike.
std::vector<CaseValues> value_mix(const SearchOp& op, const SearchOptions& opt) {
  if (!opt.values.empty()) return opt.values;
  std::vector<CaseValues> mix;
  if (op.exact_inputs) mix = {CaseValues::exact, CaseValues::exact, CaseValues::exact};
  for (CaseValues v : {CaseValues::uniform, CaseValues::ties, CaseValues::wide}) mix.push_back(v);
  return mix;
}

}  // namespace

SearchResult run_search(const SearchOp& op, const SearchOptions& opt) {
  if (opt.cases < 1) throw std::invalid_argument("search_" + op.op + ": cases must be >= 1");
  check_values(op, opt.values);
  SearchResult r;
  r.op = op.op;
  r.dtype = op.dtype;
  r.seed = opt.seed;
  r.layout = opt.layout;
  r.grad_mode = opt.grad_mode;
  std::map<std::string, int> mix;
  auto tally = [&](const CaseDescriptor& d) {
    ++mix[std::string("values ") + case_values_name(d.values)];
    for (const std::string& t : op.tags(d.geometry)) ++mix[t];
  };

  if (!opt.replay.empty() || !opt.batch_file.empty()) {
    std::vector<CaseDescriptor> cases;
    if (!opt.replay.empty()) {
      r.source = "replay";
      cases.push_back(parse_for(op, opt.replay, "replay"));
    } else {
      r.source = opt.batch_file;
      std::ifstream in(opt.batch_file);
      if (!in)
        throw std::invalid_argument("search_" + op.op + ": cannot read the batch file " +
                                    opt.batch_file);
      std::string line;
      for (int no = 1; std::getline(in, line); ++no) {
        const std::size_t hash = line.find('#');
        if (hash != std::string::npos) line.resize(hash);
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        cases.push_back(parse_for(op, line, opt.batch_file + " line " + std::to_string(no)));
      }
    }
    for (const CaseDescriptor& d : cases) {
      ++r.cases;
      std::optional<SearchFailure> f;
      try {
        f = run_one(op, d, opt);
      } catch (const std::invalid_argument& e) {  // the geometry itself is bad
        throw std::invalid_argument("search_" + op.op + ": " + r.source + ": '" + d.geometry +
                                    "': " + e.what());
      }
      if (f) {
        ++r.failed_cases;
        if (!r.failure) r.failure = std::move(f);
      } else {
        tally(d);
      }
    }
  } else {
    r.source = "random";
    const std::vector<CaseValues> values = value_mix(op, opt);
    std::optional<SearchFailure> last;
    bool failed = false;
    const auto property = [&]() -> bool {
      CaseDescriptor d;
      d.op = op.op;
      d.values = values[*rc::gen::resize(  // uniform over the mix, shrinking to values[0]
          kFullSize, rc::gen::inRange<std::size_t>(0, values.size()))];
      d.geometry = op.draw(opt);
      d.seed = *rc::gen::resize(kFullSize, rc::gen::inRange<std::uint64_t>(1, 1u << 20));
      std::optional<SearchFailure> f;
      try {
        f = run_one(op, d, opt);
      } catch (const std::exception& e) {  // the oracle refused a drawn case: say so
        f = SearchFailure{d, {}, std::string("the oracle rejected the case: ") + e.what(), 0};
        f->report.op = op.op;
      }
      if (f) {
        last = std::move(f);  // the last failing case RapidCheck tries is the shrunk one
        failed = true;
        return false;
      }
      if (!failed) tally(d);
      return true;
    };
    rc::detail::TestParams params;
    params.seed = opt.seed;
    params.maxSuccess = opt.cases;
    params.disableShrinking = !opt.shrink;
    rc::detail::TestMetadata meta;
    meta.id = meta.description = "search_" + op.op;
    QuietListener listener;
    // An empty reproduce map: RapidCheck's own configuration (RC_PARAMS) stays out of it.
    const rc::detail::TestResult result = rc::detail::checkProperty(
        rc::detail::toProperty(property), meta, params, listener, {});
    rc::detail::FailureResult fr;
    rc::detail::SuccessResult sr;
    rc::detail::GaveUpResult gr;
    rc::detail::Error er;
    if (result.match(fr)) {
      r.cases = fr.numSuccess + 1;
      r.failed_cases = 1;
      r.failure = last ? std::move(last)
                       : SearchFailure{{op.op, "", CaseValues::uniform, 0}, {}, fr.description, 0};
      r.failure->shrinks = listener.shrinks;
    } else if (result.match(sr)) {
      r.cases = sr.numSuccess;
    } else {
      const std::string why = result.match(gr) ? gr.description
                              : result.match(er) ? er.description
                                                 : std::string("unknown RapidCheck result");
      r.failed_cases = 1;
      r.failure = SearchFailure{{op.op, "", CaseValues::uniform, 0}, {}, "RapidCheck: " + why, 0};
    }
  }
  for (auto& [k, v] : mix) r.mix.emplace_back(k, v);
  return r;
}

}  // namespace search_driver

void SearchResult::print(std::ostream& os) const {
  os << "search: " << op << ", " << dtype << ", layout " << layout_name(layout) << ", GradMode::"
     << grad_mode_name(grad_mode) << ", ";
  if (source == "random")
    os << "random cases, seed " << seed;
  else if (source == "replay")
    os << "replay";
  else
    os << "batch file " << source;
  if (passed()) {
    os << ": " << cases << " case" << (cases == 1 ? "" : "s") << " PASS\n";
    if (!mix.empty()) {
      os << "  case mix        ";
      for (std::size_t i = 0; i < mix.size(); ++i)
        os << (i ? ", " : "") << mix[i].first << " " << mix[i].second;
      os << "\n";
    }
    os << "PASS\n";
    return;
  }
  const SearchFailure& f = *failure;
  os << ": FAIL";
  if (source == "random") {
    os << " at case " << cases << ", shrunk in " << f.shrinks << " step"
       << (f.shrinks == 1 ? "" : "s") << " to:\n";
  } else if (failed_cases > 1 || cases > 1) {
    os << ", " << failed_cases << " of " << cases << " cases fail; the first:\n";
  } else {
    os << ":\n";
  }
  os << f.descriptor.str() << "\n";
  os << "  replay           SearchOptions::replay = the line above";
  if (source == "random") os << " (the whole search: SearchOptions::seed = " << seed << ")";
  os << "\n";
  if (!f.exception.empty()) {
    os << "  " << f.exception << "\n";
    os << "FAIL\n";
    return;
  }
  f.report.print(os);
}

std::ostream& operator<<(std::ostream& os, const SearchResult& r) {
  r.print(os);
  return os;
}

}  // namespace tapegrad::oracle
