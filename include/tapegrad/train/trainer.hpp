// The trainer: mini-batch (or full-batch) training of a spec's network on the op tape over the
// fast kernels, reproducible to the bit.
//
// One step, as data flows (DESIGN.md):
//   data/    the next batch of the epoch's order: a permutation of the training set drawn by
//            Rng(Rng::derive(seed, epoch)) (no shuffle when one batch holds the whole set)
//   net/     the batch cut into `shards` contiguous shards (a fixed number, independent of the
//            threads and, later, of the MPI ranks); each shard recorded on the tape, reading
//            the parameter set through view leaves, its loss divided by the GLOBAL batch's
//            count, backward through the VJP kernels, its gradient moved out of the tape
//   dist/    the shards' gradients summed in shard order into the parameter set (by the
//            combiner: one process computes every shard; an MPI rank its own range of them,
//            then the ranks exchange them, dist/mpi_combine.hpp)
//   train/   the optimizer updates the parameter set in place
// Every kernel is bitwise identical for any thread count, every reduction above has a fixed
// order, and the data order depends only on (seed, epoch): the same seed gives the same bits
// for any number of threads, and a run resumed from a checkpoint at step k continues exactly
// as the uninterrupted run (the position in the data is a function of the step count).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/data/dataset.hpp"
#include "tapegrad/dist/combine.hpp"
#include "tapegrad/net/network.hpp"
#include "tapegrad/net/params.hpp"
#include "tapegrad/net/spec.hpp"
#include "tapegrad/train/optimizer.hpp"

namespace tapegrad::train {

// How a step uses its threads (the bits are the same either way: see Trainer::step).
//   kernels  the shards one after another, each kernel parallel over the threads
//   shards   the shards side by side, a group of threads per shard (G = min(threads, shards)
//            groups of threads / G), the kernels inside a group parallel over its threads
//   automatic  shards when this process computes two shards or more and has two threads or
//            more, kernels otherwise
enum class Parallel { automatic, kernels, shards };
const char* parallel_name(Parallel p);  // "auto" / "kernels" / "shards"

struct TrainerOptions {
  index_t batch = 64;   // global batch; 0 or >= the set's size: the whole set (full batch)
  index_t steps = 1;    // optimizer steps in all
  index_t shards = 1;   // shards per batch (see the top of this file)
  index_t eval_batch = 1000;
  std::uint64_t seed = 1;
  Parallel parallel = Parallel::automatic;
  Fusion fusion = Fusion::activations;  // conv2d/linear + activation as one op (same bits)

  void validate() const;
};

// What one step did.
struct StepRecord {
  index_t step = 0;   // 1-based: the number of optimizer steps done after this one
  index_t epoch = 0;  // 0-based epoch the batch came from
  index_t images = 0;
  double loss = 0;    // the batch's mean loss (before the update)
  index_t correct = 0;
};

struct Evaluation {
  double loss = 0;  // mean over the set
  index_t images = 0, correct = 0;
  index_t classes = 0;
  std::vector<index_t> confusion;  // classes x classes, [true][predicted]; empty for mse
  double accuracy() const { return images ? double(correct) / double(images) : 0.0; }
};

// Steps in an epoch of `train_size` examples at batch size `batch` (0: the whole set).
inline index_t steps_per_epoch(index_t train_size, index_t batch) {
  const index_t b = batch == 0 ? train_size : std::min(batch, train_size);
  return b > 0 ? (train_size + b - 1) / b : 0;
}

template <class T>
class Trainer {
 public:
  Trainer(const NetSpec& spec, const data::Dataset& train, const OptimConfig& optim,
          const TrainerOptions& opt, ParamSet<T> init);

  // One optimizer step on the next batch.
  StepRecord step();
  bool done() const { return steps_ >= opt_.steps; }

  // Forward passes only (no gradient kept), in batches of eval_batch.
  Evaluation evaluate(const data::Dataset& d);

  ParamSet<T>& params() { return params_; }
  const ParamSet<T>& params() const { return params_; }
  Optimizer<T>& optimizer() { return optim_; }
  const TrainerOptions& options() const { return opt_; }
  const NetSpec& spec() const { return spec_; }

  index_t steps_done() const { return steps_; }
  index_t batch_size() const { return batch_; }
  index_t steps_per_epoch() const { return per_epoch_; }
  index_t epoch() const { return steps_ / per_epoch_; }
  // The generator of the order of the epoch the next step draws from, after drawing it (saved
  // in checkpoints as a consistency check: a resumed run must regenerate the same state).
  std::string data_rng_state() {
    if (order_epoch_ != epoch()) make_order(epoch());
    return order_rng_state_;
  }

  // How shard gradients are combined (default: one process, dist::Combiner). Results are the
  // same bits with any combiner that sums every shard in shard order.
  void set_combiner(std::shared_ptr<dist::Combiner<T>> c) { combiner_ = std::move(c); }

  // Continue after `steps` steps (a resumed checkpoint): sets the step count and regenerates
  // the epoch's data order. The caller restores parameters and optimizer state.
  void resume_at(index_t steps);

  // The thread groups a step with `threads` threads would run its shards in: {groups,
  // threads per group}; {1, threads} when the shards go one after another.
  std::pair<int, int> thread_groups(int threads) const;

 private:
  // What one shard's forward and backward pass needs of its own (one per thread group).
  struct Worker {
    Tape<T> tape;
    Tensor<T> x;
    Targets<T> t;
  };
  void make_order(index_t epoch);
  void run_shard(Worker& w, index_t s, std::span<const index_t> batch, index_t count);

  const NetSpec& spec_;
  const data::Dataset& train_;
  TrainerOptions opt_;
  ParamSet<T> params_;
  Optimizer<T> optim_;
  index_t batch_ = 0, per_epoch_ = 1, steps_ = 0;
  index_t order_epoch_ = -1;
  std::vector<index_t> order_;
  std::string order_rng_state_;
  // reused per step
  std::vector<std::unique_ptr<Worker>> workers_;  // a Tape does not move: held by pointer
  dist::ShardResults<T> shards_;
  std::shared_ptr<dist::Combiner<T>> combiner_ = std::make_shared<dist::Combiner<T>>();
};

extern template class Trainer<float>;
extern template class Trainer<double>;

}  // namespace tapegrad::train
