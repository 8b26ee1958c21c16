// The tapegrad program's default OpenMP wait policy: passive, unless the user chose one.
//
// GNU OpenMP's threads spin while they wait for work (OMP_WAIT_POLICY unset: about 300,000
// spins before sleeping). On a machine shared with other work a spinning thread takes the core
// the working thread needs, and the training loop's many short parallel regions stall: a
// lenet5 run on the 2-core development VM with two builds beside it trained at 800-1,500
// images/s with the default policy and 14,000-15,000 with passive threads (README, "Training").
// libgomp reads the variable once, in its initializer, before main; and glibc resets the
// environment after a .preinit_array function could change it. So the program sets the
// variable and executes itself again (/proc/self/exe, the same arguments) before it does
// anything else. Setting OMP_WAIT_POLICY or GOMP_SPINCOUNT (even to libgomp's default) keeps
// the user's choice and skips the second exec; if the exec fails the program goes on as it is.
// Only the tapegrad program does this; the library never touches the policy.
#include "wait_policy.hpp"

#include <unistd.h>

#include <cstdlib>

namespace tapegrad::cli {

void default_wait_policy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) return;
  if (::setenv("OMP_WAIT_POLICY", "passive", 0) != 0) return;
  ::execv("/proc/self/exe", argv);
  ::unsetenv("OMP_WAIT_POLICY");  // the exec failed: run as is, the policy libgomp already has
}

}  // namespace tapegrad::cli
