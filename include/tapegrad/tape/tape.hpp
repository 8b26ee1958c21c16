// The op tape: reverse mode over tensor ops, Stan Math style.
//
//   Tape<T> tape;
//   auto x = tape.leaf(x_value);                 // requires_grad = true
//   auto w = tape.leaf(w_value);
//   auto t = tape.constant(target);              // never gets a gradient
//   auto loss = ops::mse_loss(ops::linear(x, w, std::nullopt), t);
//   tape.backward(loss);                         // loss must hold one element
//   const Tensor<T>& dw = tape.grad(w);
//   tape.clear();                                // next iteration; capacity is kept
//
// Parameters and batches owned elsewhere (net/params.hpp's ParamSet, a data loader) are
// recorded without a copy: `tape.view(param_value)` records a leaf that refers to the caller's
// tensor, which must stay alive and unchanged until the tape is cleared; after backward(),
// `tape.take_grad(handle, dest)` moves the gradient into the caller's tensor (no copy either).
//
// Every value (leaf or op output) lives in one append-only vector owned by the tape; a
// TapeTensor<T> is a (tape, id) handle, cheap to copy and capture. Each op appends one record
// (its name, its output id and its VJP closure). backward() is a plain newest-first loop over
// the records: recording order is already topological, so there is no graph search and no
// recursion. VJP closures return fresh tensors and only Grads<T>::add accumulates, so a tensor
// used twice (y = x * x, a residual connection, a shared weight) gets the sum of both uses.
// Closures capture handles, not owning pointers: no shared_ptr, hence no cycles and no leaks.
#pragma once

#include <cassert>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/tape/profile.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

template <class T>
class Tape;
template <class T>
class Grads;

// A handle to a tensor recorded on a tape. Valid until the tape is cleared (checked by assert
// through the tape's generation counter).
template <class T>
class TapeTensor {
 public:
  TapeTensor() = default;

  const Tensor<T>& value() const { return tape_->value_of_id(id_, generation_); }
  const Shape& shape() const { return value().shape(); }
  bool requires_grad() const { return tape_->requires_grad_of_id(id_, generation_); }
  Tape<T>& tape() const { return *tape_; }
  index_t id() const { return id_; }

 private:
  friend class Tape<T>;
  TapeTensor(Tape<T>* tape, index_t id, std::uint64_t gen)
      : tape_(tape), id_(id), generation_(gen) {}

  Tape<T>* tape_ = nullptr;
  index_t id_ = -1;
  std::uint64_t generation_ = 0;
};

// Gradient accumulators, one optional slot per tape value. Only add() accumulates.
template <class T>
class Grads {
 public:
  // grads[t] += g (g moved in when the slot is still empty).
  void add(const TapeTensor<T>& t, Tensor<T>&& g) {
    auto& slot = slots_[static_cast<std::size_t>(t.id())];
    assert(g.shape() == t.shape());
    if (!slot) {
      slot = std::move(g);
    } else {
      T* acc = slot->data();
      const T* src = g.data();
      for (index_t i = 0, n = g.numel(); i < n; ++i) acc[i] += src[i];
    }
  }
  bool has(index_t id) const {
    return id >= 0 && static_cast<std::size_t>(id) < slots_.size() &&
           slots_[static_cast<std::size_t>(id)].has_value();
  }
  const Tensor<T>& at(index_t id) const { return *slots_[static_cast<std::size_t>(id)]; }
  void release(index_t id) { slots_[static_cast<std::size_t>(id)].reset(); }

 private:
  friend class Tape<T>;
  std::vector<std::optional<Tensor<T>>> slots_;
};

template <class T>
class Tape {
 public:
  using Backward =
      std::function<void(const Tensor<T>& y, const Tensor<T>& dy, Grads<T>& grads)>;

  Tape() = default;
  Tape(const Tape&) = delete;  // handles point at the tape: it must not move or copy
  Tape& operator=(const Tape&) = delete;

  // A leaf: an input or a parameter. Its gradient is kept by backward() iff requires_grad.
  TapeTensor<T> leaf(Tensor<T> v, bool requires_grad = true) {
    return push(std::move(v), requires_grad, /*leaf=*/true);
  }
  // A leaf that never gets a gradient (targets, fixed data).
  TapeTensor<T> constant(Tensor<T> v) { return push(std::move(v), false, /*leaf=*/true); }

  // A leaf that refers to the caller's tensor instead of copying it (parameters, batches).
  // `v` must outlive every use of the handle and stay unchanged until clear().
  TapeTensor<T> view(const Tensor<T>& v, bool requires_grad = true) {
    TapeTensor<T> t = push(Tensor<T>(Shape{0}), requires_grad, /*leaf=*/true);
    views_[static_cast<std::size_t>(t.id())] = &v;
    return t;
  }

  // What a VJP will cost, for the profiler's backward spans (tape/profile.hpp): its floating-
  // point operations and, when tracing, a description (the op's geometry).
  struct Cost {
    double flops = 0;
    std::string args;
  };

  // Appends the output of an op and its VJP. The output requires a gradient iff any input
  // does; when none does, the VJP is not even stored. The VJP is called as
  // backward(dy, grads), or backward(y, dy, grads) when it needs the op's own output y
  // (sigmoid, tanh, softmax: their derivatives are cheapest from y).
  template <class F>
  TapeTensor<T> record(const char* op, Tensor<T> y,
                       std::initializer_list<std::optional<TapeTensor<T>>> inputs,
                       F backward, Cost cost = {}) {
    bool needs = false;
    for (const auto& in : inputs)
      if (in) {
        assert(&in->tape() == this);
        needs = needs || in->requires_grad();
      }
    TapeTensor<T> out = push(std::move(y), needs, /*leaf=*/false);
    if (needs) {
      if constexpr (std::is_invocable_v<F&, const Tensor<T>&, const Tensor<T>&, Grads<T>&>) {
        records_.push_back(Record{op, out.id(), Backward(std::move(backward)), std::move(cost)});
      } else {
        static_assert(std::is_invocable_v<F&, const Tensor<T>&, Grads<T>&>,
                      "a VJP is called as (dy, grads) or (y, dy, grads)");
        records_.push_back(Record{
            op, out.id(),
            Backward([f = std::move(backward)](const Tensor<T>&, const Tensor<T>& dy,
                                               Grads<T>& grads) { f(dy, grads); }),
            std::move(cost)});
      }
    }
    return out;
  }

  // Reverse sweep from a one-element tensor (the loss), seeded with dloss/dloss = 1.
  // Fills the gradient of every tensor that requires one and is reached from the loss.
  // Calling backward() again first discards the previous gradients.
  void backward(const TapeTensor<T>& loss) {
    check_arg(loss.value().numel() == 1, "backward", "loss has shape ", loss.shape(),
              ", expected one element");
    grads_.slots_.clear();
    grads_.slots_.resize(values_.size());
    if (!loss.requires_grad()) return;
    grads_.add(loss, Tensor<T>(loss.shape(), T(1)));
    for (auto it = records_.rbegin(); it != records_.rend(); ++it) {
      if (!grads_.has(it->out)) continue;  // not on a path to the loss
      profile::Scope scope(it->op, profile::Phase::backward);
      if (scope.active()) {
        scope.flops(it->cost.flops);
        if (scope.tracing()) scope.args(it->cost.args);
      }
      it->backward(value_of_id(it->out, generation_), grads_.at(it->out), grads_);
      if (!is_leaf_[static_cast<std::size_t>(it->out)]) grads_.release(it->out);
    }
  }

  // The gradient of the loss w.r.t. t after backward(); zeros when t does not reach the loss.
  // Intermediate (non-leaf) gradients are released during the sweep and read as zeros too.
  Tensor<T> grad(const TapeTensor<T>& t) const {
    if (grads_.has(t.id())) return grads_.at(t.id());
    return Tensor<T>(t.shape());
  }

  // Moves t's gradient after backward() into `dest` (no copy; zeros of t's shape when t does
  // not reach the loss). The tape's slot is empty afterwards: grad(t) then reads zeros.
  void take_grad(const TapeTensor<T>& t, Tensor<T>& dest) {
    const auto id = static_cast<std::size_t>(t.id());
    if (grads_.has(t.id())) {
      dest = std::move(*grads_.slots_[id]);
      grads_.slots_[id].reset();
    } else {
      if (dest.shape() != t.shape()) dest = Tensor<T>(t.shape());
      dest.fill(T(0));
    }
  }

  // Forget every value, record and gradient; the vectors keep their capacity. Handles from
  // before the clear become invalid.
  void clear() {
    values_.clear();
    views_.clear();
    requires_grad_.clear();
    is_leaf_.clear();
    records_.clear();
    grads_.slots_.clear();
    ++generation_;
  }

  std::size_t num_values() const { return values_.size(); }
  std::size_t num_records() const { return records_.size(); }
  // Op names of the records, oldest first (for profiles and tests).
  std::vector<std::string> record_names() const {
    std::vector<std::string> names;
    for (const auto& r : records_) names.emplace_back(r.op);
    return names;
  }

  // Used by TapeTensor.
  const Tensor<T>& value_of_id(index_t id, std::uint64_t gen) const {
    assert(gen == generation_ && id >= 0 && static_cast<std::size_t>(id) < values_.size());
    (void)gen;
    const Tensor<T>* v = views_[static_cast<std::size_t>(id)];
    return v ? *v : values_[static_cast<std::size_t>(id)];
  }
  bool requires_grad_of_id(index_t id, std::uint64_t gen) const {
    assert(gen == generation_ && id >= 0 && static_cast<std::size_t>(id) < values_.size());
    (void)gen;
    return requires_grad_[static_cast<std::size_t>(id)];
  }

 private:
  struct Record {
    const char* op;
    index_t out;
    Backward backward;
    Cost cost;
  };

  TapeTensor<T> push(Tensor<T> v, bool requires_grad, bool leaf = false) {
    values_.push_back(std::move(v));
    views_.push_back(nullptr);
    requires_grad_.push_back(requires_grad);
    is_leaf_.push_back(leaf);
    return TapeTensor<T>(this, static_cast<index_t>(values_.size() - 1), generation_);
  }

  // std::deque would keep references stable across push_back; a vector is fine because a
  // value is only read through its id, never through a reference held across a push.
  std::vector<Tensor<T>> values_;
  std::vector<const Tensor<T>*> views_;  // per value: the caller's tensor (view leaves) or null
  std::vector<bool> requires_grad_;
  std::vector<bool> is_leaf_;
  std::vector<Record> records_;
  Grads<T> grads_;
  std::uint64_t generation_ = 0;
};

}  // namespace tapegrad
