#!/usr/bin/env bash
# Fuzzes every libFuzzer target for SECONDS each (default 60), one after another:
#   scripts/fuzz.sh [SECONDS] [TARGET...]        (targets: npy_fuzz cli_parse_fuzz spec_fuzz idx_fuzz npz_fuzz)
# Builds the `fuzz` preset first (clang, ASan + UBSan). Each target starts from its checked-in
# seed corpus (fuzz/corpus/<target>) and keeps what it finds in build/fuzz/fuzz/corpus_<target>;
# a crash, leak, timeout or failed law leaves build/fuzz/fuzz/<target>-crash-* (or -leak-,
# -timeout-, -oom-) and makes this script exit 1. Reproduce one with
#   build/fuzz/fuzz/<target> build/fuzz/fuzz/<target>-crash-<hash>
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(npy_fuzz cli_parse_fuzz spec_fuzz idx_fuzz npz_fuzz)
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
dir=build/fuzz/fuzz
status=0
for t in "${targets[@]}"; do
  mkdir -p "$dir/corpus_$t"
  echo "== $t: ${seconds}s"
  if ! "$dir/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
       -print_final_stats=1 -artifact_prefix="$dir/$t-" \
       "$dir/corpus_$t" "fuzz/corpus/$t" 2>"$dir/$t.log"; then
    status=1
  fi
  grep -E "^(stat::number_of_executed_units|stat::new_units_added)|Done [0-9]+ runs|ERROR|SUMMARY" \
    "$dir/$t.log" || true
  if ls "$dir/$t"-{crash,leak,timeout,oom}-* >/dev/null 2>&1; then
    echo "$t: FOUND a problem: $(ls "$dir/$t"-{crash,leak,timeout,oom}-* 2>/dev/null | tr '\n' ' ')"
    status=1
  fi
done
exit $status
