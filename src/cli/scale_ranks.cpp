// The ranks x threads sweep; see scale_ranks.hpp.
#include "scale_ranks.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common.hpp"
#include "tapegrad/dist/mpi.hpp"
#include "tapegrad/io/atomic_file.hpp"
#include "tapegrad/io/npz.hpp"

extern char** environ;

namespace tapegrad::cli {

namespace {

namespace fs = std::filesystem;

// Rank 0's step, split as in scale_ranks.hpp (ms per step).
struct StepSplit {
  double step = 0, compute = 0, wait = 0, comm = 0, sum = 0;
};

std::string self_exe() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw BadInput("scale --ranks: cannot find this program's path (/proc/self/exe: " + ec.message() + ")");
  return p.string();
}

// The environment of the children: this one, plus what Open MPI needs to run several ranks on
// one machine (oversubscribed when P x T exceeds the cores; as root when CI runs so), unless
// the caller set those variables already. Ranks waiting in MPI yield the core: Open MPI spins
// otherwise, taking it from the ranks still computing.
// With P x T above the cores (oversubscribed), the children also get OMP_WAIT_POLICY=passive
// unless it is set: the ranks cannot see each other's threads, and libgomp's spinning wait then
// takes the cores from the ranks still computing (4 ranks x 2 threads on 2 cores: 232 ms per
// lenet5 step spinning, 3.7 ms passive).
std::vector<std::string> child_environment(bool oversubscribed) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  auto add = [&](const char* name, const char* value) {
    if (!std::getenv(name)) env.push_back(std::string(name) + "=" + value);
  };
  if (::geteuid() == 0) {
    add("OMPI_ALLOW_RUN_AS_ROOT", "1");
    add("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
  }
  add("OMPI_MCA_rmaps_base_oversubscribe", "1");
  add("OMPI_MCA_mpi_yield_when_idle", "1");
  if (oversubscribed) add("OMP_WAIT_POLICY", "passive");
  return env;
}

// Runs argv with stdout and stderr into `log`; returns the exit status (or throws when it
// cannot start or dies by a signal).
int run_child(const std::vector<std::string>& argv, const std::vector<std::string>& env,
              const fs::path& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> av, ev;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  for (const auto& e : env) ev.push_back(const_cast<char*>(e.c_str()));
  ev.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, av[0], &fa, nullptr, av.data(), ev.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    throw BadInput("scale --ranks: cannot start " + quote(argv[0]) + " (" + std::strerror(rc) +
                   (argv[0].find('/') == std::string::npos ? "; is Open MPI's mpirun installed? --mpiexec names another launcher)" : ")"));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw BadInput(std::string("scale --ranks: waitpid: ") + std::strerror(errno));
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

std::string last_line(const fs::path& log) {
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

StepSplit split_of(const fs::path& out) {
  const fs::path path = out / "profile.json";
  std::ifstream in(path);
  if (!in) throw BadInput("scale --ranks: the run wrote no " + quote(path.string()));
  const nlohmann::json prof = nlohmann::json::parse(in, nullptr, false);
  if (prof.is_discarded() || !prof.contains("ms_per_step"))
    throw BadInput("scale --ranks: " + quote(path.string()) + " is not a tapegrad profile");
  std::map<std::string, double> parts;
  for (const auto& q : prof["parts"]) parts[q["name"].get<std::string>()] += q["ms_per_step"].get<double>();
  StepSplit s;
  s.step = prof["ms_per_step"].get<double>();
  s.wait = parts["wait"], s.comm = parts["allgather"], s.sum = parts["combine"];
  s.compute = s.step - s.wait - s.comm - s.sum;
  return s;
}

// The final weights of a run, as the arrays' raw .npy bytes.
std::map<std::string, std::string> weights_of(const fs::path& out) {
  return io::read_npz(out / "weights.npz").raw;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int run_rank_sweep(const RankSweep& s) {
  if (!dist::mpi_built())
    throw BadInput("scale --ranks: this tapegrad was built without MPI (configure with "
                   "-DTAPEGRAD_MPI=ON after apt-get install libopenmpi-dev openmpi-bin)");
  if (dist::launched_size() != 0)
    throw BadInput("scale --ranks starts the ranks itself: run it without mpirun");
  for (int p : s.ranks)
    if (p > s.shards)
      throw BadInput("scale --ranks: " + std::to_string(p) + " ranks but --shards " +
                     std::to_string(s.shards) + " (every rank computes whole shards; give --shards " +
                     std::to_string(p) + " or more)");
  const std::string exe = self_exe();
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::vector<std::string> env_fit = child_environment(false), env_over = child_environment(true);
  bool any_over = false;
  const fs::path out = s.out.empty() ? fs::path("out") / ("scale-ranks-" + fs::path(s.model).stem().string()) : fs::path(s.out);
  std::error_code ec;
  fs::create_directories(out / "runs", ec);
  if (ec) throw BadInput("--out " + quote(out.string()) + ": cannot create (" + ec.message() + ")");

  const std::vector<std::string> train{
      "train", "--model", s.model, "--data", s.data,
      "--train-size", std::to_string(s.batch * s.steps), "--test-size", "10",
      "--iterations", std::to_string(s.steps), "--batch", std::to_string(s.batch),
      "--shards", std::to_string(s.shards), "--profile", "--trace-steps", "0",
      "--progress", "none"};
  auto train_argv = [&](std::vector<std::string> argv, int threads, const fs::path& dir) {
    argv.insert(argv.end(), train.begin(), train.end());
    for (const std::string& a : {std::string("--threads"), std::to_string(threads),
                                 std::string("--out"), dir.string()})
      argv.push_back(a);
    return argv;
  };
  struct Config {
    int ranks, threads;
    std::vector<StepSplit> mpi, one;
  };
  std::vector<Config> configs;
  for (int p : s.ranks)
    for (int t : s.threads) configs.push_back({p, t, {}, {}});

  std::printf("scale: %s, batch %lld in %lld shards, %lld steps, median of %lld interleaved "
              "repetitions; rank 0's ms per step (%s -np P, and one process without MPI with P x T threads)\n\n",
              s.model.c_str(), s.batch, s.shards, s.steps, s.reps, s.mpiexec.c_str());
  std::fflush(stdout);
  std::optional<std::map<std::string, std::string>> first;
  bool identical = true;
  std::string differs;
  auto run_one = [&](const std::vector<std::string>& argv, const fs::path& dir, int threads_in_all) {
    const fs::path log = dir.string() + ".log";
    const bool over = threads_in_all > cores && !std::getenv("OMP_WAIT_POLICY");
    any_over = any_over || over;
    const int rc = run_child(argv, over ? env_over : env_fit, log);
    if (rc != 0)
      throw BadInput("scale --ranks: " + quote(argv[0]) + " ... exited with " + std::to_string(rc) +
                     ": " + quote(last_line(log)) + " (log: " + log.string() + ")");
    const auto w = weights_of(dir);
    if (!first) first = w;
    else if (w != *first && identical) identical = false, differs = dir.string();
    return split_of(dir);
  };
  for (long long rep = 0; rep < s.reps; ++rep)
    for (Config& c : configs) {
      const std::string tag = "p" + std::to_string(c.ranks) + "-t" + std::to_string(c.threads);
      const fs::path mdir = out / "runs" / (tag + "-mpi"), odir = out / "runs" / (tag + "-one");
      c.mpi.push_back(run_one(train_argv({s.mpiexec, "--oversubscribe", "--bind-to", "none", "-np",
                                          std::to_string(c.ranks), exe},
                                         c.threads, mdir),
                              mdir, c.ranks * c.threads));
      c.one.push_back(run_one(train_argv({exe}, c.ranks * c.threads, odir), odir, c.ranks * c.threads));
    }

  auto med = [](const std::vector<StepSplit>& v, double StepSplit::*f) {
    std::vector<double> x;
    for (const auto& r : v) x.push_back(r.*f);
    return median(x);
  };
  std::printf("%5s %7s %9s %9s %7s %7s %7s %7s %14s %9s\n", "ranks", "threads", "step ms", "compute",
              "wait", "comm", "sum", "comm %", "one process ms", "MPI / one");
  std::string csv = "ranks,threads_per_rank,step_ms,compute_ms,wait_ms,communication_ms,sum_ms,"
                    "communication_share,one_process_ms,one_process_threads,mpi_over_one\n";
  for (const Config& c : configs) {
    const double step = med(c.mpi, &StepSplit::step), one = med(c.one, &StepSplit::step);
    const double comm = med(c.mpi, &StepSplit::comm);
    std::printf("%5d %7d %9.3f %9.3f %7.3f %7.3f %7.3f %6.1f%% %9.3f (%2d t) %9.2f\n", c.ranks,
                c.threads, step, med(c.mpi, &StepSplit::compute), med(c.mpi, &StepSplit::wait), comm,
                med(c.mpi, &StepSplit::sum), 100 * comm / step, one, c.ranks * c.threads, step / one);
    char buf[256];
    std::snprintf(buf, sizeof buf, "%d,%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%d,%.6f\n", c.ranks,
                  c.threads, step, med(c.mpi, &StepSplit::compute), med(c.mpi, &StepSplit::wait),
                  comm, med(c.mpi, &StepSplit::sum), comm / step, one, c.ranks * c.threads, step / one);
    csv += buf;
  }
  io::write_file_atomic(out / "scale_ranks.csv", csv);
  if (any_over)
    std::printf("\nrows with P x T above the %d cores ran with OMP_WAIT_POLICY=passive (their spinning "
                "OpenMP threads would take the cores from the ranks still computing)\n", cores);
  std::printf("\nweights after the same steps identical for every ranks x threads: %s\n",
              identical ? "yes" : ("NO (first difference: " + differs + ")").c_str());
  std::printf("outputs: %s/scale_ranks.csv (each run's outputs and log under %s/runs)\n",
              out.string().c_str(), out.string().c_str());
  return identical ? exit_ok : exit_check_failed;
}

}  // namespace tapegrad::cli
