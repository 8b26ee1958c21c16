// Var<T>: the scalar tape. A scalar whose arithmetic is recorded, so that one reverse sweep
// gives d(output)/d(every input). Running a generic reference kernel on Tensor<Var<T>> derives
// its gradient with no hand-written VJP at all (path #2 of DESIGN.md).
//
//   VarTape<double> tape;                  // installed as this thread's current tape
//   Var<double> x = tape.variable(1.5);
//   Var<double> y = x * exp(x) + 2.0;
//   tape.backward(y);
//   double dx = tape.adjoint(x);           // (1 + x) e^x
//
// Model: Stan Math's reverse mode, micrograd's size.
//  - A tape is an append-only arena of records, 32 bytes each for double: up to two parent
//    indices, the local partial d(node)/d(parent) for each, and the node's adjoint (kept in
//    the record as in Stan's vari, so backward() allocates nothing and touches no fresh
//    memory). Records hold no closure and no pointer. The arena is a list of fixed blocks of
//    2^16 records: growing allocates one more block and never copies or moves the old ones (no
//    2x peak, no reallocation spike), and clear() keeps every block for the next recording.
//  - Recording order is topological (a node's parents exist before it), so backward() is one
//    newest-first loop: adj[parent] += partial * adj[node]. Accumulation with += is what makes
//    a value used twice (x * x) correct.
//  - A Var is (value, node index, tape id); 16 bytes for double. Constants -- Var<T>(0),
//    Var<T>(1.5), Var<T>(int), the plain operand of x * 2.0 -- have no node at all, and an
//    operation whose operands are all constants records nothing. Kernels make many T(0)s; they
//    cost nothing on the tape.
//  - Operations: + - * / (Var or plain T/double/int on either side), += -= *= /=, unary -,
//    exp log tanh sqrt abs sin cos (found by ADL), comparisons == != < > <= >=.
//
// Which tape records (the rule for nested and parallel tapes):
//  - Each thread has its own current tape per scalar type, installed by constructing a
//    VarTape<T> and restored to the previous one by its destructor. Tapes on one thread must
//    therefore be strictly nested (LIFO, which scopes give you; asserted); VarTape is neither
//    copyable nor movable, and is used on the thread that constructed it. Tapes on different
//    threads never share anything, so threads may record in parallel, each on its own tape.
//  - A Var belongs to the tape (and the clear() generation of it) that created it, and may be
//    combined only while that tape is current on the calling thread. Every recorded operation
//    checks this with one integer compare and throws std::logic_error otherwise -- using a Var
//    of an outer tape inside an inner one, of another thread's tape, or after clear(), is a
//    bug caught at the operation, never a silently wrong gradient.
//
// NOTE (non-differentiable points, one convention):
//  - abs'(0) = 0 (the minimum-norm subgradient; matches relu'(0) = 0).
//  - sqrt'(0) = +inf, log'(0) = +inf: the true one-sided limits, not hidden.
//  - Comparisons look at values only and carry no gradient; a branch on a comparison
//    (relu as `v > 0 ? v : 0`, max-pool's argmax) records only the branch taken.
//  - backward() skips nodes whose adjoint is exactly zero, so a node that does not lie on a
//    path to the output contributes nothing, even if its partial is inf or NaN (sqrt(0)
//    computed but unused does not poison the gradient of x).
#pragma once

#include <atomic>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

template <class T>
class Var;
template <class T>
class VarTape;

namespace var_detail {
// Tape ids: unique per (tape, clear generation); 0 means "no tape" (a constant).
inline std::uint32_t next_tape_id() {
  static std::atomic<std::uint32_t> counter{0};
  std::uint32_t id = ++counter;
  if (id == 0) id = ++counter;  // after 2^32 tapes/clears: skip the constant's id
  return id;
}
}  // namespace var_detail

template <class T>
class VarTape {
 public:
  using node_index = std::int32_t;  // 2^31 nodes (~50 GB for double) is beyond any real use
  static constexpr node_index none = -1;

  // One record: node = op(parent a, parent b); da = d node / d a, db = d node / d b; adj is
  // d output / d node, filled by backward(). A leaf has no parents; a unary op (or x op
  // constant) has only a.
  struct Node {
    node_index a = none, b = none;
    T da{}, db{}, adj{};
  };

  VarTape() : id_(var_detail::next_tape_id()), previous_(current_) { current_ = this; }
  ~VarTape() {
    assert(current_ == this && "VarTapes on one thread must be destroyed in LIFO order");
    current_ = previous_;
  }
  VarTape(const VarTape&) = delete;
  VarTape& operator=(const VarTape&) = delete;

  // This thread's current tape of scalar type T, or nullptr.
  static VarTape* current() { return current_; }

  // A new independent variable (a leaf) holding value v.
  Var<T> variable(const T& v) { return Var<T>(v, push(none, T(0), none, T(0)), id_); }

  // Seeds d output / d output = 1 and sweeps newest-first; afterwards adjoint(v) is
  // d output / d v for every v on this tape. Adjoints are reset first (each call is a fresh
  // sweep). A constant output gives all-zero adjoints.
  void backward(const Var<T>& output) {
    reset_adjoints();
    if (output.is_constant()) return;
    check_owned(output, "backward");
    node(static_cast<std::size_t>(output.index_)).adj = T(1);
    sweep(output.index_);
  }

  // Vector-Jacobian product: seeds adjoint(outputs[i]) += seeds[i] and sweeps, so that
  // afterwards adjoint(v) = sum_i seeds[i] * d outputs[i] / d v. Shapes must match.
  void backward(const Tensor<Var<T>>& outputs, const Tensor<T>& seeds) {
    check_shape("VarTape::backward", "seeds", seeds.shape(), outputs.shape());
    reset_adjoints();
    node_index newest = none;
    for (index_t i = 0; i < outputs.numel(); ++i) {
      const Var<T>& y = outputs[i];
      if (y.is_constant()) continue;
      check_owned(y, "backward");
      node(static_cast<std::size_t>(y.index_)).adj += seeds[i];
      if (y.index_ > newest) newest = y.index_;
    }
    if (newest != none) sweep(newest);
  }

  // d output / d v after backward(); 0 for a constant, and for a node recorded after the
  // output or before any backward().
  T adjoint(const Var<T>& v) const {
    if (v.is_constant()) return T(0);
    check_owned(v, "adjoint");
    const auto i = static_cast<std::size_t>(v.index_);
    return i < size_ ? node(i).adj : T(0);
  }

  index_t size() const { return static_cast<index_t>(size_); }
  // Nodes the tape can hold before allocating another block.
  std::size_t capacity() const { return blocks_.size() * block_size; }
  // Bytes per recorded node, adjoint included (32 for double).
  static constexpr std::size_t bytes_per_node() { return sizeof(Node); }
  void reserve(index_t n) {
    while (capacity() < static_cast<std::size_t>(n)) add_block();
  }

  // Forgets every node but keeps the memory, so a training-style loop records without
  // allocating. Vars made before clear() are invalidated (their use throws).
  void clear() {
    size_ = 0;
    id_ = var_detail::next_tape_id();
  }

  std::uint32_t id() const { return id_; }

 private:
  friend class Var<T>;

  static constexpr std::size_t block_bits = 16;
  static constexpr std::size_t block_size = std::size_t{1} << block_bits;

  Node& node(std::size_t i) { return blocks_[i >> block_bits][i & (block_size - 1)]; }
  const Node& node(std::size_t i) const {
    return blocks_[i >> block_bits][i & (block_size - 1)];
  }

  void add_block() {
    if (capacity() >= static_cast<std::size_t>(std::numeric_limits<node_index>::max()))
      throw std::length_error("VarTape: more than 2^31 - 1 nodes");
    blocks_.push_back(std::make_unique<Node[]>(block_size));
  }

  node_index push(node_index a, const T& da, node_index b, const T& db) {
    if (size_ == capacity()) add_block();
    Node& n = node(size_);
    n.a = a;
    n.b = b;
    n.da = da;
    n.db = db;
    n.adj = T(0);
    return static_cast<node_index>(size_++);
  }

  void check_owned(const Var<T>& v, const char* what) const {
    if (v.tape_ != id_)
      throw std::logic_error(std::string("VarTape::") + what +
                             ": the variable belongs to another tape (or to this tape before "
                             "clear())");
  }

  void reset_adjoints() {
    const T zero(0);
    for (std::size_t i = 0; i < size_; ++i) node(i).adj = zero;
  }

  void sweep(node_index newest) {
    const T zero(0);
    for (node_index i = newest; i >= 0; --i) {
      const auto ui = static_cast<std::size_t>(i);
      const Node& n = node(ui);
      if (n.adj == zero) continue;  // not on a path to the output: contributes nothing
      if (n.a != none) node(static_cast<std::size_t>(n.a)).adj += n.da * n.adj;
      if (n.b != none) node(static_cast<std::size_t>(n.b)).adj += n.db * n.adj;
    }
  }

  std::vector<std::unique_ptr<Node[]>> blocks_;  // the arena: full blocks, then the open one
  std::size_t size_ = 0;                          // nodes recorded since the last clear()
  std::uint32_t id_;
  VarTape* previous_;
  static inline thread_local VarTape* current_ = nullptr;
};

template <class T>
class Var {
 public:
  using value_type = T;

  Var() : value_(0) {}
  // A constant: no tape node. From T, or from any arithmetic type (int, double, ...).
  template <class U>
    requires(std::is_arithmetic_v<U> || std::is_same_v<U, T>)
  Var(const U& v) : value_(static_cast<T>(v)) {}  // NOLINT: implicit, so x * 2.0 reads well

  const T& value() const { return value_; }
  bool is_constant() const { return index_ < 0; }
  bool is_variable() const { return index_ >= 0; }

  Var& operator+=(const Var& o) { return *this = *this + o; }
  Var& operator-=(const Var& o) { return *this = *this - o; }
  Var& operator*=(const Var& o) { return *this = *this * o; }
  Var& operator/=(const Var& o) { return *this = *this / o; }

  // Arithmetic. A plain operand (T, double, int) converts to a constant Var; the record then
  // has one parent. Each op: value, then the local partials (d/da, d/db).
  friend Var operator+(const Var& a, const Var& b) {
    return binary(a.value_ + b.value_, a, T(1), b, T(1));
  }
  friend Var operator-(const Var& a, const Var& b) {
    return binary(a.value_ - b.value_, a, T(1), b, T(-1));
  }
  friend Var operator*(const Var& a, const Var& b) {
    return binary(a.value_ * b.value_, a, b.value_, b, a.value_);
  }
  friend Var operator/(const Var& a, const Var& b) {
    // q = a / b:  dq/da = 1 / b,  dq/db = -a / b^2 = -q / b
    const T q = a.value_ / b.value_;
    if (a.is_constant() && b.is_constant()) return Var(q);
    return binary(q, a, T(1) / b.value_, b, -q / b.value_);
  }
  friend Var operator-(const Var& a) { return unary(-a.value_, a, T(-1)); }
  friend Var operator+(const Var& a) { return a; }

  // Functions, found by argument-dependent lookup (`using std::exp; exp(x)` in generic code).
  friend Var exp(const Var& a) {
    using std::exp;
    const T y = exp(a.value_);
    return unary(y, a, y);  // exp' = exp
  }
  friend Var log(const Var& a) {
    using std::log;
    if (a.is_constant()) return Var(T(log(a.value_)));
    return unary(T(log(a.value_)), a, T(1) / a.value_);  // log'(x) = 1/x
  }
  friend Var tanh(const Var& a) {
    using std::tanh;
    const T y = tanh(a.value_);
    if (a.is_constant()) return Var(y);
    return unary(y, a, T(1) - y * y);  // tanh' = 1 - tanh^2
  }
  friend Var sqrt(const Var& a) {
    using std::sqrt;
    const T y = sqrt(a.value_);
    if (a.is_constant()) return Var(y);
    return unary(y, a, T(1) / (y + y));  // sqrt'(x) = 1 / (2 sqrt(x)); +inf at 0
  }
  friend Var abs(const Var& a) {
    using std::abs;
    // NOTE: abs'(0) = 0 by convention (see the header comment).
    const T zero(0);
    const T slope = a.value_ > zero ? T(1) : (a.value_ < zero ? T(-1) : zero);
    return unary(T(abs(a.value_)), a, slope);
  }
  friend Var sin(const Var& a) {
    using std::cos;
    using std::sin;
    if (a.is_constant()) return Var(T(sin(a.value_)));
    return unary(T(sin(a.value_)), a, T(cos(a.value_)));
  }
  friend Var cos(const Var& a) {
    using std::cos;
    using std::sin;
    if (a.is_constant()) return Var(T(cos(a.value_)));
    return unary(T(cos(a.value_)), a, T(-sin(a.value_)));
  }

  // Comparisons: on values only; they carry no gradient.
  friend bool operator==(const Var& a, const Var& b) { return a.value_ == b.value_; }
  friend bool operator!=(const Var& a, const Var& b) { return a.value_ != b.value_; }
  friend bool operator<(const Var& a, const Var& b) { return a.value_ < b.value_; }
  friend bool operator>(const Var& a, const Var& b) { return a.value_ > b.value_; }
  friend bool operator<=(const Var& a, const Var& b) { return a.value_ <= b.value_; }
  friend bool operator>=(const Var& a, const Var& b) { return a.value_ >= b.value_; }

  friend std::ostream& operator<<(std::ostream& os, const Var& v) {
    return os << v.value_ << (v.is_constant() ? "" : "(var)");
  }

 private:
  friend class VarTape<T>;
  using node_index = typename VarTape<T>::node_index;

  Var(const T& v, node_index index, std::uint32_t tape) : value_(v), index_(index), tape_(tape) {}

  // The current tape, after checking that every variable operand was made on it.
  static VarTape<T>& tape_for(const Var& a, const Var* b) {
    VarTape<T>* t = VarTape<T>::current();
    const std::uint32_t want = t ? t->id_ : 0;
    if ((a.is_variable() && a.tape_ != want) || (b && b->is_variable() && b->tape_ != want))
      throw std::logic_error(
          t ? "Var: operand belongs to another tape than the current one (or was made before "
              "clear()); see the tape rule in var/var.hpp"
            : "Var: operation on a variable with no VarTape current on this thread");
    return *t;
  }

  static Var unary(const T& y, const Var& a, const T& da) {
    if (a.is_constant()) return Var(y);
    VarTape<T>& t = tape_for(a, nullptr);
    return Var(y, t.push(a.index_, da, VarTape<T>::none, T(0)), t.id_);
  }

  static Var binary(const T& y, const Var& a, const T& da, const Var& b, const T& db) {
    if (a.is_constant()) return unary(y, b, db);
    if (b.is_constant()) return unary(y, a, da);
    VarTape<T>& t = tape_for(a, &b);
    return Var(y, t.push(a.index_, da, b.index_, db), t.id_);
  }

  T value_;
  node_index index_ = VarTape<T>::none;
  std::uint32_t tape_ = 0;
};

// The plain value of a Var (overloads value_of in scalar.hpp).
template <class T>
const T& value_of(const Var<T>& v) {
  return v.value();
}

template <class T>
bool is_finite(const Var<T>& v) {
  return is_finite(v.value());
}

// A tensor of fresh variables (leaves) on `tape`, one per element of `x`.
template <class T>
Tensor<Var<T>> make_variables(VarTape<T>& tape, const Tensor<T>& x) {
  std::vector<Var<T>> out;
  out.reserve(static_cast<std::size_t>(x.numel()));
  for (const T& v : x) out.push_back(tape.variable(v));
  return Tensor<Var<T>>(x.shape(), std::move(out));
}

// A tensor of constants (no nodes): for inputs that need no gradient.
template <class T>
Tensor<Var<T>> make_constants(const Tensor<T>& x) {
  return map(x, [](const T& v) { return Var<T>(v); });
}

// The values of a tensor of Vars.
template <class T>
Tensor<T> values(const Tensor<Var<T>>& x) {
  return map(x, [](const Var<T>& v) { return v.value(); });
}

// d output / d x[i] for every element, after tape.backward(output).
template <class T>
Tensor<T> adjoints(const VarTape<T>& tape, const Tensor<Var<T>>& x) {
  return map(x, [&tape](const Var<T>& v) { return tape.adjoint(v); });
}

}  // namespace tapegrad
