#!/bin/sh
# ctest "onednn_consumer" (label install): a third-party library checked through the installed
# package. Installs the build tree into a temporary prefix, builds examples/onednn_consumer
# against it and oneDNN (Debian's libdnnl-dev), and runs it:
#   onednn_consumer good          exit 0: every check and search of oneDNN's convolution, inner
#                                 product, pooling, eltwise and softmax passes (known
#                                 deviations of oneDNN printed, not counted)
#   onednn_consumer wrong-<op>    exit 1 for each op: its planted bug is caught by the check
#                                 AND the search, and the check's report names the pattern
# Exit 77 (ctest SKIP_RETURN_CODE) when oneDNN was not found at configure time.
# Usage: onednn_consumer_test.sh BUILD_DIR SOURCE_DIR GENERATOR CXX_COMPILER HAVE_DNNL [CXX_FLAGS]
set -eu
build=$1 src=$2 generator=$3 cxx=$4 have_dnnl=$5 flags=${6:-}
if [ "$have_dnnl" != 1 ]; then
  echo "onednn_consumer: SKIPPED: oneDNN (libdnnl-dev, with ocl-icd-opencl-dev) not found"
  exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tapegrad-onednn.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

step() { echo "onednn_consumer: $*"; }
fail() { echo "onednn_consumer: FAILED: $*"; exit 1; }

step "installing $build into $tmp/prefix"
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "cmake --install"; }

step "configuring and building examples/onednn_consumer against it"
cmake -S "$src/examples/onednn_consumer" -B "$tmp/build" -G "$generator" \
      -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/configure.log" 2>&1 ||
  { cat "$tmp/configure.log"; fail "configuring the consumer"; }
cmake --build "$tmp/build" >"$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log"; fail "building the consumer"; }
consumer="$tmp/build/onednn_consumer"

step "onednn_consumer good"
rc=0
"$consumer" good >"$tmp/good.log" 2>&1 || rc=$?
grep -E '^(search|KNOWN|onednn_consumer)' "$tmp/good.log"
[ "$rc" -eq 0 ] || { cat "$tmp/good.log"; fail "oneDNN did not pass (exit $rc)"; }
grep -q ' 0 failed' "$tmp/good.log" || fail "the summary does not say 0 failed"

# op, and the pattern line the check's report must print for its planted bug
while read -r op pattern; do
  step "onednn_consumer wrong-$op"
  rc=0
  "$consumer" "wrong-$op" >"$tmp/wrong.log" 2>&1 || rc=$?
  [ "$rc" -eq 1 ] || { cat "$tmp/wrong.log"; fail "wrong-$op: exit $rc, expected 1 (caught)"; }
  grep -q "^  pattern          $pattern" "$tmp/wrong.log" ||
    { cat "$tmp/wrong.log"; fail "wrong-$op: no pattern line '$pattern'"; }
  grep -q '^search: .*: FAIL' "$tmp/wrong.log" ||
    { cat "$tmp/wrong.log"; fail "wrong-$op: no search caught it"; }
  grep -m1 "^  pattern" "$tmp/wrong.log"
done <<'CASES'
conv2d only the last n (n = 1)
linear only the last n (n = 3)
max_pool2d only the last w (w = 3)
avg_pool2d only where the window touches padding
relu only the last n (n = 3)
tanh every element
sigmoid every element
softmax every element
log_softmax every element
CASES
step "ok"
