// Shared by the oracle tests (one test binary): a report as the text print() writes.
#pragma once

#include <sstream>
#include <string>

#include "tapegrad/oracle/raw.hpp"

namespace tapegrad::test {

inline std::string printed(const oracle::OracleReport& r) {
  std::ostringstream os;
  r.print(os);
  return os.str();
}

}  // namespace tapegrad::test
