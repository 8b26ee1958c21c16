// The trainer: see include/tapegrad/train/trainer.hpp.
#include "tapegrad/train/trainer.hpp"

#include <omp.h>

#include <algorithm>
#include <exception>
#include <numeric>

#include "tapegrad/random.hpp"
#include "tapegrad/tape/profile.hpp"

namespace tapegrad::train {

void TrainerOptions::validate() const {
  check_arg(batch >= 0, "train", "--batch must be positive, got ", batch);
  check_arg(steps >= 0, "train", "the number of steps must be non-negative, got ", steps);
  check_arg(shards >= 1, "train", "--shards must be positive, got ", shards);
  check_arg(eval_batch >= 1, "train", "the evaluation batch must be positive");
}

namespace {
// Does the data set fit the network? Input shape and the loss's kind of target.
void check_fits(const NetSpec& spec, const data::Dataset& d) {
  check_arg(std::vector<index_t>(spec.input) == d.sample, "train", "the model ", quote(spec.source),
            " takes inputs ", Shape(spec.input).str(), " per sample, but ", d.name, " has ",
            Shape(d.sample).str());
  const Shape out = spec.output_shape(1);
  if (spec.loss_name() == "cross_entropy") {
    check_arg(d.classification(), "train", "the model's loss is cross_entropy, but ", d.name,
              " has real-valued targets (use a model with 'loss mse')");
    check_arg(out[1] == d.classes, "train", "the model has ", out[1], " outputs but ", d.name,
              " has ", d.classes, " classes");
  } else {
    check_arg(!d.classification(), "train", "the model's loss is ", spec.loss_name(), ", but ",
              d.name, " has class labels (use a model with 'loss cross_entropy')");
    std::vector<index_t> per(out.dims().begin() + 1, out.dims().end());
    check_arg(per == d.target_sample, "train", "the model's output per sample is ",
              Shape(per).str(), " but ", d.name, "'s targets are ", Shape(d.target_sample).str());
  }
}
}  // namespace

template <class T>
Trainer<T>::Trainer(const NetSpec& spec, const data::Dataset& train, const OptimConfig& optim,
                    const TrainerOptions& opt, ParamSet<T> init)
    : spec_(spec), train_(train), opt_(opt), params_(std::move(init)), optim_(optim, params_) {
  opt_.validate();
  check_fits(spec, train);
  check_arg(train.size > 0, "train", train.name, " is empty");
  batch_ = opt_.batch == 0 ? train.size : std::min(opt_.batch, train.size);
  per_epoch_ = train::steps_per_epoch(train.size, opt_.batch);
}

template <class T>
void Trainer<T>::make_order(index_t epoch) {
  order_.resize(static_cast<std::size_t>(train_.size));
  std::iota(order_.begin(), order_.end(), index_t{0});
  Rng rng(Rng::derive(opt_.seed, static_cast<std::uint64_t>(epoch)));
  if (batch_ < train_.size) rng.shuffle(order_);  // one batch holding the set: natural order
  order_rng_state_ = rng.state();
  order_epoch_ = epoch;
}

template <class T>
void Trainer<T>::resume_at(index_t steps) {
  check_arg(steps >= 0, "resume", "step count must be non-negative");
  steps_ = steps;
  order_epoch_ = -1;
  make_order(epoch());
}

const char* parallel_name(Parallel p) {
  switch (p) {
    case Parallel::automatic: return "auto";
    case Parallel::kernels: return "kernels";
    case Parallel::shards: return "shards";
  }
  return "?";
}

template <class T>
std::pair<int, int> Trainer<T>::thread_groups(int threads) const {
  const auto [first, last] = combiner_->shard_range(opt_.shards);
  const index_t local = last - first;
  threads = std::max(threads, 1);
  const bool side_by_side = opt_.parallel == Parallel::shards ||
                            (opt_.parallel == Parallel::automatic && threads >= 2 && local >= 2);
  if (!side_by_side || local < 2) return {1, threads};
  const int groups = static_cast<int>(std::min<index_t>(threads, local));
  return {groups, std::max(1, threads / groups)};
}

// One shard: its samples into the worker's batch tensors, forward on the worker's tape
// (reading the parameter set through view leaves), backward, its gradient moved into
// shards_.grads[s]. Touches only the worker and shard s's slots, so shards may run side by side.
template <class T>
void Trainer<T>::run_shard(Worker& w, index_t s, std::span<const index_t> batch, index_t count) {
  const index_t n = static_cast<index_t>(batch.size()), shards = opt_.shards;
  const index_t lo = n * s / shards, hi = n * (s + 1) / shards;
  if (lo == hi) return;  // more shards than samples: this one is empty
  {
    profile::Scope sc("batch", profile::Phase::data);
    data::fill_batch(train_, batch.subspan(static_cast<std::size_t>(lo),
                                           static_cast<std::size_t>(hi - lo)),
                     w.x, w.t);
  }
  w.tape.clear();
  const auto ps = record_params(w.tape, params_);
  const auto out = record_output(spec_, w.tape.view(w.x, false), ps, opt_.fusion);
  const auto loss = record_loss(spec_, out, w.t, count);
  const auto i = static_cast<std::size_t>(s);
  shards_.loss[i] = static_cast<double>(loss.value()[0]);
  shards_.correct[i] = visit_loss_kind(spec_.loss, [&](auto l) {
    return decltype(l)::correct(out.value(), w.t);
  });
  w.tape.backward(loss);
  auto& grads = shards_.grads[i];
  grads.resize(params_.size());
  for (std::size_t k = 0; k < ps.size(); ++k) w.tape.take_grad(ps[k], grads[k]);
  w.tape.clear();  // the tape held views of w.x: drop them before w.x is refilled
}

// The shards side by side or one after another give the same bits: each shard's forward and
// backward pass is the same computation on the same inputs either way (every kernel is bitwise
// independent of its thread count), it writes only its own slots of shards_, and the
// combination sums the slots in shard order afterwards, whoever filled them and when.
template <class T>
StepRecord Trainer<T>::step() {
  profile::set_step(steps_ + 1);
  profile::Scope step_scope("step", profile::Phase::step);
  const index_t epoch = steps_ / per_epoch_, b = steps_ % per_epoch_;
  if (order_epoch_ != epoch) {
    profile::Scope s("shuffle", profile::Phase::data);
    make_order(epoch);
  }
  const index_t begin = b * batch_, end = std::min(begin + batch_, train_.size);
  const index_t n = end - begin;
  const index_t count = spec_.loss_count(n);  // the divisor of every shard's loss
  StepRecord rec;
  rec.epoch = epoch;
  rec.images = n;
  const index_t shards = opt_.shards;
  const std::span<const index_t> batch(order_.data() + begin, static_cast<std::size_t>(n));
  shards_.reset(shards);
  // (no structured bindings: clang cannot capture them in OpenMP regions)
  const std::pair<index_t, index_t> range = combiner_->shard_range(shards);  // all, in one process
  const index_t first = range.first, last = range.second;
  const std::pair<int, int> tg = thread_groups(omp_get_max_threads());
  const int groups = tg.first, inner = tg.second;
  while (workers_.size() < static_cast<std::size_t>(groups)) workers_.push_back(std::make_unique<Worker>());
  if (groups == 1) {
    for (index_t s = first; s < last; ++s) run_shard(*workers_[0], s, batch, count);
  } else {
    // A span on this thread covering the shards' wall time; the groups' own spans (batch,
    // ops) are logged on their threads (profile_summary.hpp attributes them to the step).
    profile::Scope sc("shards", profile::Phase::shards);
    if (inner > 1 && omp_get_max_active_levels() < 2) omp_set_max_active_levels(2);
    std::exception_ptr error;
#pragma omp parallel num_threads(groups)
    {
      omp_set_num_threads(inner);  // this group's kernels (a per-thread setting)
      Worker& w = *workers_[static_cast<std::size_t>(omp_get_thread_num())];
#pragma omp for schedule(dynamic, 1)
      for (index_t s = first; s < last; ++s) {
        try {
          run_shard(w, s, batch, count);
        } catch (...) {
#pragma omp critical(tapegrad_trainer_error)
          if (!error) error = std::current_exception();
        }
      }
    }
    if (error) std::rethrow_exception(error);
  }
  combiner_->combine(shards_, params_);  // every shard's loss and gradient, summed in shard order
  for (index_t s = 0; s < shards; ++s) {
    rec.loss += shards_.loss[static_cast<std::size_t>(s)];
    rec.correct += shards_.correct[static_cast<std::size_t>(s)];
  }
  {
    profile::Scope s(optim_.config().name == "sgd" ? "sgd" : "adam", profile::Phase::update);
    optim_.step(params_);
  }
  rec.step = ++steps_;
  return rec;
}

template <class T>
Evaluation Trainer<T>::evaluate(const data::Dataset& d) {
  profile::set_step(-1);
  profile::Scope eval_scope("evaluate", profile::Phase::eval);
  check_fits(spec_, d);
  Evaluation ev;
  ev.images = d.size;
  ev.classes = d.classes;
  if (d.classification()) ev.confusion.assign(static_cast<std::size_t>(d.classes * d.classes), 0);
  const index_t count = spec_.loss_count(d.size);  // each batch's loss is a share of the mean
  std::vector<index_t> idx;
  Tape<T> tape;
  Tensor<T> x;
  Targets<T> t;
  for (index_t begin = 0; begin < d.size; begin += opt_.eval_batch) {
    const index_t end = std::min(begin + opt_.eval_batch, d.size);
    idx.resize(static_cast<std::size_t>(end - begin));
    std::iota(idx.begin(), idx.end(), begin);
    data::fill_batch(d, idx, x, t);
    tape.clear();
    const auto ps = record_params(tape, params_, /*requires_grad=*/false);
    const auto out = record_output(spec_, tape.view(x, false), ps, opt_.fusion);
    ev.loss += static_cast<double>(record_loss(spec_, out, t, count).value()[0]);
    ev.correct += visit_loss_kind(spec_.loss, [&](auto l) { return decltype(l)::correct(out.value(), t); });
    if (d.classification()) {
      const Tensor<T>& z = out.value();
      for (index_t i = 0; i < z.size(0); ++i)
        ++ev.confusion[static_cast<std::size_t>(t.labels[static_cast<std::size_t>(i)] * d.classes +
                                                argmax_row(z, i))];
    }
  }
  return ev;
}

template class Trainer<float>;
template class Trainer<double>;

}  // namespace tapegrad::train
