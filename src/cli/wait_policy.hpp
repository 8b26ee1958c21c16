// The tapegrad program's default OpenMP wait policy (passive unless the user set one); see
// wait_policy.cpp for why and how.
#pragma once

namespace tapegrad::cli {

// Call first in main: may execute the program again with OMP_WAIT_POLICY=passive set.
void default_wait_policy(char** argv);

}  // namespace tapegrad::cli
