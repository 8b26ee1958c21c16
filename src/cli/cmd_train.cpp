// tapegrad train --model seed|lenet5|SPEC --data synthetic|fashion-mnist[:DIR] [options]
//
// Trains a network on the op tape over the fast kernels (train/trainer.hpp) and writes, in
// --out DIR: metrics.csv, summary.json, loss.{svg,png} and accuracy.{svg,png} (PLplot),
// confusion.csv (classification), weights.npz and, with --checkpoint-every N, checkpoints
// DIR/checkpoints/step-NNNNNNN.npz that --resume continues bit for bit.
//
// Defaults per model (any option overrides):
//   seed     the tutorial's experiment: --data synthetic, full batch, --iterations 10000,
//            sgd --lr 0.1, no momentum, --dtype double, metrics every step
//   others   --data fashion-mnist, --epochs 3, --batch 64, sgd --lr 0.05 --lr-schedule cosine
//            --momentum 0.9, --dtype float, metrics every 50 steps, the test set evaluated after every epoch
// Bad options, data and checkpoints are one line and exit 2; nothing is written before the
// data, the model and any checkpoint have been read and checked.
//
// Under `mpirun -np P` (built with TAPEGRAD_MPI): synchronous data-parallel training, the same
// bits as one process (dist/mpi_combine.hpp). Rank r computes its range of each batch's
// --shards shards (P <= shards); before anything is written the ranks agree on everything
// the bits depend on (dist/agreement.hpp; a difference or any rank's setup error ends every
// rank with one line from rank 0 and exit 2); only rank 0 evaluates, prints and writes files.
// Checkpoints hold no P: they resume on any number of ranks, or in one process.
#include <omp.h>
#include <unistd.h>

#include <boost/version.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <zip.h>
#include <zlib.h>

#include "common.hpp"
#include "plot.hpp"
#include "profile_report.hpp"
#include "progress.hpp"
#include "tapegrad/data/fashion_mnist.hpp"
#include "tapegrad/data/synthetic.hpp"
#include "tapegrad/dist/agreement.hpp"
#include "tapegrad/dist/mpi.hpp"
#include "tapegrad/dist/mpi_combine.hpp"
#include "tapegrad/io/atomic_file.hpp"
#include "tapegrad/io/chrome_trace.hpp"
#include "tapegrad/io/input_file.hpp"
#include "tapegrad/kernels/conv2d_fast.hpp"
#include "tapegrad/kernels/peak.hpp"
#include "tapegrad/net/params.hpp"
#include "tapegrad/net/spec.hpp"
#include "tapegrad/tape/profile.hpp"
#include "tapegrad/tape/profile_summary.hpp"
#include "tapegrad/train/checkpoint.hpp"
#include "tapegrad/train/trainer.hpp"

namespace tapegrad::cli {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// The parameter-initialization stream of the seed (the data order uses derive(seed, epoch)
// for epochs 0, 1, 2, ...; this one is far from them).
constexpr std::uint64_t init_stream = 0xC0FFEE0000000001ull;
constexpr std::uint64_t max_spec_bytes = std::uint64_t{1} << 20;

struct TrainArgs {
  std::string model, data, epochs, iterations, batch, optimizer, lr, momentum, weight_decay;
  std::string dtype, threads, seed, out, checkpoint_every, resume, init, shards, log_every;
  std::string eval_every, train_size, test_size, progress = "auto", trace_steps = "20";
  std::string weight_init, lr_schedule, isa, parallel = "auto", fuse = "on";
  bool profile = false;
  std::map<std::string, CLI::Option*> opt;  // to tell given options from defaults
  bool given(const std::string& name) const { return opt.at(name)->count() > 0; }
};

// Everything a run needs, resolved from the options, the model's defaults and a checkpoint.
struct Plan {
  train::Recipe recipe;
  std::string data_dir;  // fashion-mnist
  index_t epochs = 0, iterations = 0;  // one of them
  index_t log_every = 1, eval_every = 0, checkpoint_every = 0, test_size = 0, trace_steps = 20;
  int threads = 0;
  fs::path out;
  std::optional<fs::path> init;
  Init weight_init = Init::pytorch;
};

std::string read_spec_text(const TrainArgs& a) {
  if (auto preset = preset_spec_text(a.model)) return *preset;
  check_path_arg(a.model, "--model");
  return read_arg("--model", [&] { return io::read_input_file(a.model, max_spec_bytes); });
}

// The model's defaults: the seed experiment, or mini-batch training on Fashion-MNIST.
void model_defaults(const NetSpec& spec, Plan& p) {
  const bool seed = spec.input == std::vector<index_t>{1, 3, 3} && spec.loss_name() == "mse";
  train::Recipe& r = p.recipe;
  if (seed) {
    r.data = "synthetic";
    r.batch = 0;
    p.iterations = 10000;
    r.optim.lr = 0.1;
    r.dtype = "double";
    p.log_every = 1;
  } else {
    r.data = "fashion-mnist";
    r.batch = 64;
    p.epochs = 3;
    r.optim.lr = 0.05;  // with the cosine schedule: 89.2-89.7 % after 3 epochs (README)
    r.optim.schedule = "cosine";
    r.optim.momentum = 0.9;
    r.dtype = "float";
    r.shards = 4;  // side by side on 2 or 4 threads, or on up to 4 MPI ranks (README)
    p.log_every = 50;
  }
}

// A recipe option given on the command line of a resumed run must agree with the checkpoint.
template <class V>
void check_same(const TrainArgs& a, const std::string& option, const V& given, const V& stored,
                const std::string& ck) {
  if (a.given(option) && !(given == stored)) {
    std::ostringstream os;
    os << option << " " << given << " differs from the checkpoint's " << stored << " (" << ck
       << "); a resumed run keeps the checkpoint's recipe";
    throw BadInput(os.str());
  }
}

Plan make_plan(const TrainArgs& a, std::optional<train::Checkpoint>& ck) {
  Plan p;
  train::Recipe& r = p.recipe;
  if (!a.resume.empty()) {
    check_path_arg(a.resume, "--resume");
    ck = read_arg("--resume", [&] { return train::read_checkpoint(a.resume); });
  }
  if (a.model.empty() && !ck) throw BadInput("train: --model is required (seed, lenet5 or a spec file)");
  if (!a.model.empty()) {
    r.model_source = a.model;
    r.spec_text = read_spec_text(a);
    if (ck && r.spec_text != ck->recipe.spec_text)
      throw BadInput("--model " + quote(a.model) + " is not the network of the checkpoint " +
                     ck->source + " (" + quote(ck->recipe.model_source) + ")");
  }
  const NetSpec spec = parse_spec(ck ? ck->recipe.spec_text : r.spec_text,
                                  ck ? ck->recipe.model_source : r.model_source);
  if (ck) {
    r = ck->recipe;
  } else {
    model_defaults(spec, p);
  }
  if (ck) {  // the recipe is the checkpoint's; only how long, where and how fast may change
    const std::string& src = ck->source;
    if (a.given("--data")) {
      const std::string d = a.data.substr(0, a.data.find(':'));
      check_same(a, "--data", d, r.data, src);
    }
    if (a.given("--batch")) check_same(a, "--batch", parse_int(a.batch, "--batch", 1, max_size_arg), r.batch, src);
    check_same(a, "--optimizer", a.optimizer, r.optim.name, src);
    if (a.given("--lr")) check_same(a, "--lr", parse_real(a.lr, "--lr", 0, 1e30), r.optim.lr, src);
    check_same(a, "--lr-schedule", a.lr_schedule, r.optim.schedule, src);
    if (a.given("--momentum"))
      check_same(a, "--momentum", parse_real(a.momentum, "--momentum", 0, 1), r.optim.momentum, src);
    if (a.given("--weight-decay"))
      check_same(a, "--weight-decay", parse_real(a.weight_decay, "--weight-decay", 0, 1e30),
                 r.optim.weight_decay, src);
    check_same(a, "--dtype", a.dtype, r.dtype, src);
    if (a.given("--seed")) check_same(a, "--seed", parse_uint64(a.seed, "--seed"), r.seed, src);
    if (a.given("--shards")) check_same(a, "--shards", parse_int(a.shards, "--shards", 1, 1 << 20), r.shards, src);
    if (a.given("--train-size"))
      check_same(a, "--train-size", parse_int(a.train_size, "--train-size", 1, max_size_arg),
                 r.train_size, src);
    if (a.given("--init")) throw BadInput("--init and --resume exclude each other (a checkpoint has its weights)");
    p.log_every = r.batch == 0 ? 1 : 50;
    if (r.batch == 0) p.iterations = 10000; else p.epochs = 3;
  } else {
    if (a.given("--data")) {
      const auto colon = a.data.find(':');
      r.data = a.data.substr(0, colon);
      if (colon != std::string::npos) p.data_dir = a.data.substr(colon + 1);
      if (r.data != "synthetic" && r.data != "fashion-mnist")
        throw BadInput("--data: expected synthetic or fashion-mnist[:DIR], got " + quote(a.data));
      if (r.data == "synthetic" && colon != std::string::npos)
        throw BadInput("--data synthetic takes no directory, got " + quote(a.data));
      if (colon != std::string::npos) check_path_arg(p.data_dir, "--data fashion-mnist:DIR");
    }
    if (a.given("--batch")) r.batch = parse_int(a.batch, "--batch", 1, max_size_arg);
    if (a.given("--optimizer")) {
      if (a.optimizer != "sgd" && a.optimizer != "adam")
        throw BadInput("--optimizer: expected sgd or adam, got " + quote(a.optimizer));
      r.optim.name = a.optimizer;
      if (a.optimizer == "adam") {
        r.optim.momentum = 0;
        if (!a.given("--lr")) r.optim.lr = 0.001;  // torch.optim.Adam's default
      }
    }
    if (a.given("--lr")) r.optim.lr = parse_real(a.lr, "--lr", 0, 1e30);
    if (a.given("--lr-schedule")) r.optim.schedule = a.lr_schedule;
    if (a.given("--momentum")) r.optim.momentum = parse_real(a.momentum, "--momentum", 0, 1);
    if (a.given("--weight-decay"))
      r.optim.weight_decay = parse_real(a.weight_decay, "--weight-decay", 0, 1e30);
    if (a.given("--dtype")) r.dtype = a.dtype;
    if (a.given("--seed")) r.seed = parse_uint64(a.seed, "--seed");
    if (a.given("--shards")) r.shards = parse_int(a.shards, "--shards", 1, 1 << 20);
    if (a.given("--init")) {
      check_path_arg(a.init, "--init");
      p.init = a.init;
    }
    try {
      r.optim.validate();
    } catch (const std::invalid_argument& e) {
      throw BadInput(e.what());
    }
  }
  if (a.given("--data") && ck) {
    const auto colon = a.data.find(':');
    if (colon != std::string::npos) p.data_dir = a.data.substr(colon + 1);
  }
  if (a.given("--epochs") && a.given("--iterations"))
    throw BadInput("--epochs and --iterations exclude each other");
  if (a.given("--epochs")) p.epochs = parse_int(a.epochs, "--epochs", 1, 1000000), p.iterations = 0;
  if (a.given("--iterations"))
    p.iterations = parse_int(a.iterations, "--iterations", 1, max_size_arg), p.epochs = 0;
  if (a.given("--log-every")) p.log_every = parse_int(a.log_every, "--log-every", 1, max_size_arg);
  if (a.given("--eval-every")) p.eval_every = parse_int(a.eval_every, "--eval-every", 1, max_size_arg);
  if (a.given("--checkpoint-every"))
    p.checkpoint_every = parse_int(a.checkpoint_every, "--checkpoint-every", 1, max_size_arg);
  if (a.given("--threads")) p.threads = static_cast<int>(parse_int(a.threads, "--threads", 1, 4096));
  if (a.given("--train-size") && !ck)
    r.train_size = parse_int(a.train_size, "--train-size", 1, max_size_arg);
  if (a.given("--test-size")) p.test_size = parse_int(a.test_size, "--test-size", 1, max_size_arg);
  if (a.given("--weight-init")) {
    if (ck || p.init) throw BadInput("--weight-init applies to a fresh start (not with --resume or --init)");
    try {
      p.weight_init = parse_init(a.weight_init);
    } catch (const std::invalid_argument& e) {
      throw BadInput(std::string("--weight-init: ") + e.what());
    }
  }
  if (a.given("--trace-steps")) {
    if (!a.profile) throw BadInput("--trace-steps needs --profile");
    p.trace_steps = parse_int(a.trace_steps, "--trace-steps", 0, 100000);
  }
  if (a.given("--out")) check_path_arg(a.out, "--out");
  p.out = a.out.empty() ? fs::path("out") / fs::path(r.model_source).stem() : fs::path(a.out);
  return p;
}

// The training and test sets, cut to --train-size / --test-size.
std::pair<data::Dataset, std::optional<data::Dataset>> load_data(Plan& p) {
  train::Recipe& r = p.recipe;
  data::Dataset train, test;
  if (r.data == "synthetic") {
    train = data::make_synthetic(data::synthetic_train_size, data::synthetic_train_seed,
                                 "synthetic train");
    test = data::make_synthetic(data::synthetic_test_size, data::synthetic_test_seed,
                                "synthetic test");
  } else {
    const fs::path dir = p.data_dir.empty() ? fs::path(data::fashion_mnist_default_dir) : fs::path(p.data_dir);
    const std::string opt = "--data fashion-mnist:" + quote(dir.string());
    memory::Estimate est("train");
    est.add("the Fashion-MNIST images (8-bit)", 70000ull * 784, 1, opt);
    est.check();
    train = read_arg(opt, [&] { return data::load_fashion_mnist(dir, "train"); });
    test = read_arg(opt, [&] { return data::load_fashion_mnist(dir, "test"); });
  }
  if (r.train_size > 0) {
    if (r.train_size > train.size)
      throw BadInput("--train-size " + std::to_string(r.train_size) + " is more than the " +
                     std::to_string(train.size) + " samples of " + train.name);
    train.truncate(r.train_size);
  }
  r.train_size = train.size;
  if (p.test_size > 0) {
    if (p.test_size > test.size)
      throw BadInput("--test-size " + std::to_string(p.test_size) + " is more than the " +
                     std::to_string(test.size) + " samples of " + test.name);
    test.truncate(p.test_size);
  }
  return {std::move(train), std::move(test)};
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  return "unknown";
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

struct Run {
  const TrainArgs& args;
  Plan plan;
  std::optional<train::Checkpoint> ck;
  const dist::Job& job;
  bool agreed = false;  // past the ranks' start-up agreement
};

// The ranks' start-up agreement (dist/agreement.hpp): everything the result's bits depend on
// must be the same on every rank; the thread count need not be.
template <class T>
void agree_at_start(Run& run, const data::Dataset& train,
                    train::Trainer<T>& trainer, index_t total) {
  const train::Recipe& r = run.plan.recipe;
  std::string error;
  try {
    dist::check_ranks_fit(r.shards, run.job.size());
  } catch (const std::invalid_argument& e) {
    error = e.what();
  }
  auto crc_of = [](const auto& v, std::uint32_t crc = 0) {
    return dist::crc32_of(v.data(), v.size() * sizeof(v[0]), crc);
  };
  std::uint32_t data_crc = crc_of(train.pixels);
  data_crc = crc_of(train.values, data_crc);
  data_crc = crc_of(train.labels, data_crc);
  data_crc = crc_of(train.targets, data_crc);
  std::uint32_t param_crc = 0, state_crc = 0;
  for (const auto& q : trainer.params()) param_crc = dist::crc32_of(q.value.data(), q.value.numel() * sizeof(T), param_crc);
  for (const auto& st : trainer.optimizer().state())
    state_crc = dist::crc32_of(st.tensor->data(), st.tensor->numel() * sizeof(T), state_crc);
  char optim[256];
  std::snprintf(optim, sizeof optim, "%s lr %.17g %s over %lld steps, momentum %.17g, weight decay %.17g",
                r.optim.name.c_str(), r.optim.lr, r.optim.schedule.c_str(),
                static_cast<long long>(r.optim.schedule_steps), r.optim.momentum, r.optim.weight_decay);
  std::string build = TAPEGRAD_VERSION;
  build += ", g++ ";
  build += __VERSION__;
  build += ", ";
  build += TAPEGRAD_BUILD_TYPE;
  const std::string same = "every rank must run the same command on the same data";
  const std::vector<dist::Field> fields{
      {"the tapegrad build", build, "every rank must run the same build"},
      {"the fast kernels' instruction set (their sums' order depends on it)", fast::isa(),
       "--isa NAME makes every rank use one (e.g. the best that all machines have)"},
      {"the model (CRC-32 of the spec)", dist::hex32(dist::crc32_of(r.spec_text.data(), r.spec_text.size())), same},
      {"the data", train.name + ", " + std::to_string(train.size) + " samples, CRC-32 " + dist::hex32(data_crc),
       "every rank must read the same data set (--data, --train-size)"},
      {"dtype", r.dtype, same},
      {"batch", std::to_string(trainer.batch_size()), same},
      {"shards", std::to_string(r.shards), same},
      {"seed", std::to_string(r.seed), same},
      {"the optimizer", optim, same},
      {"the steps", std::to_string(trainer.steps_done()) + " done of " + std::to_string(total), same},
      {"the starting parameters (CRC-32)", dist::hex32(param_crc), "every rank must start from the same --init or --resume file"},
      {"the optimizer state (CRC-32)", dist::hex32(state_crc), "every rank must resume the same checkpoint"},
  };
  const std::string m = dist::agree(run.job, fields, error);
  run.agreed = true;
  if (!m.empty()) {
    std::string line = "train: ";
    line += m;
    throw dist::Disagreement(line);
  }
}

// A test-only hook (tests/mpi_train_test.py): TAPEGRAD_TEST_EXIT_AT=RANK:STEP makes that rank
// exit at once (status 3, no MPI_Finalize) after that step, as a rank that dies would.
std::optional<std::pair<int, index_t>> test_exit_at() {
  const char* v = std::getenv("TAPEGRAD_TEST_EXIT_AT");
  int rank = 0;
  long long step = 0;
  if (!v || std::sscanf(v, "%d:%lld", &rank, &step) != 2) return std::nullopt;
  return std::make_pair(rank, static_cast<index_t>(step));
}

template <class T>
int train_in(Run& run, const NetSpec& spec, data::Dataset& train, std::optional<data::Dataset>& test) {
  Plan& p = run.plan;
  const train::Recipe& r = p.recipe;
  // Parameters: from --init, from the seed, or (resume) from the checkpoint.
  ParamSet<T> init;
  if (p.init) {
    init = read_arg("--init", [&] { return train::load_init<T>(*p.init, spec); });
  } else {
    Rng rng(Rng::derive(r.seed, init_stream));
    init = init_params<T>(spec, rng, p.weight_init);
  }
  {  // a cosine schedule spans the run: its length is fixed when it starts
    const index_t per = train::steps_per_epoch(train.size, r.batch);
    const std::int64_t steps = p.iterations > 0 ? p.iterations : p.epochs * per;
    if (r.optim.schedule == "cosine") {
      if (!run.ck)
        p.recipe.optim.schedule_steps = steps;
      else if (r.optim.schedule_steps != steps)
        throw BadInput("--resume: the checkpoint's cosine schedule spans " +
                       std::to_string(r.optim.schedule_steps) + " steps; give --epochs or " +
                       "--iterations for that many (this run asks for " + std::to_string(steps) + ")");
    }
  }
  train::TrainerOptions topt;
  topt.batch = r.batch;
  topt.shards = r.shards;
  topt.seed = r.seed;
  topt.parallel = run.args.parallel == "kernels"  ? train::Parallel::kernels
                  : run.args.parallel == "shards" ? train::Parallel::shards
                                                  : train::Parallel::automatic;
  topt.fusion = run.args.fuse == "off" ? Fusion::none : Fusion::activations;
  train::Trainer<T> trainer(spec, train, r.optim, topt, std::move(init));
  train::MetricsLog metrics;
  double seconds0 = 0;
  if (run.ck) {
    read_arg("--resume", [&] { train::restore(trainer, *run.ck); });
    metrics = run.ck->metrics;
    seconds0 = run.ck->seconds;
  }
  const index_t per_epoch = trainer.steps_per_epoch();
  const index_t total = p.iterations > 0 ? p.iterations : p.epochs * per_epoch;
  const index_t epochs = (total + per_epoch - 1) / per_epoch;
  if (trainer.steps_done() > total)
    throw BadInput("--resume: the checkpoint is at step " + std::to_string(trainer.steps_done()) +
                   ", past the " + std::to_string(total) + " steps asked for");
  topt.steps = total;
  if (p.eval_every == 0) p.eval_every = per_epoch > 1 ? per_epoch : std::max<index_t>(1, total / 10);
  if (run.job.mpi()) {
    agree_at_start(run, train, trainer, total);
    trainer.set_combiner(std::make_shared<dist::MpiCombiner<T>>(run.job));
  }
  const bool writer = run.job.rank() == 0;  // only rank 0 evaluates, prints and writes
  const auto exit_at = test_exit_at();

  // Nothing is written before here: every input has been read and checked.
  std::error_code ec;
  if (writer) fs::create_directories(p.out, ec);
  if (ec) throw BadInput("--out " + quote(p.out.string()) + ": cannot create (" + ec.message() + ")");
  if (writer && p.checkpoint_every > 0) {
    fs::create_directories(p.out / "checkpoints", ec);
    if (ec) throw BadInput("--out " + quote(p.out.string()) + ": cannot create checkpoints/ (" + ec.message() + ")");
  }

  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  Progress progress(writer ? Progress::parse_mode(run.args.progress, tty) : Progress::Mode::none, total,
                    per_epoch, epochs,
                    std::max<index_t>(1, std::min<index_t>(total / 20, per_epoch / 4 > 0 ? per_epoch / 4 : total)));
  {
    std::ostringstream os;
    os << "train: model " << r.model_source << " (" << spec.params.size() << " tensors, "
       << trainer.params().numel() << " parameters), data " << train.name << " ("
       << train.size << " samples";
    if (test) os << "; " << test->name << " " << test->size;
    os << "), " << r.dtype << ", batch " << trainer.batch_size() << (r.batch == 0 ? " (full)" : "")
       << ", " << r.optim.name << " lr " << r.optim.lr
       << (r.optim.schedule == "cosine" ? " (cosine to 0)" : "");
    if (r.optim.momentum > 0) os << " momentum " << r.optim.momentum;
    if (r.optim.weight_decay > 0) os << " weight decay " << r.optim.weight_decay;
    os << ", " << total << " steps (" << epochs << " epoch" << (epochs == 1 ? "" : "s") << "), "
       << omp_get_max_threads() << " thread" << (omp_get_max_threads() == 1 ? "" : "s");
    if (const auto [groups, inner] = trainer.thread_groups(omp_get_max_threads()); groups > 1)
      os << " (" << groups << " shards side by side" << (inner > 1 ? ", " + std::to_string(inner) + " threads each" : std::string()) << ")";
    os << ", seed " << r.seed;
    if (run.job.mpi())
      os << ", " << run.job.size() << " MPI rank" << (run.job.size() == 1 ? "" : "s") << " sharing "
         << r.shards << " shard" << (r.shards == 1 ? "" : "s");
    if (run.ck) os << ", resumed at step " << trainer.steps_done();
    progress.line(os.str());
  }
  if (writer && run.job.mpi() && !std::getenv("OMP_WAIT_POLICY")) {
    // Ranks sharing a machine cannot see each other's threads: libgomp's spinning wait, fine
    // within one process (it throttles itself when oversubscribed), then takes the cores the
    // working ranks need (measured: 4 ranks x 2 threads on 2 cores, 232 ms per lenet5 step
    // spinning, 3.7 ms passive; README).
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    const long ranks_here = local ? std::strtol(local, nullptr, 10) : 0;
    const long cores = static_cast<long>(std::thread::hardware_concurrency());
    if (ranks_here > 0 && cores > 0 && ranks_here * omp_get_max_threads() > cores)
      progress.line("train: note: " + std::to_string(ranks_here) + " ranks x " +
                    std::to_string(omp_get_max_threads()) + " threads on " + std::to_string(cores) +
                    " cores here, with OpenMP threads that spin while they wait: set "
                    "OMP_WAIT_POLICY=passive (mpirun -x OMP_WAIT_POLICY=passive ...) or fewer threads");
  }

  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  double train_seconds = 0;  // time in training steps only (not evaluation or output)
  index_t images_trained = 0;
  std::vector<double> epoch_seconds, epoch_train_seconds;  // wall; training steps only
  auto epoch_start = clock::now();
  double epoch_train0 = 0;
  // The interval being logged.
  double int_loss = 0;
  index_t int_images = 0, int_correct = 0;
  double last_loss = NAN;
  std::optional<train::Evaluation> last_eval;
  auto elapsed = [&] { return seconds0 + std::chrono::duration<double>(clock::now() - t0).count(); };
  auto write_metrics = [&] {
    if (writer) io::write_file_atomic(p.out / "metrics.csv", metrics.csv());
  };
  // --profile: every step summarized; the first --trace-steps steps kept whole for trace.json.
  const bool profiling = run.args.profile;
  profile::Summary prof;
  std::vector<profile::Span> trace;
  const index_t traced_until = trainer.steps_done() + p.trace_steps;
  if (profiling) {
    run.job.barrier();  // MPI: the ranks' clocks start together, so their traces line up
    profile::start({p.trace_steps > 0});
  }
  auto profile_after_step = [&](index_t step) {
    if (!profiling) return;
    const bool last = step == total;
    if (step <= traced_until) {
      if (step == traced_until || last) {
        trace = profile::collect();
        prof.add(profile::summarize(trace));
        profile::clear();
        profile::set_tracing(false);
      }
    } else if (step % 32 == 0 || last) {
      prof.add(profile::summarize(profile::collect()));
      profile::clear();
    }
  };
  auto evaluate = [&](index_t step, index_t epoch) {
    if (!test || !writer) return;
    last_eval = trainer.evaluate(*test);
    metrics.add({true, epoch + 1, step, last_eval->images, last_eval->loss,
                 last_eval->accuracy(), trainer.optimizer().lr(), elapsed()});
    char buf[200];
    const std::string at = per_epoch > 1 ? "epoch " + std::to_string(epoch + 1) + " step " + std::to_string(step)
                                         : "step " + std::to_string(step);
    std::snprintf(buf, sizeof buf, "  %s: test loss %.6g, accuracy %.2f %% (%lld/%lld)", at.c_str(),
                  last_eval->loss, 100 * last_eval->accuracy(),
                  static_cast<long long>(last_eval->correct), static_cast<long long>(last_eval->images));
    progress.line(buf);
  };
  while (trainer.steps_done() < total) {
    if (profiling && trainer.steps_done() % per_epoch == 0)
      profile::mark("epoch", std::to_string(trainer.epoch() + 1));
    const auto ts = clock::now();
    const train::StepRecord rec = trainer.step();
    train_seconds += std::chrono::duration<double>(clock::now() - ts).count();
    if (exit_at && exit_at->first == run.job.rank() && exit_at->second == rec.step) std::_Exit(3);
    images_trained += rec.images;
    if (!std::isfinite(rec.loss))
      throw std::domain_error("train: the loss became " + std::string(std::isnan(rec.loss) ? "NaN" : "infinite") +
                              " at step " + std::to_string(rec.step) + " (try a smaller --lr)");
    int_loss += rec.loss * static_cast<double>(rec.images);
    int_images += rec.images;
    int_correct += rec.correct;
    const bool epoch_end = rec.step % per_epoch == 0 || rec.step == total;
    if (rec.step % p.log_every == 0 || epoch_end) {
      last_loss = int_loss / static_cast<double>(int_images);
      metrics.add({false, rec.epoch + 1, rec.step, int_images, last_loss,
                   static_cast<double>(int_correct) / static_cast<double>(int_images), trainer.optimizer().lr(),
                   elapsed()});
      int_loss = 0, int_images = 0, int_correct = 0;
    }
    const double ips = train_seconds > 0 ? static_cast<double>(images_trained) / train_seconds : 0;
    const double left = ips > 0 ? static_cast<double>((total - rec.step) * trainer.batch_size()) / ips : 0;
    progress.update(rec.step, rec.epoch, std::isnan(last_loss) ? rec.loss : last_loss, ips, left);
    if (rec.step % p.eval_every == 0 || rec.step == total) evaluate(rec.step, rec.epoch);
    if (epoch_end) {
      epoch_seconds.push_back(std::chrono::duration<double>(clock::now() - epoch_start).count());
      epoch_train_seconds.push_back(train_seconds - epoch_train0);
      epoch_start = clock::now();
      epoch_train0 = train_seconds;
      if (per_epoch > 1) write_metrics();
    }
    profile_after_step(rec.step);
    if (writer && p.checkpoint_every > 0 && rec.step % p.checkpoint_every == 0) {
      char name[64];
      std::snprintf(name, sizeof name, "step-%07lld.npz", static_cast<long long>(rec.step));
      const fs::path path = p.out / "checkpoints" / name;
      train::save_checkpoint(path, trainer, r, metrics, elapsed());
      write_metrics();
      progress.line("  checkpoint " + path.string());
    }
  }
  progress.finish();
  std::vector<std::string> rank_traces;  // MPI: one process per rank (pid = rank) in trace.json
  if (profiling && run.job.size() > 1) {
    std::string name = "tapegrad train ";
    name += r.model_source;
    name += ", rank ";
    name += std::to_string(run.job.rank());
    name += " of ";
    name += std::to_string(run.job.size());
    rank_traces = run.job.allgather(trace.empty() ? std::string() : io::chrome_trace_json(trace, name, run.job.rank()));
  }
  if (!writer) {  // the other ranks hold the same weights; rank 0 writes everything
    if (profiling) profile::stop();
    return exit_ok;
  }
  const double total_seconds = elapsed();
  nlohmann::json profile_summary;
  if (profiling) {
    profile::stop();
    const int threads = omp_get_max_threads();
    ProfileContext ctx{r.model_source + ", " + r.dtype + ", batch " + std::to_string(trainer.batch_size()),
                       threads, fast::core_peak_gflops(r.dtype == "double") * threads};
    progress.line(profile_table(prof, ctx));
    profile_summary = profile_json(prof, ctx);
    io::write_file_atomic(p.out / "profile.json", profile_summary.dump(2) + "\n");
    if (!trace.empty()) {
      if (rank_traces.empty())
        io::write_chrome_trace(p.out / "trace.json", trace, "tapegrad train " + r.model_source);
      else
        io::write_file_atomic(p.out / "trace.json", io::merge_chrome_traces(rank_traces));
      progress.line("trace: " + (p.out / "trace.json").string() + " (the first " +
                    std::to_string(std::min(p.trace_steps, total - (traced_until - p.trace_steps))) +
                    " steps; open in chrome://tracing or ui.perfetto.dev)");
    }
  }

  // Outputs.
  write_metrics();
  train::save_weights(p.out / "weights.npz", trainer.params(), r, trainer.steps_done());
  std::vector<fs::path> plots;
  {
    Plot loss{"loss of " + r.model_source + " on " + train.name, "step", "loss", {}, false};
    PlotSeries tr{"train", {}, {}, false}, te{"test", {}, {}, true};
    Plot acc{"accuracy of " + r.model_source, "step", "accuracy (%)", {}, false};
    PlotSeries atr{"train", {}, {}, false}, ate{"test", {}, {}, true};
    bool positive = true;
    for (const auto& row : metrics.rows()) {
      (row.test ? te : tr).x.push_back(static_cast<double>(row.step));
      (row.test ? te : tr).y.push_back(row.loss);
      (row.test ? ate : atr).x.push_back(static_cast<double>(row.step));
      (row.test ? ate : atr).y.push_back(100 * row.accuracy);
      positive = positive && row.loss > 0;
    }
    loss.series.push_back(tr);
    if (!te.x.empty()) loss.series.push_back(te);
    acc.series.push_back(atr);
    if (!ate.x.empty()) acc.series.push_back(ate);
    loss.log_y = positive;
    for (const auto& f : write_plot(p.out / "loss", loss)) plots.push_back(f);
    for (const auto& f : write_plot(p.out / "accuracy", acc)) plots.push_back(f);
  }
  // Confusion matrix.
  if (last_eval && !last_eval->confusion.empty()) {
    const index_t c = last_eval->classes;
    std::ostringstream csv, table;
    csv << "true\\predicted";
    for (index_t j = 0; j < c; ++j) csv << "," << test->class_names[static_cast<std::size_t>(j)];
    csv << "\n";
    table << "confusion matrix (" << test->name << ", rows: true class, columns: predicted)\n";
    char buf[64];
    table << "            ";
    for (index_t j = 0; j < c; ++j) std::snprintf(buf, sizeof buf, "%6lld", static_cast<long long>(j)), table << buf;
    table << "\n";
    for (index_t i = 0; i < c; ++i) {
      csv << test->class_names[static_cast<std::size_t>(i)];
      std::snprintf(buf, sizeof buf, "%-12.12s", test->class_names[static_cast<std::size_t>(i)].c_str());
      table << buf;
      for (index_t j = 0; j < c; ++j) {
        const index_t v = last_eval->confusion[static_cast<std::size_t>(i * c + j)];
        csv << "," << v;
        std::snprintf(buf, sizeof buf, "%6lld", static_cast<long long>(v));
        table << buf;
      }
      csv << "\n";
      table << "\n";
    }
    io::write_file_atomic(p.out / "confusion.csv", csv.str());
    progress.line(table.str());
  }
  // summary.json
  {
    json summary;
    summary["configuration"] = {{"model", r.model_source},
                                {"spec", r.spec_text},
                                {"data", r.data},
                                {"train_size", train.size},
                                {"test_size", test ? test->size : 0},
                                {"dtype", r.dtype},
                                {"batch", trainer.batch_size()},
                                {"full_batch", r.batch == 0},
                                {"shards", r.shards},
                                {"steps", total},
                                {"epochs", epochs},
                                {"steps_per_epoch", per_epoch},
                                {"optimizer", {{"name", r.optim.name}, {"lr", r.optim.lr},
                                               {"lr_schedule", r.optim.schedule},
                                               {"momentum", r.optim.momentum},
                                               {"weight_decay", r.optim.weight_decay}}},
                                {"seed", r.seed},
                                {"threads", omp_get_max_threads()},
                                {"ranks", run.job.size()},
                                {"resumed_from", run.ck ? run.ck->source : ""}};
    json final_metrics{{"train_loss", last_loss}};
    if (last_eval)
      final_metrics.update({{"test_loss", last_eval->loss}, {"test_accuracy", last_eval->accuracy()}});
    summary["final"] = final_metrics;
    summary["seconds"] = {{"total", total_seconds}, {"training_steps", train_seconds}};
    if (per_epoch > 1) {
      summary["seconds"]["per_epoch"] = epoch_seconds;  // wall, with evaluation and outputs
      summary["seconds"]["training_per_epoch"] = epoch_train_seconds;  // the steps alone
    }
    if (profiling) summary["profile"] = profile_summary;
    summary["images_per_second"] = train_seconds > 0 ? static_cast<double>(images_trained) / train_seconds : 0;
    summary["versions"] = {{"tapegrad", TAPEGRAD_VERSION},
                           {"compiler", std::string("g++ ") + __VERSION__},
                           {"boost", BOOST_LIB_VERSION},
                           {"zlib", zlibVersion()},
                           {"libzip", zip_libzip_version()},
                           {"openmp", _OPENMP}};
    summary["machine"] = {{"cpu", cpu_model()},
                          {"logical_cpus", std::thread::hardware_concurrency()},
                          {"isa", fast::isa()}};
    std::vector<std::string> files{"metrics.csv", "summary.json", "weights.npz"};
    if (profiling) files.push_back("profile.json");
    if (!trace.empty()) files.push_back("trace.json");
    for (const auto& f : plots) files.push_back(f.filename().string());
    if (last_eval && !last_eval->confusion.empty()) files.push_back("confusion.csv");
    summary["outputs"] = files;
    io::write_file_atomic(p.out / "summary.json", summary.dump(2) + "\n");
  }
  {
    std::ostringstream os;
    os << "train: done, " << trainer.steps_done() << " steps in " << fmt("%.2f", total_seconds) << " s ("
       << fmt("%.0f", train_seconds > 0 ? static_cast<double>(images_trained) / train_seconds : 0)
       << " images/s); final train loss " << fmt("%.6g", last_loss);
    if (last_eval) os << ", test loss " << fmt("%.6g", last_eval->loss) << ", test accuracy " << fmt("%.2f", 100 * last_eval->accuracy()) << " %";
    progress.line(os.str());
    progress.line("plot: " + (p.out / "loss.svg").string() + " (also loss.png, accuracy.svg, accuracy.png)");
    progress.line("outputs: " + p.out.string() + "/{metrics.csv,summary.json,weights.npz" +
                  std::string(last_eval && !last_eval->confusion.empty() ? ",confusion.csv" : "") + "}");
  }
  return exit_ok;
}

int run_rank(Run& r) {
  const TrainArgs& a = r.args;
  r.plan = make_plan(a, r.ck);
  if (r.plan.threads > 0) omp_set_num_threads(r.plan.threads);
  if (a.opt.at("--isa")->count() > 0) {
    try {
      fast::set_isa(a.isa);
    } catch (const std::invalid_argument& e) {
      std::string m = "--isa: ";  // piece by piece: GCC 12's -Wrestrict on "lit" + string&&
      m += e.what();
      throw BadInput(m);
    }
  }
  memory::retain_freed_memory();
  const NetSpec spec = parse_spec(r.plan.recipe.spec_text, r.plan.recipe.model_source);
  auto [train, test] = load_data(r.plan);
  if (r.ck && r.ck->recipe.train_size != train.size)
    throw BadInput("--resume: the checkpoint trained on " + std::to_string(r.ck->recipe.train_size) +
                   " samples, the data set has " + std::to_string(train.size));
  try {
    return r.plan.recipe.dtype == "float" ? train_in<float>(r, spec, train, test)
                                          : train_in<double>(r, spec, train, test);
  } catch (const std::invalid_argument& e) {
    throw BadInput(std::string("train: ") + e.what());
  }
}

int run(const TrainArgs& a) {
  dist::Job job;  // MPI when mpirun started this process; otherwise one process, as always
  Run r{a, {}, {}, job};
  if (job.size() == 1) return run_rank(r);  // errors as always: main() prints them
  std::string message;                      // several ranks: the job's one line, from rank 0
  try {
    return run_rank(r);
  } catch (const dist::Disagreement& e) {
    message = e.what();  // every rank has it
  } catch (const std::exception& e) {
    if (r.agreed) {  // training had started: only this rank knows; end every rank now
      std::string line = "tapegrad: error: ";
      if (job.rank() != 0) {
        line += "rank ";
        line += std::to_string(job.rank());
        line += ": ";
      }
      line += one_line(e.what());
      std::cerr << line << "\n" << std::flush;
      job.abort(exit_bad_input);
    }
    // Failed before the start-up agreement: bring the error there, so the others end too.
    message = dist::agree(job, {}, e.what());
  }
  if (job.rank() == 0) std::cerr << "tapegrad: error: " << one_line(message) << "\n";
  return exit_bad_input;  // every rank; ~Job finalizes MPI on all of them
}

}  // namespace

void register_train(CLI::App& app, Action& action) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train a network (seed on synthetic, lenet5 on Fashion-MNIST, or a spec file)");
  auto add = [&](const std::string& name, std::string& dest, const std::string& help) {
    a->opt[name] = cmd->add_option(name, dest, help);
  };
  add("--model", a->model, "seed, lenet5 or a spec file");
  add("--data", a->data, "synthetic | fashion-mnist[:DIR] (default DIR /usr/share/datasets/fashion-mnist)");
  add("--epochs", a->epochs, "epochs to train (default 3; seed: --iterations 10000)");
  add("--iterations", a->iterations, "optimizer steps to train (instead of --epochs)");
  add("--batch", a->batch, "mini-batch size (default 64; seed: the whole set)");
  add("--optimizer", a->optimizer, "sgd | adam (default sgd)");
  add("--lr", a->lr, "learning rate (default 0.05; seed 0.1; adam 0.001)");
  add("--lr-schedule", a->lr_schedule,
      "constant | cosine: step t of T uses lr (1 + cos(pi (t-1) / T)) / 2 (default cosine; seed constant)");
  a->opt["--lr-schedule"]->check(CLI::IsMember({"constant", "cosine"}));
  add("--momentum", a->momentum, "sgd momentum in [0, 1) (default 0.9; seed 0)");
  add("--weight-decay", a->weight_decay, "L2 weight decay added to the gradient (default 0)");
  add("--dtype", a->dtype, "float | double (default float; seed double)");
  a->opt["--dtype"]->check(CLI::IsMember({"float", "double"}));
  add("--threads", a->threads, "OpenMP threads (default: OMP_NUM_THREADS or all cores)");
  add("--seed", a->seed, "seed of the initialization and the data order (default 1)");
  add("--out", a->out, "output directory (default out/<model>)");
  add("--checkpoint-every", a->checkpoint_every, "write a checkpoint every N steps");
  add("--resume", a->resume, "continue from a checkpoint (bit for bit)");
  add("--init", a->init, "initial weights from an .npz (tapegrad or PyTorch names)");
  add("--weight-init", a->weight_init, "pytorch | he: how fresh weights are drawn (default pytorch)");
  add("--shards", a->shards, "shards per batch, summed in a fixed order (default 4; seed 1)");
  add("--parallel", a->parallel, "auto | kernels | shards: the threads work inside each kernel, "
      "or on shards side by side (same bits; default auto: shards when there are 2 or more)");
  a->opt["--parallel"]->check(CLI::IsMember({"auto", "kernels", "shards"}));
  add("--fuse", a->fuse, "on | off: a conv2d or linear and the activation after it as one op "
      "(same bits; default on; off profiles them apart)");
  a->opt["--fuse"]->check(CLI::IsMember({"on", "off"}));
  add("--log-every", a->log_every, "a metrics row every N steps (default 50; seed 1)");
  add("--eval-every", a->eval_every, "evaluate the test set every N steps (default: every epoch)");
  add("--train-size", a->train_size, "use the first N training samples only");
  add("--test-size", a->test_size, "use the first N test samples only");
  add("--progress", a->progress, "auto | bar | lines | none (default auto: a bar on a terminal)");
  a->opt["--profile"] = cmd->add_flag("--profile", a->profile,
                                      "per-op profile table, profile.json and trace.json");
  add("--isa", a->isa, "avx512 | avx2 | generic | best: the fast kernels' instruction set "
      "(default best; MPI ranks on different CPUs must agree on one)");
  add("--trace-steps", a->trace_steps, "with --profile: steps kept in trace.json (default 20)");
  a->opt["--progress"]->check(CLI::IsMember({"auto", "bar", "lines", "none"}));
  cmd->callback([a, &action] { action = [a] { return run(*a); }; });
}

}  // namespace tapegrad::cli
