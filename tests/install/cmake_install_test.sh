#!/usr/bin/env bash
# `cmake --install` into a prefix the build was not configured with, under DESTDIR:
#   tests/install/cmake_install_test.sh BUILD_DIR
# (scripts/test.sh package runs it on build/default.) Checks: every installed file is under
# DESTDIR/PREFIX and in install_manifest.txt; the programs, man pages, units and the .pc file
# are there; the units and the .pc file name this prefix, not the configured one; the example
# plugin compiles against the installed headers alone (via pkg-config) and the installed nbdd
# loads it. Needs no root: nothing is written outside a temporary directory and BUILD_DIR.
set -euo pipefail
build=$(realpath "$1")
prefix=/opt/nbdd-install-test
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
root=$dest$prefix
fail() {
  echo "cmake_install_test: FAIL: $*" >&2
  exit 1
}

DESTDIR=$dest cmake --install "$build" --prefix "$prefix" >/dev/null

outside=$(find "$dest" -mindepth 1 ! -path "$root" ! -path "$root/*" ! -type d)
[[ -z $outside ]] || fail "installed outside $prefix: $outside"
# The manifest lists exactly the files installed (as PREFIX/..., without DESTDIR).
diff <(sort "$build/install_manifest.txt") <(find "$root" ! -type d | sed "s|^$dest||" | sort) >"$tmp/manifest.diff" ||
  fail "install_manifest.txt differs from what was installed: $(cat "$tmp/manifest.diff")"

for f in bin/nbdd bin/nbdd-sim share/man/man1/nbdd.1 share/man/man1/nbdd-sim.1 share/man/man3/nbdd-plugin.3 \
  include/nbdd/plugins/plugin_api.hpp share/pkgconfig/nbdd-plugin.pc lib/systemd/system/nbdd.service \
  lib/systemd/system/nbdd@.service lib/systemd/system/nbdd@.socket share/doc/nbdd/examples/plugin/Makefile; do
  [[ -e $root/$f ]] || fail "$prefix/$f was not installed"
done
"$root/bin/nbdd" --version | grep -q '^nbdd [0-9]' || fail "the installed nbdd does not run"

grep -qx "prefix=$prefix" "$root/share/pkgconfig/nbdd-plugin.pc" || fail "nbdd-plugin.pc does not say prefix=$prefix"
for unit in nbdd.service nbdd@.service; do
  grep -q "^ExecStart=$prefix/bin/nbdd " "$root/lib/systemd/system/$unit" ||
    fail "$unit does not start $prefix/bin/nbdd: $(grep ExecStart= "$root/lib/systemd/system/$unit")"
done

# The SDK is self-contained: the example builds with only what pkg-config points at.
cflags=$(PKG_CONFIG_PATH=$root/share/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest pkg-config --cflags nbdd-plugin | xargs)
[[ $cflags == "-I$root/include/nbdd" ]] || fail "pkg-config --cflags nbdd-plugin says '$cflags'"
g++ -std=c++20 -fPIC -shared -Wall -Wextra -Werror $cflags -o "$tmp/libexample.so" \
  "$root/share/doc/nbdd/examples/plugin/sector_label_plugin.cpp"
[[ $("$root/bin/nbdd" --dump-plugin "$tmp/libexample.so" | grep '^name=') == name=sector-label ]] ||
  fail "the installed nbdd does not load the example plugin built against the installed headers"
echo "cmake_install_test: all checks passed ($(find "$root" ! -type d | wc -l) files under DESTDIR$prefix)"
