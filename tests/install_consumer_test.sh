#!/bin/sh
# ctest "install_consumer" (label install): the package works from an install, as a user sees
# it. Installs the current build tree into a temporary prefix, configures examples/consumer
# against it with find_package(tapegrad CONFIG REQUIRED), builds it and runs it:
#   consumer good   must exit 0 and print PASS (correct kernels and gradient)
#   consumer wrong  must exit 1, print FAIL and point at an element of dx (dilation bug caught)
# Usage: install_consumer_test.sh BUILD_DIR SOURCE_DIR GENERATOR CXX_COMPILER [CXX_FLAGS]
set -eu
build=$1 src=$2 generator=$3 cxx=$4 flags=${5:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tapegrad-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

step() { echo "install_consumer: $*"; }
fail() { echo "install_consumer: FAILED: $*"; exit 1; }

step "installing $build into $tmp/prefix"
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "cmake --install"; }
[ -f "$tmp/prefix/include/tapegrad/tapegrad.hpp" ] || fail "tapegrad.hpp was not installed"

step "configuring examples/consumer against it"
cmake -S "$src/examples/consumer" -B "$tmp/build" -G "$generator" \
      -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/configure.log" 2>&1 ||
  { cat "$tmp/configure.log"; fail "configuring the consumer"; }

step "building it"
cmake --build "$tmp/build" >"$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log"; fail "building the consumer"; }

consumer="$tmp/build/consumer"
step "consumer good"
rc=0
"$consumer" good >"$tmp/good.log" 2>&1 || rc=$?
cat "$tmp/good.log"
[ "$rc" -eq 0 ] || fail "the correct kernels did not pass (exit $rc)"
[ "$(grep -c '^PASS$' "$tmp/good.log")" -eq 3 ] || fail "expected three PASS verdicts"
grep -q '^FAIL$' "$tmp/good.log" && fail "a FAIL verdict for the correct kernels"

step "consumer wrong"
rc=0
"$consumer" wrong >"$tmp/wrong.log" 2>&1 || rc=$?
cat "$tmp/wrong.log"
[ "$rc" -eq 1 ] || fail "the dilation bug was not caught (exit $rc, expected 1)"
grep -q '^FAIL$' "$tmp/wrong.log" || fail "no FAIL verdict for the wrong kernel"
grep -q '^  worst element    dx\[[0-9,]*\] (nchw)' "$tmp/wrong.log" ||
  fail "the report does not point at an element of dx"
step "ok"
