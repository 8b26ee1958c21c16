// The processes of a run: the ranks of an MPI job (tapegrad built with TAPEGRAD_MPI and started
// by `mpirun -np P`), or one process. src/dist/mpi.cpp is the only file that calls MPI; the rest
// of tapegrad sees a rank, a size, a gather of bytes, a barrier and an abort.
//
// MPI starts only when a launcher started this process (its environment says so:
// OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_SIZE); run by hand, tapegrad is one process without MPI,
// exactly as a build without TAPEGRAD_MPI. Threads: MPI runs at MPI_THREAD_FUNNELED: OpenMP
// threads compute, and only the thread that started MPI calls it, between parallel regions.
//
// A failing MPI call ends the whole job (MPI_ERRORS_ARE_FATAL, MPI's default on
// MPI_COMM_WORLD), and a rank that dies (a crash, or an exit without MPI_Finalize) makes
// mpirun kill every other rank and exit non-zero: a job never hangs on a missing rank
// (tests/mpi_train_test.py checks it).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace tapegrad::dist {

// Whether this tapegrad was built with MPI (TAPEGRAD_MPI).
bool mpi_built();

// The number of processes the launcher started (from its environment): 0 when no launcher
// started this one, -1 when one did but did not say how many (PMIx without Open MPI's names).
int launched_size();

class Job {
 public:
  // Starts MPI when a launcher started this process and MPI is built in; otherwise a job of
  // one process without MPI. Throws std::invalid_argument when launched as several processes
  // by a tapegrad built without MPI (each would train alone and write the same files), and
  // std::logic_error for a second Job in one process (MPI starts once).
  Job();
  // MPI_Finalize (collective: every rank must get here; after an error that only some ranks
  // saw, call abort() instead).
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool mpi() const { return mpi_; }

  // Collective: every rank's `mine`, in rank order.
  std::vector<std::string> allgather(const std::string& mine) const;
  // Collective: rank r sends records[r] records of record_bytes bytes each (from `mine`), and
  // every rank receives all of them in rank order into `all` (sum(records) * record_bytes
  // bytes). Bytes move unchanged (MPI_BYTE): no conversion, no arithmetic. Throws
  // std::length_error for a record over 2^31-1 bytes (MPI counts are int).
  void allgatherv(const std::byte* mine, std::byte* all, const std::vector<int>& records,
                  std::size_t record_bytes) const;
  // Collective: returns when every rank has called it.
  void barrier() const;
  // Ends every rank of the job with `code` (MPI_Abort; a one-process job just exits).
  [[noreturn]] void abort(int code) const;

 private:
  int rank_ = 0, size_ = 1;
  bool mpi_ = false;
};

}  // namespace tapegrad::dist
