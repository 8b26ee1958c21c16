// peak_memory COMMAND [ARGS...]: runs COMMAND and prints its peak resident memory in bytes on
// the last line of stderr ("peak_memory_bytes N"), exiting with COMMAND's status.
//
// For tests/cli_bad_input_test.py, which checks the CLI's memory estimates against the memory
// really used. Python cannot measure that itself: a child forked from the Python interpreter
// inherits the interpreter's high-water mark in ru_maxrss (Linux keeps it across exec), so the
// measurement would be the interpreter's size. This launcher is small, so its child's
// ru_maxrss is the command's own.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: peak_memory COMMAND [ARGS...]\n");
    return 2;
  }
  const pid_t pid = ::fork();
  if (pid < 0) return 2;
  if (pid == 0) {
    ::execv(argv[1], argv + 1);
    std::perror("peak_memory: exec");
    ::_exit(127);
  }
  int status = 0;
  rusage usage{};
  if (::wait4(pid, &status, 0, &usage) < 0) return 2;
  std::fprintf(stderr, "peak_memory_bytes %lld\n", static_cast<long long>(usage.ru_maxrss) * 1024);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
