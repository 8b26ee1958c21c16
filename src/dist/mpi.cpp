// The MPI job, or the one process; see include/tapegrad/dist/mpi.hpp. Built with
// TAPEGRAD_MPI=1 (CMakeLists.txt) when MPI is, and then the only file that includes <mpi.h>.
#include "tapegrad/dist/mpi.hpp"

#include <climits>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#ifndef TAPEGRAD_MPI
#define TAPEGRAD_MPI 0
#endif
#if TAPEGRAD_MPI
#include <mpi.h>
#endif

namespace tapegrad::dist {

namespace {
bool job_started = false;  // MPI_Init may run once per process

// A positive count from the environment, 0 if the variable is unset, -1 if set otherwise.
int env_count(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (end != v && *end == '\0' && n > 0 && n <= INT_MAX) ? static_cast<int>(n) : -1;
}
}  // namespace

bool mpi_built() { return TAPEGRAD_MPI != 0; }

int launched_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const int n = env_count(name); n != 0) return n;
  return std::getenv("PMIX_RANK") ? -1 : 0;
}

Job::Job() {
  if (job_started) throw std::logic_error("dist::Job: one job per process (MPI starts once)");
  job_started = true;
  const int launched = launched_size();
#if TAPEGRAD_MPI
  if (launched == 0) return;
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  mpi_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
#else
  if (launched > 1 || launched < 0) {
    // Piece by piece: GCC 12 warns (-Wrestrict, falsely) on "literal" + std::string&&.
    std::string m = "started by mpirun (";
    m += launched > 1 ? std::to_string(launched) + " processes" : std::string("PMIx");
    m += "), but this tapegrad was built without MPI (TAPEGRAD_MPI=OFF): every process would "
         "train alone and write the same files; install libopenmpi-dev and rebuild, or run one "
         "process";
    throw std::invalid_argument(m);
  }
#endif
}

Job::~Job() {
#if TAPEGRAD_MPI
  if (mpi_) MPI_Finalize();
#endif
}

std::vector<std::string> Job::allgather(const std::string& mine) const {
  if (!mpi_) return {mine};
#if TAPEGRAD_MPI
  if (mine.size() > static_cast<std::size_t>(INT_MAX))
    throw std::length_error("dist::Job::allgather: more than 2^31-1 bytes");
  const int n = static_cast<int>(mine.size());
  std::vector<int> sizes(static_cast<std::size_t>(size_));
  MPI_Allgather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, MPI_COMM_WORLD);
  std::vector<int> offsets(sizes.size());
  long long total = 0;
  for (std::size_t r = 0; r < sizes.size(); ++r) {
    if (total > INT_MAX) throw std::length_error("dist::Job::allgather: more than 2^31-1 bytes in all");
    offsets[r] = static_cast<int>(total);
    total += sizes[r];
  }
  std::string all(static_cast<std::size_t>(total), '\0');
  MPI_Allgatherv(mine.data(), n, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR,
                 MPI_COMM_WORLD);
  std::vector<std::string> out;
  for (std::size_t r = 0; r < sizes.size(); ++r)
    out.push_back(all.substr(static_cast<std::size_t>(offsets[r]), static_cast<std::size_t>(sizes[r])));
  return out;
#else
  return {mine};
#endif
}

void Job::allgatherv(const std::byte* mine, std::byte* all, const std::vector<int>& records,
                     std::size_t record_bytes) const {
  if (record_bytes > static_cast<std::size_t>(INT_MAX))
    throw std::length_error("dist::Job::allgatherv: a record of " + std::to_string(record_bytes) +
                            " bytes is over MPI's 2^31-1 count");
  if (!mpi_) {
    if (all != mine && !records.empty())
      std::memcpy(all, mine, static_cast<std::size_t>(records[0]) * record_bytes);
    return;
  }
#if TAPEGRAD_MPI
  // One record is one element of a contiguous type, so counts and offsets count records
  // (a few per rank) rather than bytes, and stay far from int's range.
  MPI_Datatype record;
  MPI_Type_contiguous(static_cast<int>(record_bytes), MPI_BYTE, &record);
  MPI_Type_commit(&record);
  std::vector<int> offsets(records.size());
  long long at = 0;
  for (std::size_t r = 0; r < records.size(); ++r) {
    offsets[r] = static_cast<int>(at);
    at += records[r];
  }
  MPI_Allgatherv(mine, records[static_cast<std::size_t>(rank_)], record, all,
                 records.data(), offsets.data(), record, MPI_COMM_WORLD);
  MPI_Type_free(&record);
#endif
}

void Job::barrier() const {
#if TAPEGRAD_MPI
  if (mpi_) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

void Job::abort(int code) const {
#if TAPEGRAD_MPI
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::_Exit(code);
}

}  // namespace tapegrad::dist
