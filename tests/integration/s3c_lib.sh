# Shared harness of the real-client suites (tests/integration/test_s3c_*.sh); sourced, not run.
#
#   . "$(dirname "$0")/s3c_lib.sh"
#   s3c_need /usr/bin/aws "awscli"     # SKIP the whole suite when a client is missing
#   s3c_start test_s3c_awscli          # cluster up; $S3C_EP, $tmp, credentials exported
#   ...                                # TAP points (tests/lib/tap.sh)
#   s3c_finish                         # graceful stop, sanitizer check, plan
#
# The cluster is the one ops/quickstart.sh brings up (3 lode-meta, 6 lode-node in six
# failure domains, one lode-gateway) through tests/lib/qs_cluster.sh, from the build tree's
# binaries, in a private state directory on a port range of its own, so that suites can run
# in parallel. The clients are always the system's (/usr/bin/...), and their configuration is
# isolated in $tmp so that a developer's ~/.aws, ~/.s3cfg or rclone.conf can neither help nor
# break a run.
srcdir=${LODE_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=$(cd "${LODE_BUILDDIR:-.}" && pwd)
# shellcheck source=tests/lib/tap.sh
. "$srcdir/tests/lib/tap.sh" || { echo "Bail out! no $srcdir/tests/lib/tap.sh"; exit 99; }
# shellcheck source=tests/lib/qs_cluster.sh
. "$srcdir/tests/lib/qs_cluster.sh" || tap_bail "no $srcdir/tests/lib/qs_cluster.sh"

# s3c_need PATH WHAT [OPTION]: SKIP the suite (1..0 # SKIP) when PATH is not an executable;
# OPTION is the ops/setup-deps.sh option that installs it (default --test-clients).
s3c_need() {
    [ -x "$1" ] || tap_skip_all "$2 is not installed ($1 missing; ops/setup-deps.sh ${3:---test-clients} installs it)"
}

# s3c_start NAME: a fresh cluster for this suite (qs_start); sets tmp, S3C_EP and
# S3C_HOSTPORT and exports the credentials. Bails out when the cluster does not come up after
# three port ranges, or comes up without credentials.
s3c_start() {
    S3C_T0=$(date +%s)
    qs_need_built lode-meta lode-node lode-gateway lodectl
    [ -x /usr/bin/curl ] || tap_skip_all "no /usr/bin/curl"
    [ -x /usr/bin/python3 ] || tap_skip_all "no /usr/bin/python3"
    # One of 37 blocks 600 ports apart, all below the ephemeral range; the suites of one
    # `make -j` differ by pid, and a taken block is retried.
    qs_ports 10000 37 600 13
    qs_start "$1"
    if [ -z "$AWS_ACCESS_KEY_ID" ] || [ -z "$AWS_SECRET_ACCESS_KEY" ]; then tap_bail "no credentials"; fi
    S3C_EP=$QS_EP
    # shellcheck disable=SC2034 # for the suites: the endpoint as host:port
    S3C_HOSTPORT=$QS_HOSTPORT
    # Nothing from the developer's environment: no AWS_* or RCLONE_* settings (profiles, CA
    # bundles, endpoints, checksum policies), no instance metadata, no Python or Node paths
    # that would swap the system's libraries for others.
    for v in $(env | sed -n 's/^\(AWS_[A-Za-z0-9_]*\|RCLONE_[A-Za-z0-9_]*\)=.*/\1/p'); do
        case "$v" in AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY) ;; *) unset "$v" ;; esac
    done
    unset PYTHONPATH PYTHONHOME PYTHONUSERBASE NODE_PATH NODE_OPTIONS
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY S3C_EP
    export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
    export PYTHONNOUSERSITE=1 AWS_EC2_METADATA_DISABLED=true
    export AWS_CONFIG_FILE=$tmp/aws-config AWS_SHARED_CREDENTIALS_FILE=$tmp/aws-credentials
    : >"$AWS_CONFIG_FILE"
    : >"$AWS_SHARED_CREDENTIALS_FILE"
    # Without a proxy: loopback only.
    unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
}

# s3c_finish: stops the cluster gracefully and checks that the gateway had nothing to say to
# the sanitizers (in sanitized builds), then prints the plan and exits.
s3c_finish() {
    diag "suite time: $(($(date +%s) - S3C_T0)) s"
    qs_stop
    out=$(cat "$LODE_QUICKSTART_DIR/gateway/stdout.log" 2>/dev/null)
    unlike "$out" "Sanitizer|runtime error" "lode-gateway stopped without sanitizer reports"
    tap_done
}

# s3c_gen FILE BYTES SEED: BYTES pseudo-random bytes from SEED (Python's Mersenne Twister,
# so any run with the same seed writes the same file; no entropy pool drained).
s3c_gen() {
    /usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import random, sys
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
with open(path, "wb") as f:
    while n > 0:
        k = min(n, 1 << 20)
        f.write(r.randbytes(k))
        n -= k
PY
}

# s3c_tree DIR: the listing fixture, 2000 tiny files DIR/dNN/kNNN (20 folders of 100), each
# holding its own relative path.
s3c_tree() {
    /usr/bin/python3 - "$1" <<'PY'
import os, sys
top = sys.argv[1]
for d in range(20):
    os.makedirs("%s/d%02d" % (top, d), exist_ok=True)
    for k in range(100):
        rel = "d%02d/k%03d" % (d, k)
        with open(os.path.join(top, rel), "w") as f:
            f.write(rel)
PY
}

# s3c_sha FILE: its SHA-256 in hex.
s3c_sha() { sha256sum <"$1" | cut -d' ' -f1; }

# s3c_md5 FILE: its MD5 in hex (a single-part object's ETag).
s3c_md5() { md5sum <"$1" | cut -d' ' -f1; }

# s3c_mp_etag PARTSIZE FILE: the ETag S3 gives FILE uploaded in parts of PARTSIZE bytes:
# MD5 over the concatenated binary MD5s of the parts, "-", the number of parts.
s3c_mp_etag() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import hashlib, sys
size, path = int(sys.argv[1]), sys.argv[2]
digests = b""
n = 0
with open(path, "rb") as f:
    while True:
        b = f.read(size)
        if not b:
            break
        digests += hashlib.md5(b).digest()
        n += 1
print("%s-%d" % (hashlib.md5(digests).hexdigest(), n))
PY
}

# s3c_slice FILE OFFSET LENGTH OUT: bytes OFFSET..OFFSET+LENGTH-1 of FILE into OUT.
s3c_slice() {
    tail -c +$(($2 + 1)) "$1" | head -c "$3" >"$4"
}

# s3c_same A B NAME: a test point, A and B byte for byte the same.
s3c_same() {
    if cmp -s "$1" "$2"; then
        ok 0 "$3"
    else
        ok 1 "$3"
        diag "  $1: $(wc -c <"$1" 2>/dev/null) bytes, $2: $(wc -c <"$2" 2>/dev/null) bytes"
    fi
}

# s3c_diag_file FILE [LINES]: the last lines of FILE as diagnostics.
s3c_diag_file() {
    [ -f "$1" ] || return 0
    tail -n "${2:-15}" "$1" | while IFS= read -r l; do diag "  $l"; done
}

# s3c_bridge: reads a client program's report on stdin and turns it into TAP points, so
# that a Python or JavaScript suite shares the shell's numbering. Lines:
#   R<TAB>0|1<TAB>name   a test point (0 passes)
#   D<TAB>text           a diagnostic
# Anything else is shown as a diagnostic.
s3c_bridge() {
    tab=$(printf '\t')
    while IFS= read -r line; do
        case "$line" in
        "R$tab"*)
            rest=${line#R"$tab"}
            ok "${rest%%"$tab"*}" "${rest#*"$tab"}" || true
            ;;
        "D$tab"*) diag "${line#D"$tab"}" ;;
        *) diag "$line" ;;
        esac
    done
}
