#!/bin/bash
# One 4 KiB fio run against a server and fio each pinned to given CPUs (taskset), printing IOPS
# and the server's CPU microseconds per request. Shows how much a row depends on where the
# scheduler puts the client (bench/README.md, "Why the 4 KiB rows swing").
#   bench/pinned.sh SERVER_CPUS FIO_CPUS read|write DEPTH [unix|tcp] [SECONDS]
# SERVER=nbdd|nbdkit (default nbdd), NBDD=path of nbdd, NBDD_ARGS=extra nbdd options.
set -euo pipefail
server_cpus=$1 fio_cpus=$2 rw=$3 depth=$4 transport=${5:-unix} seconds=${6:-4}
server=${SERVER:-nbdd}
nbdd=${NBDD:-$(dirname "$0")/../build/default/nbdd}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sock=$dir/sock port=$((20000 + RANDOM % 20000))
if [ "$transport" = unix ]; then
  listen=(-U "$sock"); uri="nbd+unix:///?socket=$sock"
else
  listen=(-i 127.0.0.1 -p "$port"); uri="nbd://127.0.0.1:$port/"
fi
if [ "$server" = nbdd ]; then
  # shellcheck disable=SC2086
  taskset -c "$server_cpus" "$nbdd" -f "${listen[@]}" ${NBDD_ARGS:-} memory 1G &
else
  taskset -c "$server_cpus" nbdkit -f "${listen[@]}" memory 1G &
fi
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do fio --name=probe --ioengine=nbd --uri="$uri" --rw=read --bs=4k --size=4k \
  >/dev/null 2>&1 && break; sleep 0.1; done
# prefill, so reads do not hit pages never written (a fresh page fault costs 10-14 us here)
fio --name=prefill --ioengine=nbd --uri="$uri" --rw=write --bs=1m --iodepth=4 --size=256m >/dev/null
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
before=$(cpu_ticks)
out=$(taskset -c "$fio_cpus" fio --name=run --ioengine=nbd --uri="$uri" --rw="rand$rw" --bs=4k \
  --iodepth="$depth" --size=256m --time_based --runtime="$seconds" --output-format=json)
after=$(cpu_ticks)
ios=$(echo "$out" | /usr/bin/python3 -c 'import json, sys
s = sys.stdin.read(); job = json.loads(s[s.index("{"):])["jobs"][0]
print(job["read"]["total_ios"] + job["write"]["total_ios"])')
hz=$(getconf CLK_TCK)
echo "$server ${NBDD_ARGS:-} server on $server_cpus, fio on $fio_cpus, rand$rw depth $depth $transport:" \
  "$((ios / seconds)) IOPS, $(echo "scale=2; ($after - $before) * 1000000 / $hz / $ios" | bc) us CPU per request"
