// tapegrad scale --ranks 1,2,4 [--threads 1,2]: the ranks x threads sweep of data-parallel
// training (a tapegrad built with TAPEGRAD_MPI).
//
// A process cannot change how many ranks it belongs to, so the sweep runs the training as
// child processes: for every rank count P and thread count T,
//   MPIEXEC --oversubscribe --bind-to none -np P TAPEGRAD train --model M --shards S
//           --threads T --iterations N --profile ...      (rank 0's profile.json)
// and one process without MPI with the same total threads P x T. Each step of rank 0 is split
// into compute (everything but the combination), wait (the barrier before the exchange, until
// the slowest rank has computed its shards), communication (MPI_Allgatherv of every shard's
// gradient) and the sum in shard order. Repetitions are interleaved (a noisy neighbour slows
// every configuration alike) and the table shows medians. Every run must end with the same
// weights, bit for bit (the shards fix the bits, not P or T); the sweep checks it. Where P x T
// exceeds the cores, the children run with OMP_WAIT_POLICY=passive (unless it is set): ranks
// cannot see each other's threads, and spinning OpenMP threads would take the cores from the
// ranks still computing.
#pragma once

#include <string>
#include <vector>

namespace tapegrad::cli {

struct RankSweep {
  std::vector<int> ranks, threads;
  std::string model = "lenet5", data = "fashion-mnist";
  long long batch = 64, steps = 20, shards = 4, reps = 3;
  std::string mpiexec = "mpirun";
  std::string out;  // directory for scale_ranks.csv
};

// Runs the sweep and prints the table; returns the exit code (1 when the weights differ).
int run_rank_sweep(const RankSweep& s);

}  // namespace tapegrad::cli
