#!/usr/bin/env bash
# Line coverage of core/ reached by the fuzz corpora (llvm-cov-14).
#
#   scripts/fuzz-coverage.sh [BUILD_DIR]
#
# Builds the three fuzz targets as plain replay executables (NBDD_FUZZ=OFF, clang-14 with
# -fprofile-instr-generate -fcoverage-mapping) in BUILD_DIR (default build/fuzz-cov),
# replays fuzz/corpus/<t>/ through each, and prints the line
# coverage of core/*.cpp per target and for all three together. Set FUZZ_COV_DETAIL=1 for
# the per-file table.
set -euo pipefail

src="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$src/build/fuzz-cov}"
targets=(fuzz_parsers fuzz_handshake fuzz_connection)
flags="-fprofile-instr-generate -fcoverage-mapping"

if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="-fprofile-instr-generate" >/dev/null
fi
cmake --build "$build" -j2 --target "${targets[@]}" >/dev/null

prof="$build/fuzz/profiles"
rm -rf "$prof"
mkdir -p "$prof"
core_sources=("$src"/core/*.cpp)
objects=()
for t in "${targets[@]}"; do
  bin="$build/fuzz/$t"
  # The corpus only: a regression input that still crashes would abort before the profile
  # is written (regressions replay in ctest).
  LLVM_PROFILE_FILE="$prof/$t.profraw" "$bin" "$src/fuzz/corpus/$t" >/dev/null
  llvm-profdata-14 merge -sparse "$prof/$t.profraw" -o "$prof/$t.profdata"
  read -r lines missed pct < <(llvm-cov-14 report "$bin" -instr-profile="$prof/$t.profdata" "${core_sources[@]}" |
    awk '/^TOTAL/ {print $8, $9, $10}')
  echo "$t: line coverage $pct of the core/ code it links ($((lines - missed))/$lines lines; corpus $(ls "$src/fuzz/corpus/$t" | wc -l) files)"
  if [[ -n "${FUZZ_COV_DETAIL:-}" ]]; then
    llvm-cov-14 report "$bin" -instr-profile="$prof/$t.profdata" "${core_sources[@]}"
  fi
  objects+=(-object "$bin")
done
llvm-profdata-14 merge -sparse "$prof"/*.profraw -o "$prof/all.profdata"
read -r lines missed pct < <(llvm-cov-14 report "${objects[@]:1}" -instr-profile="$prof/all.profdata" "${core_sources[@]}" |
  awk '/^TOTAL/ {print $8, $9, $10}')
echo "all targets: core/ line coverage $pct ($((lines - missed))/$lines lines)"
if [[ -n "${FUZZ_COV_DETAIL:-}" ]]; then
  llvm-cov-14 report "${objects[@]:1}" -instr-profile="$prof/all.profdata" "${core_sources[@]}"
fi
