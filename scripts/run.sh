#!/usr/bin/env bash
# Quick start, step 1: install what is missing, build, and serve a 1 GiB in-memory disk
# on TCP port 10809 and on a Unix socket, in the foreground (Ctrl-C stops it).
#   scripts/run.sh                      # memory 1G
#   scripts/run.sh file disk.img        # any plugin and arguments, as with nbdkit
# NBDD_SOCKET overrides the Unix socket path (default /tmp/nbdd.sock).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset default -DNBDD_WERROR=ON >/dev/null
cmake --build --preset default --target nbdd
sock=${NBDD_SOCKET:-/tmp/nbdd.sock}
if (($# == 0)); then set -- memory 1G; fi
echo "nbdd: serving '$*' on nbd://localhost:10809 and nbd+unix:///?socket=$sock"
exec build/default/nbdd -f -p 10809 -U "$sock" "$@"
