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

"$bld/lode-meta" --print-sample > "$tmp/sample"
if cmp -s "$tmp/sample" "$src/etc/lode-meta.conf.sample"; then
    ok 0 "etc/lode-meta.conf.sample matches lode-meta --print-sample"
else
    ok 1 "etc/lode-meta.conf.sample matches lode-meta --print-sample"
    diag "regenerate: build/lode-meta --print-sample > etc/lode-meta.conf.sample"
fi

"$bld/lode-meta" --print-markdown > "$tmp/md"
# docs/config.md = a fixed introduction, then the generated tables.
if tail -n "$(wc -l < "$tmp/md")" "$src/docs/config.md" | cmp -s - "$tmp/md"; then
    ok 0 "docs/config.md ends with lode-meta --print-markdown"
else
    ok 1 "docs/config.md ends with lode-meta --print-markdown"
    diag "regenerate the tables at the end of docs/config.md with: build/lode-meta --print-markdown"
fi

# The sample must be accepted once its required keys are filled in: it is documentation
# someone will copy.
sed -e 's/^#id =.*/id = 1/' \
    -e 's/^#raft-address =.*/raft-address = 127.0.0.1:7101/' \
    -e 's/^#rpc-address =.*/rpc-address = 127.0.0.1:7001/' \
    -e "s|^#data-dir =.*|data-dir = $tmp/data|" \
    -e 's|^#peers =.*|peers = 1=127.0.0.1:7101/127.0.0.1:7001|' \
    -e 's/^#cluster-secret =.*/cluster-secret = 0123456789abcdef0123/' \
    "$tmp/sample" > "$tmp/filled.conf"
if "$bld/lode-meta" -c "$tmp/filled.conf" --check > "$tmp/check.out" 2>&1; then
    ok 0 "the sample with its required keys filled in passes --check"
else
    ok 1 "the sample with its required keys filled in passes --check"
    while read -r l; do diag "$l"; done < "$tmp/check.out"
fi
tap_done
