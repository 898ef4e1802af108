#!/usr/bin/env bash
# CI fuzzing: replay every corpus, then fuzz each target for a bounded time.
#
#   scripts/fuzz-ci.sh [SECONDS_PER_TARGET] [BUILD_DIR]
#
# SECONDS_PER_TARGET defaults to 60; BUILD_DIR to build/fuzz (the `fuzz` preset: clang-14,
# libFuzzer, ASan+UBSan), configured and built (-j2, only the fuzz targets) when missing.
# Replays fuzz/corpus/<t>/ and fuzz/regressions/<t>/ once (-runs=0), then fuzzes with the
# dictionary, bounded input size, per-input timeout and memory limits: -rss_limit_mb caps
# the process, -malloc_limit_mb any single allocation (an allocation proportional to a
# length field from the wire fails here: the fuzz Limits cap payloads at 64 KiB and the
# simulator's checker allocates only for bytes that arrived, fuzz/FINDINGS.md C4, so 16 MiB
# is far above anything legitimate). New inputs go to a scratch copy, never into the
# repository. Prints exec/s per target; exits non-zero on any crash, leak, timeout or OOM,
# printing the reproduce command and where the crashing input was saved.
set -euo pipefail

seconds="${1:-60}"
src="$(cd "$(dirname "$0")/.." && pwd)"
build="${2:-$src/build/fuzz}"
targets=(fuzz_parsers fuzz_handshake fuzz_connection)
max_len=(4096 8192 16384)

if [[ ! -x "$build/fuzz/fuzz_connection" ]] || ! grep -q "NBDD_FUZZ:BOOL=ON" "$build/CMakeCache.txt" 2>/dev/null; then
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
    -DNBDD_SANITIZE=address -DNBDD_FUZZ=ON >/dev/null
fi
cmake --build "$build" -j2 --target "${targets[@]}" >/dev/null

work="$(mktemp -d "${TMPDIR:-/tmp}/nbdd-fuzz-ci.XXXXXX")"
artifacts="${FUZZ_ARTIFACTS:-$build/fuzz/artifacts}"
mkdir -p "$artifacts"
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=0
summary=()
for i in "${!targets[@]}"; do
  t="${targets[$i]}"
  bin="$build/fuzz/$t"
  corpus="$src/fuzz/corpus/$t"
  regressions="$src/fuzz/regressions/$t"
  echo "== $t: replay $(ls "$corpus" | wc -l) corpus + $(ls "$regressions" | wc -l) regression inputs"
  if ! "$bin" -runs=0 -artifact_prefix="$work/" "$corpus" "$regressions" >"$work/$t.replay.log" 2>&1; then
    grep -E "ERROR|SUMMARY|fuzz oracle|invariant|assertion failed" "$work/$t.replay.log" | head -n 10 || true
    for f in "$corpus"/* "$regressions"/*; do  # name every input that fails
      if ! "$bin" -artifact_prefix="$work/" "$f" >/dev/null 2>&1; then
        echo "FAIL: $t replay crashed on $f"
        echo "  reproduce: $bin $f"
      fi
    done
    failed=1
    summary+=("$t: replay FAILED")
    continue
  fi
  echo "== $t: fuzz ${seconds}s"
  mkdir -p "$work/$t"
  set +e
  "$bin" "$work/$t" "$corpus" "$regressions" \
    -dict="$src/fuzz/nbd.dict" -max_total_time="$seconds" -max_len="${max_len[$i]}" \
    -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=16 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$t-" >"$work/$t.fuzz.log" 2>&1
  rc=$?
  set -e
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$work/$t.fuzz.log")
  rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$work/$t.fuzz.log")
  cov=$(grep -E '^#[0-9]+.*cov: ' "$work/$t.fuzz.log" | tail -n 1 | sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([^ ]+).*/edges \1, features \2, corpus \3/')
  if [[ $rc -ne 0 ]]; then
    grep -E "ERROR|SUMMARY|fuzz oracle|invariant|assertion failed" "$work/$t.fuzz.log" | head -n 20 || true
    crash=$(grep -oE "Test unit written to [^ ]+" "$work/$t.fuzz.log" | tail -n 1 | sed 's/Test unit written to //')
    echo "FAIL: $t (exit $rc); input saved as ${crash:-?}"
    echo "  reproduce: $bin ${crash:-<input>}"
    echo "  keep it:   cp ${crash:-<input>} $src/fuzz/regressions/$t/ and add it to fuzz/FINDINGS.md"
    failed=1
    summary+=("$t: FAILED after ${execs:-?} execs")
  else
    summary+=("$t: ${execs:-?} execs in ${seconds}s, ${rate:-?} exec/s, ${cov:-}")
  fi
done

echo "== fuzz summary (${seconds}s per target)"
printf '  %s\n' "${summary[@]}"
exit $failed
