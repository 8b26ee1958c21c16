// The MPI gradient combination; see include/tapegrad/dist/mpi_combine.hpp.
#include "tapegrad/dist/mpi_combine.hpp"

#include <cstdint>
#include <cstring>
#include <string>

namespace tapegrad::dist {

void check_ranks_fit(index_t shards, int ranks) {
  if (ranks <= shards) return;
  std::string m = std::to_string(ranks);
  m += " ranks but --shards ";
  m += std::to_string(shards);
  m += ": every rank computes whole shards, so give --shards ";
  m += std::to_string(ranks);
  m += " or more (the shard count fixes the result's bits; the ranks only share the shards out)";
  throw std::invalid_argument(m);
}

namespace {
struct Header {
  double loss;
  std::int64_t correct;
  std::int64_t present;  // 0: the shard was empty (more shards than samples in the batch)
};
static_assert(sizeof(Header) == 24);
}  // namespace

template <class T>
void MpiCombiner<T>::combine(ShardResults<T>& r, ParamSet<T>& params) {
  const auto shards = static_cast<index_t>(r.grads.size());
  const auto [first, last] = shard_range(shards);
  std::size_t numel = 0;
  for (const auto& p : params) numel += static_cast<std::size_t>(p.value.numel());
  const std::size_t record = sizeof(Header) + numel * sizeof(T);

  // Pack this rank's shards, in shard order.
  send_.resize(static_cast<std::size_t>(last - first) * record);
  for (index_t s = first; s < last; ++s) {
    std::byte* at = send_.data() + static_cast<std::size_t>(s - first) * record;
    const auto& g = r.grads[static_cast<std::size_t>(s)];
    const Header h{r.loss[static_cast<std::size_t>(s)], r.correct[static_cast<std::size_t>(s)],
                   g.empty() ? 0 : 1};
    std::memcpy(at, &h, sizeof h);
    at += sizeof h;
    if (g.empty()) {
      std::memset(at, 0, numel * sizeof(T));
      continue;
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      check_shape("combine", params[i].name, g[i].shape(), params[i].value.shape());
      const std::size_t n = static_cast<std::size_t>(g[i].numel()) * sizeof(T);
      std::memcpy(at, g[i].data(), n);
      at += n;
    }
  }
  std::vector<int> records(static_cast<std::size_t>(job_.size()));
  for (int q = 0; q < job_.size(); ++q) {
    const auto [a, b] = rank_shards(shards, q, job_.size());
    records[static_cast<std::size_t>(q)] = static_cast<int>(b - a);
  }
  recv_.resize(static_cast<std::size_t>(shards) * record);
  {
    profile::Scope s("wait", profile::Phase::combine);
    job_.barrier();
  }
  {
    profile::Scope s("allgather", profile::Phase::combine);
    if (s.tracing()) s.args(std::to_string(shards * static_cast<index_t>(record)) + " bytes received");
    job_.allgatherv(send_.data(), recv_.data(), records, record);
  }
  // Unpack the other ranks' shards (this rank's own are still in r).
  for (index_t s = 0; s < shards; ++s) {
    if (s >= first && s < last) continue;
    const std::byte* at = recv_.data() + static_cast<std::size_t>(s) * record;
    Header h;
    std::memcpy(&h, at, sizeof h);
    at += sizeof h;
    r.loss[static_cast<std::size_t>(s)] = h.loss;
    r.correct[static_cast<std::size_t>(s)] = h.correct;
    auto& g = r.grads[static_cast<std::size_t>(s)];
    g.clear();
    if (!h.present) continue;
    for (const auto& p : params) {
      Tensor<T> t(p.value.shape());
      const std::size_t n = static_cast<std::size_t>(t.numel()) * sizeof(T);
      std::memcpy(t.data(), at, n);
      at += n;
      g.push_back(std::move(t));
    }
  }
  Combiner<T>::combine(r, params);  // the sum in shard order, as in one process
}

template class MpiCombiner<float>;
template class MpiCombiner<double>;

}  // namespace tapegrad::dist
