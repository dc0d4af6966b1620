#!/bin/sh
# The configuration reference (docs/config.md) and the samples in etc/ are generated from
# the daemons' declarative tables; this fails when a table changed and they were not
# regenerated. To regenerate: see the commands printed on failure.
. "${LODE_SRCDIR:-.}/tests/lib/tap.sh"
src=${LODE_SRCDIR:-.}
bld=${LODE_BUILDDIR:-.}
tmp=${TEST_TMPDIR:-/tmp}/docs-current.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

daemons="lode-meta lode-node"
# lode-gateway joins once its binary is built; until then tests/unit/gateway/test_gw_config
# holds its sample and its section of docs/config.md to its table.
[ -x "$bld/lode-gateway" ] && daemons="$daemons lode-gateway"

# Every sample in etc/ is exactly what its daemon prints, and every daemon has one.
for d in $daemons; do
    [ -f "$src/etc/$d.conf.sample" ] || { ok 1 "etc/$d.conf.sample exists"; continue; }
done
for f in "$src"/etc/*.conf.sample; do
    name=$(basename "$f" .conf.sample)
    if [ ! -x "$bld/$name" ]; then
        ok 0 "etc/$name.conf.sample matches $name --print-sample # SKIP $name is not built"
        continue
    fi
    "$bld/$name" --print-sample > "$tmp/$name.sample"
    if cmp -s "$tmp/$name.sample" "$f"; then
        ok 0 "etc/$name.conf.sample matches $name --print-sample"
    else
        ok 1 "etc/$name.conf.sample matches $name --print-sample"
        diag "regenerate: build/$name --print-sample > etc/$name.conf.sample"
    fi
done

# docs/config.md = a fixed introduction, then each daemon's generated table, verbatim (the
# table starts with its "## DAEMON" heading).
for d in $daemons; do
    "$bld/$d" --print-markdown > "$tmp/$d.md"
    n=$(wc -l < "$tmp/$d.md")
    if sed -n "/^## $d\$/,\$p" "$src/docs/config.md" | head -n "$n" | cmp -s - "$tmp/$d.md"; then
        ok 0 "docs/config.md contains $d --print-markdown"
    else
        ok 1 "docs/config.md contains $d --print-markdown"
        diag "regenerate the $d section of docs/config.md with: build/$d --print-markdown"
    fi
done

# Each sample must be accepted once its required keys are filled in: it is documentation
# someone will copy.
sed -e 's/^#id =.*/id = 1/' \
    -e 's/^#raft-address =.*/raft-address = 127.0.0.1:7101/' \
    -e 's/^#rpc-address =.*/rpc-address = 127.0.0.1:7001/' \
    -e "s|^#data-dir =.*|data-dir = $tmp/data|" \
    -e 's|^#peers =.*|peers = 1=127.0.0.1:7101/127.0.0.1:7001|' \
    -e 's/^#cluster-secret =.*/cluster-secret = 0123456789abcdef0123/' \
    "$tmp/lode-meta.sample" > "$tmp/lode-meta.conf"
sed -e 's/^#cluster =.*/cluster = docs-test/' \
    -e "s|^#data-dirs =.*|data-dirs = $tmp/disk1,$tmp/disk2|" \
    -e 's/^#rpc-address =.*/rpc-address = 127.0.0.1:7201/' \
    -e 's/^#failure-domain =.*/failure-domain = rack1/' \
    -e 's/^#meta =.*/meta = 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003/' \
    -e 's/^#cluster-secret =.*/cluster-secret = 0123456789abcdef0123/' \
    "$tmp/lode-node.sample" > "$tmp/lode-node.conf"
if [ -f "$tmp/lode-gateway.sample" ]; then
    sed -e 's/^#meta =.*/meta = 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003/' \
        -e 's/^#cluster-secret =.*/cluster-secret = 0123456789abcdef0123/' \
        "$tmp/lode-gateway.sample" > "$tmp/lode-gateway.conf"
fi
for d in $daemons; do
    if "$bld/$d" -c "$tmp/$d.conf" --check > "$tmp/$d.check" 2>&1; then
        ok 0 "the $d sample with its required keys filled in passes --check"
    else
        ok 1 "the $d sample with its required keys filled in passes --check"
        while read -r l; do diag "$l"; done < "$tmp/$d.check"
    fi
done
tap_done
