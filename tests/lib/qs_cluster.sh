# The cluster of the shell integration tests: ops/quickstart.sh (3 lode-meta, 6 lode-node in six
# failure domains, one lode-gateway) from the build tree's binaries, in a private state
# directory on ports of its own. Sourced after tests/lib/tap.sh, with $srcdir and $builddir set:
#
#   qs_need_built lode-meta lode-node lode-gateway lodectl   # Bail out when one is not built
#   qs_ports 30000 150 100 53      # optional: where this suite looks for free ports (below)
#   qs_start test_gw_hostile       # cluster up; sets tmp and QS_EP, exports the credentials
#   ok 0 "quickstart brings up meta, nodes and the gateway"
#   ...                            # TAP points; the state is in $LODE_QUICKSTART_DIR
#   qs_stop                        # optional graceful stop (to check what the daemons logged)
#   tap_done
#
# At exit (a trap qs_start sets) the cluster is stopped; the scratch directory $tmp is removed,
# or kept and the gateway's logs shown as diagnostics when a test point failed.
#
# Ports: the cluster takes base+1 up to base+606 (ops/quickstart.sh lists them). A run tries
#   base = BASE + ((PID + OFFSET + TRY * STEP) % SLOTS) * STRIDE
# for TRY = 0, 1, 2 (wiping the failed attempt in between), so that a block someone else holds
# costs a retry rather than the run. Suites that may run at the same time (make -j check) keep
# apart by giving themselves another BASE or OFFSET through qs_ports; the default is
# qs_ports 10000 200 100 67 0.

# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154 # QS_* are for the sourcing script; srcdir, builddir its own
QS_PORT_BASE=10000
QS_PORT_SLOTS=200
QS_PORT_STRIDE=100
QS_PORT_STEP=67
QS_PORT_OFFSET=0

# qs_need_built PROGRAM...: Bail out unless each PROGRAM (relative to $builddir) is built.
qs_need_built() {
    for b in "$@"; do
        [ -x "$builddir/$b" ] || tap_bail "$builddir/$b not built"
    done
}

# qs_ports BASE SLOTS STRIDE STEP [OFFSET]: the port blocks qs_start tries (see the top).
qs_ports() {
    QS_PORT_BASE=$1
    QS_PORT_SLOTS=$2
    QS_PORT_STRIDE=$3
    QS_PORT_STEP=$4
    QS_PORT_OFFSET=${5:-0}
}

# The base port of attempt $1.
qs_port() {
    echo $((QS_PORT_BASE + (($$ + QS_PORT_OFFSET + $1 * QS_PORT_STEP) % QS_PORT_SLOTS) * QS_PORT_STRIDE))
}

# qs_start NAME: a fresh cluster in a new scratch directory $TEST_TMPDIR/NAME.XXXXXX (default
# /tmp), which it sets as `tmp`; the cluster's state is $tmp/cluster and what quickstart printed
# is $tmp/quickstart.log. Exports LODE_QUICKSTART_DIR, _BUILDDIR, _NOBUILD and _PORT (the base
# that worked) and the user's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (empty if quickstart
# wrote none: suites that depend on them check); sets QS_EP (http://127.0.0.1:PORT of the S3
# endpoint) and QS_HOSTPORT (the same without http://). Bails out, showing quickstart's output,
# when the cluster does not come up in three attempts.
qs_start() {
    tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/$1.XXXXXX") || tap_bail "mktemp"
    export LODE_QUICKSTART_DIR=$tmp/cluster
    export LODE_QUICKSTART_BUILDDIR=$builddir
    export LODE_QUICKSTART_NOBUILD=1
    LODE_QUICKSTART_PORT=$(qs_port 0)
    export LODE_QUICKSTART_PORT
    trap qs_cleanup EXIT
    trap 'exit 1' INT TERM HUP
    local try=0
    until "$srcdir/ops/quickstart.sh" start >"$tmp/quickstart.log" 2>&1; do
        try=$((try + 1))
        if [ $try -ge 3 ]; then
            while IFS= read -r l; do diag "$l"; done <"$tmp/quickstart.log"
            tap_bail "quickstart failed"
        fi
        "$srcdir/ops/quickstart.sh" wipe >/dev/null 2>&1
        LODE_QUICKSTART_PORT=$(qs_port $try)
    done
    # shellcheck disable=SC1091 # written by quickstart.sh at run time
    . "$LODE_QUICKSTART_DIR/credentials"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    QS_EP="http://127.0.0.1:$((LODE_QUICKSTART_PORT + 500))"
    QS_HOSTPORT=${QS_EP#http://}
}

# qs_stop: stops every process of the cluster (SIGTERM, as quickstart does); its data is kept.
qs_stop() {
    "$srcdir/ops/quickstart.sh" stop >/dev/null 2>&1
}

# The EXIT trap of qs_start.
qs_cleanup() {
    qs_stop
    if tap_failed; then
        for f in "$LODE_QUICKSTART_DIR"/gateway/*.log; do
            [ -f "$f" ] && { diag "--- $f"; tail -n 30 "$f" | while IFS= read -r l; do diag "$l"; done; }
        done
        diag "kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
