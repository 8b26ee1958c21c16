// The gradient combination of an MPI job: the same sum, to the bit, as one process, whatever
// the number of ranks P.
//
// Rank r of P computes the contiguous shards [S r / P, S (r+1) / P) of the S shards of a step
// (S is the recipe's, independent of P; P > S is refused before training, see
// check_ranks_fit). Each shard's result is packed into one record of fixed size,
//
//   [ loss (double) | correct (int64) | present (int64) | grad of param 0 | param 1 | ... ]
//
// and MPI_Allgatherv puts rank r's records at the offset of its first shard, so every rank
// receives the records of shards 0, 1, ..., S-1 in shard order whatever P is. Every rank then
// sums them with sum_in_shard_order, exactly as one process does.
//
// Why this is exact:
//   1. A shard's gradient is the same bits whichever rank computes it: every rank holds the
//      same parameters (the same start, checked at start-up, then the same updates), the
//      shard's samples are fixed by (seed, epoch, step, shard), and the kernels give the same
//      bits for any thread count on one instruction set (the start-up agreement checks that the
//      ranks use the same one).
//   2. MPI_Allgatherv only moves bytes (MPI_BYTE in a contiguous type): no conversion, no
//      arithmetic, no order of anything left to MPI.
//   3. The only arithmetic is sum_in_shard_order: the same additions, in the same order, on
//      every rank and in one process.
// A plain MPI_Allreduce(MPI_SUM) would move less, but MPI leaves its reduction order to the
// implementation (it depends on P, the algorithm chosen for the message size, the topology),
// so its bits would depend on P. Nor can a rank add its own shards up first: with shards 2 and
// 3 on one rank, (g0 + g1) + (g2 + g3) is not ((g0 + g1) + g2) + g3 in floating point.
// The price: every rank receives all S gradients (S x the parameters per step, not ~2x).
//
// Profiled apart, inside each step: "wait" (an MPI_Barrier: until the slowest rank has
// finished its shards), "allgather" (the transfer), "combine" (the sum), all Phase::combine,
// so compute, waiting and communication can be told apart.
#pragma once

#include <cstddef>
#include <vector>

#include "tapegrad/dist/combine.hpp"
#include "tapegrad/dist/mpi.hpp"

namespace tapegrad::dist {

// The shards [first, second) of `shards` that rank `rank` of `ranks` computes.
inline std::pair<index_t, index_t> rank_shards(index_t shards, int rank, int ranks) {
  return {shards * rank / ranks, shards * (rank + 1) / ranks};
}

// Throws std::invalid_argument unless every rank holds at least one shard (ranks <= shards).
void check_ranks_fit(index_t shards, int ranks);

template <class T>
class MpiCombiner : public Combiner<T> {
 public:
  explicit MpiCombiner(const Job& job) : job_(job) {}
  std::pair<index_t, index_t> shard_range(index_t shards) const override {
    return rank_shards(shards, job_.rank(), job_.size());
  }
  void combine(ShardResults<T>& r, ParamSet<T>& params) override;

 private:
  const Job& job_;
  std::vector<std::byte> send_, recv_;  // reused every step
};

extern template class MpiCombiner<float>;
extern template class MpiCombiner<double>;

}  // namespace tapegrad::dist
