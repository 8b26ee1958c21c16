// The trainer: see include/tapegrad/train/trainer.hpp.
#include "tapegrad/train/trainer.hpp"

#include <algorithm>
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
  const auto [first, last] = combiner_->shard_range(shards);  // all of them in one process
  for (index_t s = first; s < last; ++s) {
    auto& grads = shards_.grads[static_cast<std::size_t>(s)];
    const index_t lo = n * s / shards, hi = n * (s + 1) / shards;
    if (lo == hi) continue;  // more shards than samples: this one is empty
    {
      profile::Scope s("batch", profile::Phase::data);
      data::fill_batch(train_, batch.subspan(static_cast<std::size_t>(lo),
                                             static_cast<std::size_t>(hi - lo)),
                       x_, t_);
    }
    tape_.clear();
    const auto ps = record_params(tape_, params_);
    const auto out = record_output(spec_, tape_.view(x_, false), ps);
    const auto loss = record_loss(spec_, out, t_, count);
    shards_.loss[static_cast<std::size_t>(s)] = static_cast<double>(loss.value()[0]);
    shards_.correct[static_cast<std::size_t>(s)] = visit_loss_kind(spec_.loss, [&](auto l) {
      return decltype(l)::correct(out.value(), t_);
    });
    tape_.backward(loss);
    grads.resize(params_.size());
    for (std::size_t i = 0; i < ps.size(); ++i) tape_.take_grad(ps[i], grads[i]);
  }
  tape_.clear();  // the tape held views of x_: drop them before x_ is refilled
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
    const auto out = record_output(spec_, tape.view(x, false), ps);
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
