#!/bin/sh
# Line and branch coverage of the library by the default test suite (gcov + gcovr, Debian's
# gcovr package), and the project's floor: at least 95 % of the lines of src/kernels/,
# src/oracle/, src/gradcheck/ and include/tapegrad/gradcheck/.
#
#   scripts/coverage.sh            configure, build and test the coverage preset, then report
#   scripts/coverage.sh --report   report on the counters of the last run only
#
# Output: the summary and each directory's figure on stdout, build/coverage/coverage.txt (every
# file, with its uncovered lines), build/coverage/coverage.html (annotated sources) and
# build/coverage/coverage.json. Exit 1 when a directory is under its floor.
# Branches: gcov counts a branch per outcome of every condition the compiler emits; branches
# that only exception handling or compiler-generated code takes are left out
# (--exclude-throw-branches, --exclude-unreachable-branches), so the figure is about the
# conditions in the source.
set -eu
cd "$(dirname "$0")/.."
build=build/coverage
if [ "${1:-}" != "--report" ]; then
  find "$build" -name '*.gcda' -delete 2>/dev/null || true
  cmake --workflow --preset coverage
fi
common="--root . --object-directory $build --exclude-throw-branches --exclude-unreachable-branches"
# The library: its sources and headers (not the tests, benches, CLI front end or fuzz targets).
gcovr $common --filter 'src/' --filter 'include/tapegrad/' --exclude 'src/cli/' \
  --json "$build/coverage.json" --html-details "$build/coverage.html" \
  --txt "$build/coverage.txt" --print-summary --sort-percentage
status=0
for dir in src/kernels/ src/oracle/ src/gradcheck/ include/tapegrad/gradcheck/; do
  if out=$(gcovr --root . --add-tracefile "$build/coverage.json" --filter "$dir" \
             --fail-under-line 95 --print-summary --output /dev/null 2>&1); then
    echo "$out" | sed "s|^|$dir: |"
  else
    echo "$out" | sed "s|^|$dir: |"
    echo "coverage: $dir is under 95 % of its lines" >&2
    status=1
  fi
done
exit $status
