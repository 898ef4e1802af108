#!/usr/bin/env bash
# Side-by-side benchmark of nbdd, nbdkit and qemu-nbd (see bench/README.md).
#
#   bench/run.sh            throughput/latency/CPU table, the RSS table, connections per second
#   bench/run.sh table      only the throughput/latency/CPU table
#   bench/run.sh rss        only the RSS table
#   bench/run.sh cps        only connections per second (nbdd and nbdkit; bench/cps.py)
#   bench/run.sh syscalls   server syscalls and CPU per request by kind (nbdd and nbdkit;
#                           bench/syscalls.py, perf stat or strace)
#
# Environment (all optional):
#   NBDD=path/to/nbdd     the daemon to measure (default: build-bench/nbdd, built here in
#                         Release from the current tree, incrementally, on every run)
#   BENCH_RUNS=3          runs per (workload, transport, server); the table shows medians
#   BENCH_SECONDS=10      fio runtime of one measurement
#   BENCH_RAMP=1          fio ramp_time (not counted in IOPS, latency or CPU)
#   BENCH_QUICK=1         smoke test: 1 run x 2 s, no ramp (explicit BENCH_* still win)
#   BENCH_SERVERS=nbdd,nbdkit,qemu-nbd   BENCH_TRANSPORTS=unix,tcp
#                         (nbdd-b: a second nbdd, NBDD_B=path NBDD_B_ARGS=..., for A/B runs)
#   BENCH_WORKLOADS=4k-randread-qd16,... (names in bench/bench.py)
#   BENCH_TMPFS=/dev/shm  where qemu-nbd's 1 GiB image lives (must be tmpfs)
#   BENCH_JSON=file       also write every raw measurement and the medians as JSON
#   NBDD_ARGS, NBDKIT_ARGS, QEMU_NBD_ARGS   extra server options (e.g. NBDD_ARGS="-t 4")
#   BENCH_RSS_CONNS=1000  idle connections for the RSS table
#   BENCH_CPS_CLIENTS=1,4 BENCH_CPS_SECONDS=5   parallel clients and seconds per cps measurement
#                         (cps: BENCH_SERVERS defaults to nbdd,nbdkit; BENCH_RUNS as above)
#   syscalls: BENCH_SERVERS defaults to nbdd,nbdkit, BENCH_RUNS to 1, BENCH_SECONDS to 3;
#   BENCH_SYSCALL_WORKLOADS=4k-randread-qd1,...  BENCH_SYSCALL_TOOL=perf|strace (default: perf
#   if it can count syscalls here)  BENCH_SYSCALL_IOS=20000 (strace: I/Os per fio job)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# Debian's python3 (with the nbd module) and tools first, whatever else is on PATH
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
py=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in bench/

missing=()
for tool in fio nbdkit qemu-nbd "$py"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "bench: missing ${missing[*]}; run scripts/install-deps.sh first" >&2
  exit 1
fi
if ! fio --enghelp=nbd >/dev/null 2>&1; then
  echo "bench: this fio has no nbd ioengine (Debian's fio has it)" >&2
  exit 1
fi

if [[ -z "${NBDD:-}" ]]; then
  # the current tree, Release, in its own build directory (incremental: quick when up to date)
  NBDD=$repo/build-bench/nbdd
  if [[ ! -f $repo/build-bench/CMakeCache.txt ]]; then
    cmake -S "$repo" -B "$repo/build-bench" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  echo "bench: building nbdd (Release) in build-bench/" >&2
  cmake --build "$repo/build-bench" --target nbdd >&2
fi
NBDD=$(readlink -f "$NBDD")
export NBDD
[[ -x $NBDD ]] || { echo "bench: NBDD=$NBDD is not executable" >&2; exit 1; }

# 1,000 idle connections need more than the usual 1,024 descriptors (client and server)
hard=$(ulimit -Hn)
if [[ $hard == unlimited || $hard -gt 8192 ]]; then ulimit -n 8192; else ulimit -n "$hard"; fi

machine() {
  local model
  model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
  [[ -n $model ]] || model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  echo "Machine: $model, nproc $(nproc), kernel $(uname -r)," \
    "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), load at start $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "Versions: $("$NBDD" --version | head -1), $(nbdkit --version | head -1), $(qemu-nbd --version | head -1), $(fio --version)"
  echo "nbdd binary: $NBDD"
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
}

what=${1:-all}
case $what in
  all | table | rss | cps | syscalls) ;;
  *) echo "usage: bench/run.sh [all|table|rss|cps|syscalls]" >&2; exit 2 ;;
esac
if [[ $what == all || $what == cps ]]; then
  # the client loop of bench/cps.cpp, rebuilt when the source is newer
  CPS=$repo/build-bench/cps
  if [[ ! -x $CPS || $here/cps.cpp -nt $CPS ]]; then
    mkdir -p "$repo/build-bench"
    c++ -O2 -std=c++20 -pthread -Wall -Wextra -o "$CPS" "$here/cps.cpp"
  fi
  export CPS
fi
machine
echo
if [[ $what == all || $what == table ]]; then
  "$py" "$here/bench.py"
  echo
fi
if [[ $what == all || $what == rss ]]; then
  "$py" "$here/rss.py"
fi
if [[ $what == all || $what == cps ]]; then
  echo
  "$py" "$here/cps.py"
fi
if [[ $what == syscalls ]]; then
  "$py" "$here/syscalls.py"
fi
echo
echo "Load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
