#!/usr/bin/env bash
# Quick start, step 2 (and what CI runs): install what is missing, build, pass every test.
#   scripts/test.sh            all stages below
#   scripts/test.sh default    one stage (default | asan | tsan | sim | mutants | fuzz | package), or several
# Stages:
#   default  g++ RelWithDebInfo, -Werror: every test (unit, property, sim, integration, fuzz replay)
#   asan     clang ASan+UBSan: unit, property and fuzz-corpus replay
#   tsan     clang TSan: the threaded tests (net, plugins, nbdkit hosting) and the integration tests
#   sim      simulator: regression seeds, then a time-boxed sweep (NBDD_SIM_SECONDS, 120) seeded
#            from the commit, each seed run twice to check determinism, every coverage mark hit
#   mutants  each deliberate bug in sim/mutants/ must be caught by the simulator
#   fuzz     clang libFuzzer: replay corpora, then fuzz each target for NBDD_FUZZ_SECONDS (60)
#   package  `cmake --install` into a scratch DESTDIR, then the Debian package of the default
#            build (scripts/package.sh): lintian, installed with apt-get, used, purged
#            (tests/install/); needs root or sudo
# Builds are incremental: a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

jobs=${NBDD_JOBS:-$(nproc)}
stages=("$@")
((${#stages[@]})) || stages=(default asan tsan sim mutants fuzz package)
export PATH=/usr/bin:$PATH  # Debian's python3 (with the nbd module) and nbdsh first

log() { printf '\n=== %s (%s) ===\n' "$*" "$(date -u +%H:%M:%S)"; }

build() {  # build <preset> [targets...]
  local preset=$1
  shift
  cmake --preset "$preset" -DNBDD_WERROR=ON >/dev/null
  if (($#)); then
    cmake --build --preset "$preset" -j "$jobs" --target "$@"
  else
    cmake --build --preset "$preset" -j "$jobs"
  fi
}

run_ctest() {  # run_ctest <build-dir> [ctest args...]
  local dir=$1
  shift
  ctest --test-dir "$dir" -j "$jobs" --output-on-failure --timeout 900 "$@"
}

for stage in "${stages[@]}"; do
  case $stage in
    default)
      log "default build"
      build default
      run_ctest build/default
      ;;
    asan)
      log "asan build"
      build asan
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_ctest build/asan -L 'unit|property|fuzz'
      ;;
    tsan)
      log "tsan build"
      build tsan nbdd net_tests net_tls_tests plugins_tests integration_tests memory_after_load_tests cli_table_tests nbdkit_tests
      TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 run_ctest build/tsan -L 'net|threaded|integration'
      ;;
    sim)
      log "simulator"
      build default nbdd-sim
      build/default/sim/nbdd-sim --regressions=sim/regressions.txt --check-determinism
      commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo 1)
      build/default/sim/nbdd-sim --budget-s="${NBDD_SIM_SECONDS:-120}" --check-determinism --require-marks \
        --seed-start=$((16#$commit))
      ;;
    mutants)
      log "mutants"
      scripts/sim-mutants.sh
      ;;
    fuzz)
      log "fuzz"
      scripts/fuzz-ci.sh "${NBDD_FUZZ_SECONDS:-60}" build/fuzz  # builds only the fuzz targets
      ;;
    package)
      log "Debian package"
      NBDD_JOBS=$jobs scripts/package.sh  # leaves exactly one build/package/nbdd_*.deb
      tests/install/cmake_install_test.sh build/default
      tests/install/package_test.sh build/package/nbdd_*.deb build/default
      ;;
    *)
      echo "test.sh: unknown stage '$stage' (default, asan, tsan, sim, mutants, fuzz, package)" >&2
      exit 2
      ;;
  esac
done
log "all stages passed: ${stages[*]}"
