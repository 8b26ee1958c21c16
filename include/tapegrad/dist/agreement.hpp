// The start-up agreement of an MPI job. Before training starts (and before anything is
// written), every rank brings either the fields that must be the same on every rank for the
// ranks to compute the same bits (model, data, seed, dtype, batch, shards, optimizer recipe,
// instruction set, starting parameters, ...) or the error its own setup met. Every rank then
// knows the same verdict, so the job ends together with one message (printed by rank 0)
// instead of some ranks waiting in a collective for a rank that already quit.
//
// A rank whose setup throws must still call agree() (with the error): that is what lets the
// others end. After the agreement, an error only some ranks see ends the job by Job::abort.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "tapegrad/dist/mpi.hpp"

namespace tapegrad::dist {

struct Field {
  std::string name;   // "isa", "seed", ...
  std::string value;  // compared byte for byte
  std::string hint;   // added to the message when ranks disagree on it (may be empty)
};

// Collective. Returns "" when no rank failed and every rank's fields equal rank 0's, otherwise
// one line, the same on every rank:
//   "<error>"                 every rank failed with the same message
//   "rank 2: <error>"         the lowest rank that failed (its own message)
//   "the ranks disagree on isa: rank 0 has 'avx512', rank 1 has 'avx2'; <hint>"
//                             the first field (in rank 0's order) on which a rank differs
std::string agree(const Job& job, const std::vector<Field>& fields, const std::string& error);

// The CRC-32 (zlib's) of n bytes, continuing from crc: a fingerprint for values too long to
// exchange whole (the spec, the data set, the parameters).
std::uint32_t crc32_of(const void* data, std::size_t n, std::uint32_t crc = 0);
// As 8 hex digits.
std::string hex32(std::uint32_t v);

// Thrown by a caller whose agreement failed: the message is the same on every rank.
struct Disagreement : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace tapegrad::dist
