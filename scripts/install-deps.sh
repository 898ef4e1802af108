#!/usr/bin/env bash
# Installs every Debian 12 package nbdd needs to build, test, fuzz and benchmark.
# Idempotent: when everything is present it does not touch apt at all.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev libgtest-dev libgmock-dev librapidcheck-dev
  libnbd-dev libnbd-bin python3-libnbd
  clang-14 libclang-rt-14-dev llvm-14
  qemu-utils fio nbdkit nbdkit-plugin-dev nbdkit-plugin-python nbdkit-plugin-perl nbdkit-plugin-lua procps iproute2
  scdoc man-db dpkg-dev lintian systemd  # man pages, the Debian package and its checks
  libgnutls28-dev gnutls-bin  # TLS (issue 24): the library, and certtool/psktool for test credentials
  liburing-dev  # the io_uring transport (issue 26)
  linux-perf strace  # bench/run.sh syscalls: system calls per request (perf; strace as the fallback)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
