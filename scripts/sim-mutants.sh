#!/usr/bin/env bash
# Proves the simulator finds bugs: applies each sim/mutants/*.patch (a small deliberate bug in
# core's shutdown/disconnect/lifecycle logic) to a copy of the repository, rebuilds only
# nbdd-sim there (-j2), and sweeps seeds until an invariant fires, a liveness check fails or
# core crashes. Prints, per mutant, "caught by seed N (...)" or "NOT CAUGHT"; exits non-zero
# if any mutant survives, a patch does not apply, or the unmutated copy fails.
#
#   scripts/sim-mutants.sh [mutant-name-substring...]
#   NBDD_MUTANT_SEEDS=2000   seeds per mutant (the stated budget)
#   NBDD_MUTANT_KEEP=1       keep the temporary copy
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seeds=${NBDD_MUTANT_SEEDS:-2000}
work=$(mktemp -d /tmp/nbdd-mutants.XXXXXX)
cleanup() { if [[ -z "${NBDD_MUTANT_KEEP:-}" ]]; then rm -rf "$work"; else echo "kept $work"; fi; }
trap cleanup EXIT

echo "copying $root to $work/src"
mkdir -p "$work/src"
tar -C "$root" --exclude='./build*' --exclude='./.git' -cf - . | tar -C "$work/src" -xf -

echo "building the unmutated simulator"
# No link-time optimization here: it makes each of the many relinks about 4 s slower, and
# what this script measures is which seed catches a mutant, not how fast.
cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNBDD_SIM_LTO=OFF >"$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; exit 1; }
build() { cmake --build "$work/build" -j2 --target nbdd-sim >"$work/build.log" 2>&1; }
build || { tail -30 "$work/build.log"; exit 1; }
sim="$work/build/sim/nbdd-sim"
if ! "$sim" --seeds=1..200 >"$work/baseline.log" 2>&1; then
  echo "the unmutated simulator fails; fix that first:"; tail -30 "$work/baseline.log"; exit 1
fi

shopt -s nullglob
patches=("$root"/sim/mutants/*.patch)
if [[ $# -gt 0 ]]; then
  selected=()
  for p in "${patches[@]}"; do for want in "$@"; do [[ "$p" == *"$want"* ]] && selected+=("$p"); done; done
  patches=("${selected[@]}")
fi
((${#patches[@]} > 0)) || { echo "no mutants"; exit 1; }

failed=0
for patch in "${patches[@]}"; do
  name=$(basename "$patch" .patch)
  what=$(head -1 "$patch" | sed 's/^# [^:]*: //')
  if ! (cd "$work/src" && patch -p1 --dry-run --silent <"$patch" >/dev/null 2>&1); then
    printf '%-36s PATCH DOES NOT APPLY\n' "$name"; failed=1; continue
  fi
  (cd "$work/src" && patch -p1 --silent <"$patch")
  if ! build; then
    printf '%-36s BUILD FAILED\n' "$name"; tail -20 "$work/build.log"; failed=1
  else
    start=$(date +%s)
    set +e
    "$sim" --seeds=1.."$seeds" >"$work/$name.log" 2>&1
    rc=$?
    set -e
    secs=$(( $(date +%s) - start ))
    if [[ $rc -eq 0 ]]; then
      printf '%-36s NOT CAUGHT in %s seeds (%s)\n' "$name" "$seeds" "$what"; failed=1
    else
      seed=$(grep -m1 -oE '^(CRASH |nbdd-sim )seed=[0-9]+' "$work/$name.log" | grep -oE '[0-9]+$' || true)
      why=$(grep -m1 -E '^FAIL|^nbdd: assertion|^NONDETERMINISM' "$work/$name.log" | cut -c1-110 || true)
      printf '%-36s caught by seed %s in %ss, exit %s: %s\n' "$name" "${seed:-?}" "$secs" "$rc" "$why"
    fi
  fi
  (cd "$work/src" && patch -p1 -R --silent <"$patch")
done
build >/dev/null || true
exit $failed
