#!/bin/bash
# The rc transport end to end on soft-RoCE: inside one qemu guest (tests/rdma/vm.sh) a small
# cluster runs (3 lode-meta and a lode-gateway from ops/quickstart.sh, 3 lode-nodes started
# here), the nodes and the gateway's workers with rc listeners on rxe0's address; lode-put and
# lode-get with --transport rc run on rxe1's address. Objects of several sizes go in over rc
# (staged PUTs the gateway RDMA-READs, a multipart upload of staged parts; READs the client's
# NIC refuses fail the PUT and store nothing) and come back over rc (RDMA WRITEs from the
# nodes and the gateway) whole and ranged, then degraded with one of the three nodes of a
# 2+1 bucket killed; every result must be byte-identical with the file and with a plain HTTP
# GET made by an independent client (Python's standard library). SKIPs, with the reason,
# only where no guest can run here (vm.sh --check exit 77).
srcdir=${LODE_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=$(cd "${LODE_BUILDDIR:-.}" && pwd)
. "$srcdir/tests/lib/tap.sh"

# ---- on the host: boot a guest that runs this script ----
if [ "${LODE_RDMA_VM:-0}" != 1 ]; then
    for b in lode-meta lode-node lode-gateway lodectl lode-get lode-put tests/lib/object_layout \
        tests/rdma/rc_bad_put; do
        [ -x "$builddir/$b" ] || tap_bail "$builddir/$b not built"
    done
    reason=$("$srcdir/tests/rdma/vm.sh" --check 2>&1)
    case $? in
    0) ;;
    77) tap_skip_all "no qemu guest here: $(printf '%s' "$reason" | tail -n 1)" ;;
    *) tap_bail "tests/rdma/vm.sh --check failed: $reason" ;;
    esac
    # The guest shares the current folder read-write at the same path: run from the build
    # tree. Seven sanitizer-built daemons need more than the default guest memory.
    cd "$builddir" || tap_bail "cd $builddir"
    export LODE_SRCDIR=$srcdir LODE_BUILDDIR=$builddir
    # The guest sees the host's / read-only, but its /tmp is its own: a source tree under
    # /tmp (a CI clone) must be shared too.
    export LODE_RDMA_VM_SHARE="$srcdir${LODE_RDMA_VM_SHARE:+:$LODE_RDMA_VM_SHARE}"
    exec "$srcdir/tests/rdma/vm.sh" -m "${LODE_RDMA_VM_MEM:-3072}" \
        -t "${LODE_RDMA_VM_TIMEOUT:-420}" /bin/bash "$srcdir/tests/rdma/test_rc_cluster.sh"
fi

# ---- in the guest ----
PY=/usr/bin/python3
[ -x "$PY" ] || tap_skip_all "no /usr/bin/python3"
srv=${LODE_RDMA_VM_ADDRS%% *}   # rxe0: the cluster's rc listeners
cli=${LODE_RDMA_VM_ADDRS##* }   # rxe1: the client
[ -n "$srv" ] && [ "$srv" != "$cli" ] || tap_bail "LODE_RDMA_VM_ADDRS is '$LODE_RDMA_VM_ADDRS'"
tmp=$(mktemp -d /tmp/rc_cluster.XXXXXX) || tap_bail "mktemp"
base=20000
state=$tmp/cluster
export LODE_QUICKSTART_DIR=$state LODE_QUICKSTART_BUILDDIR=$builddir LODE_QUICKSTART_NOBUILD=1
export LODE_QUICKSTART_NODES=0 LODE_QUICKSTART_PORT=$base
n_nodes=3

logs() {
    for f in "$state"/*/stdout.log "$state"/*/*.log; do
        [ -s "$f" ] && { diag "--- $f"; tail -n 15 "$f" | while IFS= read -r l; do diag "$l"; done; }
    done
}
stop_all() {
    for p in "$state"/node*/pid; do
        [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
    done
    "$srcdir/ops/quickstart.sh" stop >/dev/null 2>&1
}
trap 'stop_all' EXIT

"$srcdir/ops/quickstart.sh" start >"$tmp/quickstart.log" 2>&1 ||
    { while IFS= read -r l; do diag "$l"; done <"$tmp/quickstart.log"; tap_bail "quickstart failed"; }
meta=$(sed -n "s/^export LODE_META='\(.*\)'$/\1/p" "$state/env.sh")
lodectl() { "$builddir/lodectl" --meta "$meta" --secret-file "$state/cluster.secret" "$@"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---- data nodes with rc listeners (no tcp data listener: only rc can move their bytes) ----
# Node 3 stages every rc write (rdma-read-buffers = 0); the others read chunk ranges into
# registered memory and RDMA-write them from there.
for i in $(seq 1 $n_nodes); do
    dir=$state/node$i
    mkdir -p "$dir/data"
    arena=16MiB
    [ "$i" = 3 ] && arena=0
    cat >"$dir/lode-node.conf" <<CONF
cluster = quickstart
data-dirs = $dir/data
rpc-address = 127.0.0.1:$((base + 300 + i))
metrics-address = 127.0.0.1:$((base + 400 + i))
rdma-address = $srv:$((base + 700 + i))
rdma-staging-size = 4MiB
rdma-read-buffers = $arena
failure-domain = rack$i
meta = $meta
cluster-secret-file = $state/cluster.secret
heartbeat-interval = 1s
volume-size = 64MiB
log-file = $dir/lode-node.log
CONF
    nohup setsid "$builddir/lode-node" -c "$dir/lode-node.conf" >"$dir/stdout.log" 2>&1 &
    echo $! >"$dir/pid"
    disown # killing one later is no news for the TAP output
done
up=0
for _ in $(seq 1 300); do
    up=$(lodectl --timeout 2s node list 2>/dev/null | grep -Ec " rack[0-9]+ +up ")
    [ "$up" = $n_nodes ] && break
    sleep 0.2
done
[ "$up" = $n_nodes ] || { logs; tap_bail "only $up of $n_nodes nodes came up"; }

# ---- the gateway again, now with rc listeners (worker w on port + w) ----
kill "$(cat "$state/gateway/pid")"
for _ in $(seq 1 100); do alive "$state/gateway/pid" || break; sleep 0.1; done
cat >>"$state/gateway/lode-gateway.conf" <<CONF
rdma-address = $srv:$((base + 520))
rdma-staging-size = 4MiB
rdma-upload-buffers = 16MiB
CONF
nohup setsid "$builddir/lode-gateway" -c "$state/gateway/lode-gateway.conf" \
    >"$state/gateway/stdout.log" 2>&1 &
echo $! >"$state/gateway/pid"
for _ in $(seq 1 200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((base + 500))/" || true)
    [ "$code" = 403 ] && break
    sleep 0.2
done
[ "$code" = 403 ] || { logs; tap_bail "the gateway does not answer after its restart"; }
ok 0 "3 meta, 3 nodes and a gateway with rc listeners on $srv are up"

. "$state/credentials"
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
export LODE_ENDPOINT=127.0.0.1:$((base + 500)) LODE_RDMA_LOCAL=$cli
GET=$builddir/lode-get
PUT=$builddir/lode-put
lodectl bucket create rcbucket --owner quickstart --ec 2+1 >"$tmp/mb.log" 2>&1
ok $? "a 2+1 bucket" || diag "$(cat "$tmp/mb.log")"

# A plain S3 request signed with Python's standard library (SigV4, UNSIGNED-PAYLOAD):
#   plain.py METHOD PATH OUT [TOKEN]; the body (PUT) from $PLAIN_BODY, else empty. Prints the
#   status and x-amz-rdma-reply ("-" when absent); the response body goes to OUT.
cat >"$tmp/plain.py" <<'PYEOF'
import datetime, hashlib, hmac, http.client, os, sys
method, path, out = sys.argv[1:4]
token = sys.argv[4] if len(sys.argv) > 4 else None
ak, sk, ep = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], os.environ["LODE_ENDPOINT"]
now = datetime.datetime.now(datetime.timezone.utc)
amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
hd = {"host": ep, "x-amz-date": amz, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
if token:
    hd["x-amz-rdma-token"] = token
names = sorted(hd)
creq = "\n".join([method, path, "", "".join(n + ":" + hd[n] + "\n" for n in names),
                  ";".join(names), "UNSIGNED-PAYLOAD"])
scope = day + "/us-east-1/s3/aws4_request"
sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
h = lambda k, m: hmac.new(k, m.encode(), hashlib.sha256).digest()
key = h(h(h(h(("AWS4" + sk).encode(), day), "us-east-1"), "s3"), "aws4_request")
hd["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
    ak, scope, ";".join(names), hmac.new(key, sts.encode(), hashlib.sha256).hexdigest())
body = None
if method == "PUT":
    body = open(os.environ["PLAIN_BODY"], "rb").read() if os.environ.get("PLAIN_BODY") else b""
c = http.client.HTTPConnection(ep, timeout=120)
c.request(method, path, body=body, headers=hd)
r = c.getresponse()
open(out, "wb").write(r.read())
print(r.status, r.getheader("x-amz-rdma-reply") or "-")
PYEOF
req() { "$PY" "$tmp/plain.py" "$@"; }
plain() { req GET "$1" "$2" | cut -d' ' -f1; }
slice() { "$PY" -c 'import sys; f=open(sys.argv[1],"rb"); f.seek(int(sys.argv[2])); open(sys.argv[4],"wb").write(f.read(int(sys.argv[3])))' "$@"; }
stat_field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" "$2" | tail -n 1; }

# rc_get NAME OBJ OUT [RANGE]: lode-get over rc, no fallback; checks exit 0 and transport=rc.
rc_get() {
    local name=$1 obj=$2 out=$3 rng=${4:-}
    "$GET" -q --transport rc --no-fallback --stats ${rng:+--range "$rng"} rcbucket "$obj" "$out" \
        2>"$tmp/get.err"
    local st=$?
    ok $st "$name: lode-get --transport rc exits 0" || { diag "$(cat "$tmp/get.err")"; return 1; }
    is "$(stat_field transport "$tmp/get.err")" rc "$name: the rc transport moved the bytes"
}

# Sizes: 1 byte, a page and a bit, a chunk (1 MiB) and a bit, several 2 MiB stripes.
sizes="1 4097 1048581 6291459"
for n in $sizes; do
    head -c "$n" /dev/urandom >"$tmp/f$n"
done

for n in $sizes; do
    "$PUT" -q --transport rc --no-fallback --stats --verify "$tmp/f$n" rcbucket "o$n" 2>"$tmp/put.err"
    ok $? "$n bytes: lode-put --transport rc --verify" || diag "$(cat "$tmp/put.err")"
    is "$(stat_field transport "$tmp/put.err")" rc "$n bytes: the gateway read the upload over rc"
    code=$(plain "/rcbucket/o$n" "$tmp/plain$n")
    is "$code" 200 "$n bytes: a plain GET (Python) answers 200"
    cmp -s "$tmp/f$n" "$tmp/plain$n"
    ok $? "$n bytes: the plain GET is byte-identical with the file"
    rc_get "$n bytes" "o$n" "$tmp/rc$n"
    cmp -s "$tmp/f$n" "$tmp/rc$n"
    ok $? "$n bytes: the rc GET is byte-identical with the file (and the plain GET)"
done
srcs=$(stat_field sources "$tmp/get.err")
[ "${srcs:-0}" -ge 2 ]
ok $? "6291459 bytes whole: several sources wrote into the buffer (sources=$srcs)"

# Ranges: inside a chunk, across chunks and stripes, to the end.
big=6291459
for r in "1-4095" "1048000-3146000" "5000000-$((big - 1))"; do
    first=${r%-*}
    last=${r#*-}
    slice "$tmp/f$big" "$first" $((last - first + 1)) "$tmp/want"
    rc_get "range $r" "o$big" "$tmp/r.out" "$r"
    cmp -s "$tmp/want" "$tmp/r.out"
    ok $? "range $r: byte-identical with the file"
done

# A PUT over rc replaces an object written over HTTP; the rc GET sees the new bytes.
head -c 300000 /dev/urandom >"$tmp/new"
"$PUT" -q --transport http "$tmp/f4097" rcbucket replaced 2>/dev/null &&
    "$PUT" -q --transport rc --no-fallback "$tmp/new" rcbucket replaced 2>"$tmp/put.err"
ok $? "an rc PUT over an object written by HTTP" || diag "$(cat "$tmp/put.err")"
rc_get "replaced" replaced "$tmp/rep.out"
cmp -s "$tmp/new" "$tmp/rep.out"
ok $? "replaced: the rc GET returns the rc PUT's bytes"

# A multipart upload over rc: every part is a staged UploadPart the gateway RDMA-READs.
head -c $((11 * 1048576 + 7)) /dev/urandom >"$tmp/mp"
"$PUT" -q --transport rc --no-fallback --part-size 5M --jobs 2 --stats --verify "$tmp/mp" \
    rcbucket mp 2>"$tmp/put.err"
ok $? "a 3-part upload over rc (staged UploadParts, no fallback), verified by a plain GET" ||
    diag "$(cat "$tmp/put.err")"
is "$(stat_field transport "$tmp/put.err")" rc "... the gateway read the parts over rc"
like "$(stat_field etag "$tmp/put.err")" '-3"$' "... the object has the ETag of 3 parts"
rc_get "multipart" mp "$tmp/mp.out"
cmp -s "$tmp/mp" "$tmp/mp.out"
ok $? "multipart: the rc GET is byte-identical with the file"

# ---- staged PUTs whose RDMA READ the client's NIC refuses: 500, no ETag, nothing stored ----
# rc_bad_put does what liblode does, but names another rkey than the window's (a forged or
# stale token), or registers the window without remote-read access.
"$PUT" -q --transport http "$tmp/f4097" rcbucket guarded 2>/dev/null
ok $? "an object to protect, written over HTTP"
for mode in rkey noread; do
    out=$("$builddir/tests/rdma/rc_bad_put" $mode rcbucket guarded 3000000 2>"$tmp/bad.err")
    is "$out" "500 RDMATransferFailed -" \
        "READ refused ($mode): 500 RDMATransferFailed and no ETag" || diag "$(cat "$tmp/bad.err")"
    is "$(plain /rcbucket/guarded "$tmp/guarded")" 200 \
        "READ refused ($mode): the object is still there"
    cmp -s "$tmp/f4097" "$tmp/guarded"
    ok $? "READ refused ($mode): ... unchanged"
done
"$PUT" -q --transport rc --no-fallback "$tmp/new" rcbucket guarded 2>"$tmp/put.err"
ok $? "the next rc PUT to the same key succeeds" || diag "$(cat "$tmp/put.err")"
rc_get "after the refused READs" guarded "$tmp/guarded.rc"
cmp -s "$tmp/new" "$tmp/guarded.rc"
ok $? "... and its bytes are what an rc GET returns"
m=$(curl -s "http://127.0.0.1:$((base + 501))/metrics")
like "$m" '^lode_gateway_rdma_put_failures_total\{transport="rc"\} 2$' \
    "gateway: the two failed staged PUTs are counted"

# ---- what the gateway refuses or declines (an independent client, no RDMA) ----
# A well-formed rc1 token naming a session nobody connected (random sid).
sid=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
tok() { printf '%016x:%016x:rc1:%s:%08x' 4096 "$1" "$sid" 4660; }
printf 'abc' >"$tmp/abc"
out=$(PLAIN_BODY=$tmp/abc req PUT /rcbucket/refused "$tmp/r.body" "$(tok 3)")
like "$out" "^400 " "an rc1 PUT with a body: 400 ($out)"
grep -q InvalidRequest "$tmp/r.body"
ok $? "... InvalidRequest"
out=$(req PUT /rcbucket/refused "$tmp/r.body" "$(tok 3)")
is "$out" "501 501" "an rc1 PUT from a session with no rc connection here: 501, x-amz-rdma-reply 501"
grep -q RDMANotSupported "$tmp/r.body"
ok $? "... RDMANotSupported"
is "$(plain /rcbucket/refused "$tmp/r.body")" 404 "neither stored anything"
out=$(req GET /rcbucket/o4097 "$tmp/r.body" "$(tok 4097)")
is "$out" "200 501" "an rc1 GET for a session with no rc connection: 200, x-amz-rdma-reply 501"
cmp -s "$tmp/f4097" "$tmp/r.body"
ok $? "... with the object in the body"

# ---- degraded: a node killed; every stripe misses one chunk ----
# Chunk roles are placed at random: kill the node holding data chunk 0 of the big object's
# first stripe, so that at least that stripe needs the gateway's decoding.
nid=$(LODE_META=$meta LODE_SECRET_FILE=$state/cluster.secret \
    "$builddir/tests/lib/object_layout" rcbucket "o$big" --nids | awk '$1 == "stripe" && $2 == 0 { print $3 }')
victim=$(lodectl node list 2>/dev/null |
    awk -v n="$nid" '$1 == n { sub("rack", "", $4); print $4 }')
case "$victim" in [1-3]) found=0 ;; *) found=1 victim=3 ;; esac
ok $found "the node holding data chunk 0 of the first stripe is known (nid '$nid', node $victim)"
kill -9 "$(cat "$state/node$victim/pid")"
for n in 1048581 $big; do
    rc_get "node $victim down, $n bytes" "o$n" "$tmp/deg$n"
    cmp -s "$tmp/f$n" "$tmp/deg$n"
    ok $? "node $victim down, $n bytes: byte-identical with the file"
done
slice "$tmp/f$big" 999 3000000 "$tmp/want"
rc_get "node $victim down, a range" "o$big" "$tmp/deg.r" "999-3000998"
cmp -s "$tmp/want" "$tmp/deg.r"
ok $? "node $victim down, a range: byte-identical with the file"
code=$(plain "/rcbucket/o$big" "$tmp/deg.plain")
cmp -s "$tmp/deg$big" "$tmp/deg.plain"
ok $? "node $victim down: the rc GET and a plain GET agree (HTTP $code)"

# ---- metrics: the rc series moved ----
m=$(curl -s "http://127.0.0.1:$((base + 501))/metrics")
like "$m" '^lode_gateway_fanout_requests_total\{transport="rc"\} [1-9]' \
    "gateway: rc fan-out GETs are counted under transport=\"rc\""
like "$m" '^lode_gateway_rdma_put_bytes_total\{transport="rc"\} [1-9]' \
    "gateway: bytes of staged rc PUTs are counted"
like "$m" '^lode_gateway_rdma_put_direct_bytes_total\{transport="rc"\} [1-9]' \
    "gateway: staged rc PUTs were read straight into its registered upload buffers"
like "$m" '^lode_gateway_fanout_gateway_bytes_total\{transport="rc"\} [1-9]' \
    "gateway: it RDMA-wrote the stripes it decoded with the node down"
alive=$((victim == 1 ? 2 : 1)) # a node still running
m=$(curl -s "http://127.0.0.1:$((base + 400 + alive))/metrics")
like "$m" '^lode_node_fanout_bytes_total\{transport="rc"\} [1-9]' \
    "node $alive: bytes it RDMA-wrote are counted under transport=\"rc\""
# Every GET above was compared byte for byte; here: which path the nodes' bytes took.
for i in $(seq 1 $n_nodes); do
    [ "$i" = "$victim" ] && continue
    m=$(curl -s "http://127.0.0.1:$((base + 400 + i))/metrics")
    direct=$(printf '%s\n' "$m" | sed -n 's/^lode_node_rc_direct_bytes_total \([0-9]*\)$/\1/p')
    total=$(printf '%s\n' "$m" |
        sed -n 's/^lode_node_fanout_bytes_total{transport="rc"} \([0-9]*\)$/\1/p')
    diag "node $i: ${direct:-?} of ${total:-?} rc bytes written from registered read buffers"
    if [ "$i" = 3 ]; then
        is "$direct" 0 "node 3 (rdma-read-buffers = 0) staged every rc write"
    else
        ok "$([ -n "$direct" ] && [ -n "$total" ] && [ "$direct" -gt 0 ] &&
            [ "$direct" -le "$total" ]; echo $?)" \
            "node $i wrote rc GET data from its registered read buffers, without staging copies"
    fi
done

# ---- the daemons stop cleanly and no sanitizer spoke ----
stop_all
trap - EXIT
sleep 1
bad=$(grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$state"/*/stdout.log \
    "$state"/*/*.log 2>/dev/null)
is "$bad" "" "no daemon reported a sanitizer error"
tap_failed && logs
rm -rf "$tmp"
tap_done
