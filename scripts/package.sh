#!/usr/bin/env bash
# Builds the Debian package build/package/nbdd_VERSION_ARCH.deb from this checkout.
#   scripts/package.sh             build (or reuse) build/default, then package it
#   NBDD_BUILD_DIR=DIR scripts/package.sh   package another build directory
# What goes in is exactly what `cmake --install --prefix /usr --strip` installs (see
# cmake/install.cmake), plus Debian's metadata: control, md5sums, copyright, changelog.
# VERSION is project()'s, plus +git<commits>.<revision> when built inside a git checkout
# (".dirty" when the tree had changes). Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${NBDD_BUILD_DIR:-build/default}
out=build/package
jobs=${NBDD_JOBS:-$(nproc)}
maintainer="nbdd developers <nbdd@example.invalid>"

if [[ $build == build/default ]]; then
  cmake --preset default -DNBDD_WERROR=ON >/dev/null
elif [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
# Only what is installed (a fresh checkout does not need the tests built to be packaged).
cmake --build "$build" -j "$jobs" --target nbdd nbdd-sim nbdd_man

# The version and revision compiled into nbdd (cmake/version.cmake wrote them this build).
header=$build/generated/nbdd_version.hpp
upstream=$(sed -n 's/^#define NBDD_VERSION "\(.*\)"$/\1/p' "$header")
revision=$(sed -n 's/^#define NBDD_GIT_REVISION "\(.*\)"$/\1/p' "$header")
[[ -n $upstream && -n $revision ]] || { echo "package.sh: no version in $header" >&2; exit 1; }
version=$upstream
if [[ $revision != unknown ]]; then
  commits=$(git rev-list --count HEAD)  # grows with every commit, so newer packages sort later
  version+="+git$commits.${revision//[^A-Za-z0-9.+~]/.}"
fi
# Timestamps (dpkg-deb's file times, the changelog date) are the last commit's: the same
# checkout gives the same package.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
arch=$(dpkg --print-architecture)

root=$out/root
rm -rf "$root"
mkdir -p "$root/DEBIAN"
DESTDIR=$PWD/$root cmake --install "$build" --prefix /usr --strip >/dev/null
strip --remove-section=.comment --remove-section=.note "$root/usr/bin/"*  # as dh_strip does
for page in nbdd.1 nbdd-sim.1 nbdd-plugin.3; do
  [[ -f $root/usr/share/man/man${page##*.}/$page ]] || { echo "package.sh: man page $page missing (is scdoc installed?)" >&2; exit 1; }
done
find "$root/usr/share/man" -type f -exec gzip -9n {} +

doc=$root/usr/share/doc/nbdd
first_year=$(git log --max-parents=0 --format=%cd --date=format:%Y HEAD 2>/dev/null | tail -1 || true)
last_year=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)
years=${first_year:-$last_year}
[[ $years == "$last_year" ]] || years+="-$last_year"
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: nbdd
Comment: Built from the nbdd source tree by scripts/package.sh.

Files: *
Copyright: $years the nbdd developers
License: other
 The nbdd source tree does not state a license yet. Until it does, this package
 is for the project's own testing and deployment, not for redistribution.
EOF
cat >"$out/changelog" <<EOF
nbdd ($version) unstable; urgency=medium

  * Built from git revision $revision.

 -- $maintainer  $(date -R -u -d "@$SOURCE_DATE_EPOCH")
EOF
gzip -9nc "$out/changelog" >"$doc/changelog.gz"
mkdir -p "$root/usr/share/lintian/overrides"
cat >"$root/usr/share/lintian/overrides/nbdd" <<'EOF'
# nbdd's units are for systemd; under another init, start nbdd with -P PIDFILE (its parent
# returns once the daemon listens and the pid file is written).
nbdd: package-supports-alternative-init-but-no-init.d-script [usr/lib/systemd/system/nbdd.service]
# Built with the project's CMake flags, not dpkg-buildflags: no -D_FORTIFY_SOURCE=2.
nbdd: hardening-no-fortify-functions [usr/bin/nbdd]
nbdd: hardening-no-fortify-functions [usr/bin/nbdd-sim]
EOF

find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +
chmod 0755 "$root/usr/bin/"*

# Shared-library dependencies, as dpkg-shlibdeps finds them (it wants a debian/control).
shlibs=$out/shlibs
mkdir -p "$shlibs/debian"
printf 'Source: nbdd\n\nPackage: nbdd\nArchitecture: any\n' >"$shlibs/debian/control"
bin=$PWD/$root/usr/bin
depends=$(cd "$shlibs" && dpkg-shlibdeps -O "-e$bin/nbdd" "-e$bin/nbdd-sim" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || { echo "package.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

cat >"$root/DEBIAN/control" <<EOF
Package: nbdd
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends
Section: net
Priority: optional
Description: Network Block Device server with nbdkit's command line
 nbdd serves a block device over the NBD protocol (TCP, Unix sockets or
 systemd socket activation) from a plugin: a RAM disk, a file or block
 device, a shell script, or a loadable C++ plugin. Its command line and
 plugin model follow nbdkit's. Its protocol core is an I/O-free state
 machine, also driven by the included deterministic simulator, nbdd-sim.
 .
 The package also has the plugin headers with a pkg-config file
 (nbdd-plugin), an example plugin, man pages, and systemd units for
 socket-activated servers (none is enabled).
EOF
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/"*

deb=$out/nbdd_${version}_$arch.deb
rm -f "$out"/nbdd_*.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
