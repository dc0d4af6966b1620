#!/bin/sh
# Regenerates the build system. Run once after a fresh clone, then ./configure && make.
set -eu
cd "$(dirname "$0")"
for t in autoreconf automake libtoolize pkg-config; do
    command -v "$t" >/dev/null 2>&1 || { echo "autogen.sh: '$t' not found; run ops/setup-deps.sh" >&2; exit 1; }
done
mkdir -p m4 build-aux
autoreconf -fi
# Automake ships the TAP driver but does not install it by itself.
am_dir=$(automake --print-libdir)
cp -f "$am_dir/tap-driver.sh" build-aux/tap-driver.sh
