#!/usr/bin/env bash
# Line coverage of core/ by the unit tests (gcov). Prints one line per file and a total.
# Usage: scripts/coverage.sh [build-dir]   (default build/coverage)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/coverage}
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DNBDD_COVERAGE=ON >/dev/null
cmake --build "$dir" -j2 --target core_tests >/dev/null
find "$dir" -name '*.gcda' -delete
"$dir/tests/core/core_tests" >/dev/null
objdir="$dir/core/CMakeFiles/nbdd_core.dir"
total=0 covered=0
printf '%-32s %8s %8s\n' file lines covered
for obj in "$objdir"/*.gcda; do
  src=$(basename "$obj" .cpp.gcda).cpp
  line=$(gcov -n "$obj" 2>/dev/null | grep -A1 "^File '$PWD/core/$src'" | grep 'Lines executed' || true)
  pct=$(sed -E 's/Lines executed:([0-9.]+)% of ([0-9]+)/\1/' <<<"$line")
  n=$(sed -E 's/Lines executed:([0-9.]+)% of ([0-9]+)/\2/' <<<"$line")
  [[ -z "$n" ]] && continue
  hit=$(awk -v p="$pct" -v n="$n" 'BEGIN{printf "%d", p*n/100+0.5}')
  total=$((total + n)); covered=$((covered + hit))
  printf '%-32s %8d %7s%%\n' "core/$src" "$n" "$pct"
done
awk -v t="$total" -v c="$covered" 'BEGIN{printf "%-32s %8d %7.1f%%\n", "TOTAL core/", t, 100*c/t}'
