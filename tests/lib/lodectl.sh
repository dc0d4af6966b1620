# lodectl tests against a cluster that tests/lib/meta_cluster runs (lode-meta replicas and,
# optionally, lode-nodes). Sourced after tests/lib/tap.sh, with $srcdir and $builddir set:
#
#   lc_start test_lodectl 3        # NAME REPLICAS [NODES]: the cluster up; sets tmp, exports
#                                  # LODE_META and LODE_SECRET_FILE, sources the helper's env
#   run meta status                # lodectl ARGS...: sets $out (stdout), $err (stderr), $rc
#   json_get 'd["leader"]["id"]'   # a Python expression over the JSON document in $out
#   tap_done
#
# LODECTL and HELPER name the two programs. At exit (a trap lc_start sets) the cluster is
# stopped and the scratch directory $tmp removed; after a failed test point both are kept
# and the daemons' logs printed as diagnostics.

# shellcheck shell=sh
# shellcheck disable=SC2034,SC2154 # tmp and the env's variables are for the sourcing script
LODECTL="$builddir/lodectl"
HELPER="$builddir/tests/lib/meta_cluster"
lc_helper_pid=

lc_cleanup() {
    if [ -n "$lc_helper_pid" ]; then
        # SIGUSR1 keeps the cluster directory and prints the daemons' logs for a failed run.
        if tap_failed; then kill -USR1 "$lc_helper_pid" 2>/dev/null
        else kill -TERM "$lc_helper_pid" 2>/dev/null; fi
        wait "$lc_helper_pid" 2>/dev/null
    fi
    if tap_failed; then diag "kept $tmp"; else rm -rf "$tmp"; fi
}

# lc_start NAME REPLICAS [NODES]: Bail out unless lodectl and the helper are built; then a
# scratch directory under $TEST_TMPDIR (or /tmp) named after NAME, and the cluster, waited
# for up to 30 s.
lc_start() {
    [ -x "$LODECTL" ] || tap_bail "$LODECTL not built"
    [ -x "$HELPER" ] || tap_bail "$HELPER not built"
    tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/$1.XXXXXX") || tap_bail "mktemp"
    shift
    trap lc_cleanup EXIT
    trap 'exit 1' INT TERM HUP

    "$HELPER" "$tmp/env" "$@" &
    lc_helper_pid=$!
    lc_i=0
    while [ ! -f "$tmp/env" ] && [ $lc_i -lt 300 ]; do
        kill -0 "$lc_helper_pid" 2>/dev/null || break
        sleep 0.1
        lc_i=$((lc_i + 1))
    done
    [ -f "$tmp/env" ] || tap_bail "the cluster did not start"
    . "$tmp/env"
    export LODE_META LODE_SECRET_FILE
    unset LODE_CLUSTER_SECRET
}

run() { # run ARGS...: sets $out (stdout), $err (stderr), $rc
    "$LODECTL" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    out=$(cat "$tmp/out")
    err=$(cat "$tmp/err")
}

json_get() { # json_get PYTHON-EXPR: evaluates it with `d` = the JSON document in $out
    printf '%s' "$out" | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"
}
