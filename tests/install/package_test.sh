#!/usr/bin/env bash
# The Debian package, installed on this machine as an operator would, then removed again:
#   tests/install/package_test.sh DEB BUILD_DIR
# (scripts/test.sh package runs it on what scripts/package.sh built from BUILD_DIR.)
# Checks: lintian; apt-get install; `nbdd --version` = the build's version and git revision
# and the man pages' version; a memory disk served to nbdinfo; socket activation with the
# command line of the installed nbdd@.service, by systemd-socket-activate and by libnbd;
# the installed example plugin built out of tree with pkg-config and served by the installed
# nbdd; every man page rendered by man without a warning; systemd-analyze verify on the
# units; apt-get purge leaves none of the package's files or directories behind.
# Needs root (or sudo) for apt-get. Leaves nbdd uninstalled, also when a check fails.
set -euo pipefail
deb=$(realpath "$1")
build=$2
export PATH=/usr/bin:$PATH  # Debian's python3 (with the nbd module) for nbdsh
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi

tmp=$(mktemp -d)
pids=()
installed_by_us=0
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if ((installed_by_us)); then $SUDO apt-get purge -y -qq nbdd >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

step() { printf -- '--- %s\n' "$*"; }
fail() {
  echo "package_test: FAIL: $*" >&2
  for log in "$tmp"/*.log; do  # the stderr of the daemons started so far
    [[ -s $log ]] && { echo "--- $log:"; tail -n 20 "$log"; } >&2
  done
  exit 1
}
# wait_for_socket PATH: nbdd creates its Unix socket once it listens.
wait_for_socket() {
  for _ in $(seq 100); do
    [[ -S $1 ]] && return 0
    sleep 0.1
  done
  fail "no socket at $1 after 10 s"
}
# stop PID NAME: SIGTERM, then nbdd must exit 0 within 10 s (a graceful shutdown).
stop() {
  kill -TERM "$1"
  local status=0
  timeout 10 tail -s 0.1 --pid="$1" -f /dev/null || fail "$2 still running 10 s after SIGTERM"
  wait "$1" || status=$?
  ((status == 0)) || fail "$2 exited $status after SIGTERM"
}

step "lintian $(basename "$deb")"
# Errors and warnings fail; info tags are shown too (none are expected: see the overrides
# in scripts/package.sh).
lint_status=0
lint=$(lintian --display-info --fail-on error,warning "$deb" 2>&1) || lint_status=$?
grep -v '^running with root privileges' <<<"$lint" || true
((lint_status == 0)) || fail "lintian reports errors or warnings (above)"

if dpkg-query -W -f='${db:Status-Status}' nbdd 2>/dev/null | grep -qv '^not-installed$'; then
  step "purging the nbdd installed before this test"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq nbdd >/dev/null 2>&1
fi
# Every path in the package, and which of them exist before (/usr, /usr/bin, ...).
mapfile -t paths < <(dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's|^\./|/|; s|/$||' | grep -v '^/\?$')
declare -A existed
for p in "${paths[@]}"; do
  if [[ -e $p ]]; then
    [[ -d $p ]] || fail "$p exists before installing: remove it first"
    existed[$p]=1
  fi
done
[[ ! -e /etc/nbdd ]] || fail "/etc/nbdd exists before installing"

step "apt-get install ./$(basename "$deb")"
installed_by_us=1
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >"$tmp/apt-install.log" 2>&1 ||
  fail "apt-get install $deb failed"
[[ $(command -v nbdd) == /usr/bin/nbdd ]] || fail "nbdd is not /usr/bin/nbdd after installing"

step "nbdd --version"
version_line=$(nbdd --version | head -1)
echo "$version_line"
upstream=$(sed -n 's/^#define NBDD_VERSION "\(.*\)"$/\1/p' "$build/generated/nbdd_version.hpp")
revision=$(sed -n 's/^#define NBDD_GIT_REVISION "\(.*\)"$/\1/p' "$build/generated/nbdd_version.hpp")
[[ $version_line == "nbdd $upstream (git $revision)" ]] ||
  fail "nbdd --version says '$version_line', the build is 'nbdd $upstream (git $revision)'"
# The man page footer (.TH's fourth field) names the same version.
th=$(zcat /usr/share/man/man1/nbdd.1.gz | grep -m1 '^\.TH')
[[ $th == *"\"nbdd $upstream\""* ]] || fail "nbdd(1) says '$th', not version $upstream"

step "memory disk to nbdinfo"
sock=$tmp/memory.sock
nbdd -f -U "$sock" memory 64M 2>"$tmp/memory.log" &
pids+=($!)
wait_for_socket "$sock"
size=$(nbdinfo --size "nbd+unix:///?socket=$sock")
[[ $size == 67108864 ]] || fail "nbdinfo --size says $size, expected 67108864"
nbdsh -u "nbd+unix:///?socket=$sock" -c 'h.pwrite(b"installed", 4096); assert h.pread(9, 4096) == b"installed"'

unit_dir=/usr/lib/systemd/system
step "nbdd.service's ExecStop stops it gracefully"
# What systemd runs: the unit's `/bin/sh -c '...'` with $$ turned into $ and MAINPID set.
exec_stop=$(sed -n "s|^ExecStop=/bin/sh -c '\(.*\)'\$|\1|p" "$unit_dir/nbdd.service")
[[ -n $exec_stop ]] || fail "nbdd.service has no ExecStop=/bin/sh -c '...'"
MAINPID=${pids[-1]} timeout 10 /bin/sh -c "${exec_stop//'$$'/'$'}" || fail "ExecStop failed"
! kill -0 "${pids[-1]}" 2>/dev/null || fail "nbdd still runs after ExecStop (systemd would signal again)"
status=0
wait "${pids[-1]}" || status=$?
((status == 0)) || fail "nbdd exited $status after ExecStop"
MAINPID="" timeout 10 /bin/sh -c "${exec_stop//'$$'/'$'}" || fail "ExecStop fails when nbdd has already exited"
step "socket activation: systemd-socket-activate + $unit_dir/nbdd@.service's ExecStart"
# The unit's command line with $NBDD_ARGS from the example config (NBDD_ARGS=memory 1G),
# split at spaces as systemd splits an unquoted $VAR.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit_dir/nbdd@.service")
[[ $exec_start == '/usr/bin/nbdd '*'$NBDD_ARGS' ]] || fail "unexpected ExecStart in nbdd@.service: $exec_start"
NBDD_ARGS=$(sed -n 's/^NBDD_ARGS=//p' /usr/share/doc/nbdd/examples/systemd/example.conf)
read -ra argv <<<"${exec_start//'$NBDD_ARGS'/$NBDD_ARGS}"
echo "${argv[*]}"
sock=$tmp/activated.sock
systemd-socket-activate -l "$sock" "${argv[@]}" 2>"$tmp/activated.log" &
pids+=($!)
wait_for_socket "$sock"
size=$(nbdinfo --size "nbd+unix:///?socket=$sock")
[[ $size == 1073741824 ]] || fail "socket-activated nbdd: nbdinfo --size says $size, expected 1073741824"
# The listener (now nbdd, which systemd-socket-activate exec'd) ends gracefully on SIGTERM.
stop "${pids[-1]}" "socket-activated nbdd"

step "socket activation by libnbd: nbdinfo -- [ nbdd -f memory 16M ]"
size=$(timeout 30 nbdinfo --size -- [ /usr/bin/nbdd -f memory 16M ])
[[ $size == 16777216 ]] || fail "nbdinfo -- [ nbdd ... ] says $size, expected 16777216"

step "the installed example plugin, built out of tree with pkg-config"
cp -r /usr/share/doc/nbdd/examples/plugin "$tmp/plugin"
pkg-config --cflags nbdd-plugin
[[ $(pkg-config --variable=api_version nbdd-plugin) =~ ^[0-9]+$ ]] || fail "nbdd-plugin.pc has no api_version"
make -s -C "$tmp/plugin"
cmake -S "$tmp/plugin" -B "$tmp/plugin/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/plugin/build" >/dev/null
cmp -s <(nbdd --dump-plugin "$tmp/plugin/build/libnbdd-sector-label.so" | grep '^name=') <(echo name=sector-label) ||
  fail "the CMake-built example plugin does not load"
sock=$tmp/plugin.sock
nbdd -f -U "$sock" "$tmp/plugin/libnbdd-sector-label.so" disk7 size=1048576 2>"$tmp/plugin.log" &
pids+=($!)
wait_for_socket "$sock"
text=$(nbdsh -u "nbd+unix:///?socket=$sock" -c 'print(h.pread(512, 3 * 512).rstrip(b"\0").decode(), end="")')
[[ $text == "disk7 sector 3" ]] || fail "sector 3 of the example plugin reads '$text'"
nbdinfo "nbd+unix:///?socket=$sock" | grep -q 'is_read_only: true' || fail "the example plugin's disk is not read-only"
stop "${pids[-1]}" "nbdd with the example plugin"

step "man pages"
for page in nbdd nbdd-sim nbdd-plugin; do
  file=$(man -w "$page")  # found where man looks, not only by path
  warnings=$(MANWIDTH=80 man --warnings -E UTF-8 -l "$file" 2>&1 >"$tmp/$page.txt")
  [[ -z $warnings ]] || fail "man -l $file: $warnings"
  grep -q '^NAME' "$tmp/$page.txt" || fail "man -l $file renders no NAME section"
  echo "$file: $(wc -l <"$tmp/$page.txt") lines"
done

step "systemd-analyze verify"
out=$(systemd-analyze verify --man=no "$unit_dir/nbdd.service" "$unit_dir/nbdd@.service" "$unit_dir/nbdd@.socket" 2>&1) ||
  fail "systemd-analyze verify: $out"
[[ -z $out ]] || fail "systemd-analyze verify: $out"

step "apt-get purge nbdd"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq nbdd >"$tmp/apt-purge.log" 2>&1 ||
  fail "apt-get purge nbdd failed"
installed_by_us=0
status=$(dpkg-query -W -f='${db:Status-Status}' nbdd 2>/dev/null || echo not-installed)
[[ $status == not-installed ]] || fail "after purge, dpkg says nbdd is $status"
left=()
for p in "${paths[@]}" /etc/nbdd; do
  [[ -e $p && -z ${existed[$p]:-} ]] && left+=("$p")
done
((${#left[@]} == 0)) || fail "left behind after purge: ${left[*]}"
echo "package_test: all checks passed"
