#!/bin/bash
# lode-gateway with data nodes lost, end to end (the issue's "two data nodes stopped" point at
# the S3 level): 3 lode-meta replicas, 6 lode-nodes in six failure domains and a gateway
# (ops/quickstart.sh from the build tree, 4+2 by default). Objects of several sizes are
# written (empty, small replicated ones, one short stripe, several stripes, a multipart
# object); two data nodes are killed with SIGKILL; every object must read back byte for byte,
# whole and in ranges, at once (before the cluster map knows) and once the nodes are marked
# down; new writes follow the documented degraded policy (gateway/README.datapath.md: with
# four domains left, 2+2 for large objects, three copies for small ones) and read back; after
# the nodes return and after the gateway restarts, everything still reads back. The client is
# Python's standard library (hashlib, hmac, http.client: the AWS SigV4 signing steps); the
# expected bytes are the files sent, the expected ETags md5sum's.
srcdir=${LODE_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=$(cd "${LODE_BUILDDIR:-.}" && pwd)
. "$srcdir/tests/lib/tap.sh"
# shellcheck source=tests/lib/qs_cluster.sh
. "$srcdir/tests/lib/qs_cluster.sh"

PY=/usr/bin/python3
qs_need_built lode-meta lode-node lode-gateway lodectl
[ -x "$PY" ] || tap_skip_all "no /usr/bin/python3"

# Port blocks of its own (apart from the other gateway tests'), so that they can run at once.
qs_ports 45000 100 100 37
qs_start test_gw_failures
ok 0 "quickstart brings up meta, nodes and the gateway"
. "$LODE_QUICKSTART_DIR/env.sh"
ep=$QS_EP
gwdir=$LODE_QUICKSTART_DIR/gateway

# s3c.py METHOD URL BODYFILE|- OUTFILE [Header:value]...: one signed request (payload hash
# signed); prints the status; the response body goes to OUTFILE, its headers to OUTFILE.h.
cat >"$tmp/s3c.py" <<'PYEOF'
import datetime, hashlib, hmac, http.client, os, sys, urllib.parse
method, url, src, out = sys.argv[1:5]
ak, sk, region = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], "us-east-1"
data = b"" if src == "-" else open(src, "rb").read()
u = urllib.parse.urlsplit(url)
now = datetime.datetime.now(datetime.timezone.utc)
amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
headers = {"host": u.netloc, "x-amz-date": amzdate,
           "x-amz-content-sha256": hashlib.sha256(data).hexdigest()}
for h in sys.argv[5:]:
    k, v = h.split(":", 1)
    headers[k.strip().lower()] = v.strip()
enc = lambda s: urllib.parse.quote(s, safe="-_.~")
cq = "&".join(enc(k) + "=" + enc(v) for k, v in sorted(urllib.parse.parse_qsl(u.query, keep_blank_values=True)))
names = sorted(headers)
creq = "\n".join([method, u.path, cq, "".join(n + ":" + headers[n] + "\n" for n in names),
                  ";".join(names), headers["x-amz-content-sha256"]])
scope = day + "/" + region + "/s3/aws4_request"
sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(creq.encode()).hexdigest()])
h = lambda k, m: hmac.new(k, m.encode(), hashlib.sha256).digest()
key = h(h(h(h(("AWS4" + sk).encode(), day), region), "s3"), "aws4_request")
headers["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
    ak, scope, ";".join(names), hmac.new(key, sts.encode(), hashlib.sha256).hexdigest())
c = http.client.HTTPConnection(u.netloc, timeout=60)
try:
    c.request(method, u.path + ("?" + u.query if u.query else ""),
              body=data if (data or method in ("PUT", "POST")) else None, headers=headers)
    r = c.getresponse()
    body = r.read()
except Exception as e:  # a cut connection (an error after the head) is a failure to report
    open(out, "wb").write(b"")
    print("ERR " + type(e).__name__)
    sys.exit(0)
open(out, "wb").write(body)
with open(out + ".h", "w") as f:
    for k, v in r.getheaders():
        f.write("%s: %s\n" % (k, v))
print(r.status)
PYEOF
# s3 METHOD PATH [BODYFILE [Header:value...]]: sets $code; the body is in $tmp/out.
s3() {
    m=$1; p=$2; src=${3:--}
    [ $# -ge 3 ] && shift 3 || shift $#
    code=$("$PY" "$tmp/s3c.py" "$m" "$ep$p" "$src" "$tmp/out" "$@")
}
header() { tr -d '\r' <"$tmp/out.h" | sed -n "s/^$1: //Ip" | tail -n 1; }
etag_of() { md5sum <"$1" | cut -d' ' -f1; }

# put NAME FILE: PutObject; checks 200 and the ETag.
put() {
    s3 PUT "/faults/$1" "$2"
    is "$code $(header ETag)" "200 \"$(etag_of "$2")\"" "$3: PUT $1 ($(stat -c %s "$2") bytes) answers 200 with its MD5 ETag"
}
# check NAME FILE WHEN: the whole object and three ranges (start, across stripe boundaries,
# end) read back byte for byte.
check() {
    local name=$1 file=$2 when=$3 size bad=""
    size=$(stat -c %s "$file")
    s3 GET "/faults/$name"
    [ "$code" = 200 ] && cmp -s "$tmp/out" "$file" || bad="whole ($code)"
    if [ "$size" -gt 0 ]; then
        for r in "0-0" "$((size / 3))-$((size * 2 / 3))" "$((size - 1))-$((size - 1))" "$((size > 4194300 ? 4194300 : 0))-$((size > 4194300 ? 4194400 : size - 1))"; do
            s3 GET "/faults/$name" - "Range: bytes=$r"
            tail -c +$((${r%-*} + 1)) "$file" | head -c $((${r#*-} - ${r%-*} + 1)) >"$tmp/want"
            [ "$code" = 206 ] && cmp -s "$tmp/out" "$tmp/want" || bad="$bad range $r ($code)"
        done
    fi
    is "$bad" "" "$when: $name reads back byte for byte, whole and in ranges"
}
node_state() { lodectl --timeout 3s node list 2>/dev/null | awk -v a="127.0.0.1:$((LODE_QUICKSTART_PORT + 300 + $1))" '$3 == a { print $5 }'; }

s3 PUT /faults
is "$code" 200 "CreateBucket"

# ---- before: objects of every shape (4+2, 1 MiB chunks, small under 256 KiB) ----
: >"$tmp/empty"
head -c 4096 /dev/urandom >"$tmp/small"
head -c 200000 /dev/urandom >"$tmp/small2"
head -c $((3 << 20)) /dev/urandom >"$tmp/onestripe"
head -c $(((13 << 20) + 7)) /dev/urandom >"$tmp/stripes"
for f in empty small small2 onestripe stripes; do put "$f" "$tmp/$f" "before"; done
head -c $((5 << 20)) /dev/urandom >"$tmp/p1"
head -c $((2 << 20)) /dev/urandom >"$tmp/p2"
cat "$tmp/p1" "$tmp/p2" >"$tmp/multipart"
s3 POST "/faults/multipart?uploads"
uid=$(sed -n 's/.*<UploadId>\([^<]*\)<.*/\1/p' "$tmp/out")
s3 PUT "/faults/multipart?partNumber=1&uploadId=$uid" "$tmp/p1"
e1=$(header ETag)
s3 PUT "/faults/multipart?partNumber=2&uploadId=$uid" "$tmp/p2"
e2=$(header ETag)
printf '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part><Part><PartNumber>2</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>' \
    "$e1" "$e2" >"$tmp/complete.xml"
s3 POST "/faults/multipart?uploadId=$uid" "$tmp/complete.xml"
is "$code" 200 "before: a two-part multipart upload completes"
before="empty small small2 onestripe stripes multipart"
for f in $before; do check "$f" "$tmp/$f" "healthy"; done

# ---- two data nodes killed ----
for i in 2 5; do kill -KILL "$(cat "$LODE_QUICKSTART_DIR/node$i/pid")"; done
# Gone, or a zombie nobody has reaped yet (no longer serving either way).
dead() { case "$(ps -o stat= -p "$(cat "$LODE_QUICKSTART_DIR/node$1/pid")" 2>/dev/null)" in ''|Z*) return 0 ;; esac; return 1; }
for _ in $(seq 50); do dead 2 && dead 5 && break; sleep 0.1; done
dead 2 && dead 5
ok $? "nodes 2 and 5 are killed"
is "$(node_state 2) $(node_state 5)" "up up" "right after SIGKILL the map still says nodes 2 and 5 are up"
for f in $before; do check "$f" "$tmp/$f" "2 nodes just killed"; done

# Wait for meta to stop trusting them (node-suspect-after, 10 s by default): writes are then
# placed on the four domains left.
for _ in $(seq 60); do
    s2=$(node_state 2); s5=$(node_state 5)
    [ -n "$s2" ] && [ "$s2" != up ] && [ -n "$s5" ] && [ "$s5" != up ] && break
    sleep 1
done
unlike "$s2 $s5" "up" "meta marks nodes 2 and 5 as no longer up ($s2 $s5)"
sleep 3 # the gateway's map refresh (2 s)
for f in $before; do check "$f" "$tmp/$f" "2 nodes down"; done
head -c 5000 /dev/urandom >"$tmp/d_small"
head -c $(((9 << 20) + 3)) /dev/urandom >"$tmp/d_large"
put d_small "$tmp/d_small" "2 nodes down (3 copies)"
put d_large "$tmp/d_large" "2 nodes down (degraded 2+2)"
s3 PUT /faults/d_copy - "x-amz-copy-source: /faults/stripes"
is "$code" 200 "2 nodes down: CopyObject of a multi-stripe object answers 200"
cp "$tmp/stripes" "$tmp/d_copy"
during="d_small d_large d_copy"
for f in $during; do check "$f" "$tmp/$f" "2 nodes down"; done

# ---- the nodes return ----
# quickstart restarts a node whose pid no longer answers kill -0: wait until the kernel has
# released the killed ones (a zombie still answers it).
for _ in $(seq 100); do
    kill -0 "$(cat "$LODE_QUICKSTART_DIR/node2/pid")" 2>/dev/null ||
        kill -0 "$(cat "$LODE_QUICKSTART_DIR/node5/pid")" 2>/dev/null || break
    sleep 0.1
done
# quickstart truncates a restarted process's stdout.log: keep what the killed ones said.
for i in 2 5; do cp "$LODE_QUICKSTART_DIR/node$i/stdout.log" "$tmp/node$i.killed.out"; done
"$srcdir/ops/quickstart.sh" start >"$tmp/restart.log" 2>&1
ok $? "quickstart restarts the two nodes"
is "$(node_state 2) $(node_state 5)" "up up" "the map shows nodes 2 and 5 up again"
sleep 3
for f in $before $during; do check "$f" "$tmp/$f" "nodes back"; done
head -c $((6 << 20)) /dev/urandom >"$tmp/after"
put after "$tmp/after" "nodes back"
check after "$tmp/after" "nodes back"

# ---- the gateway restarts ----
gpid=$(cat "$gwdir/pid")
kill "$gpid"
cp "$gwdir/stdout.log" "$tmp/gateway1.out"
for _ in $(seq 100); do kill -0 "$gpid" 2>/dev/null || break; sleep 0.1; done
"$srcdir/ops/quickstart.sh" start >"$tmp/restart2.log" 2>&1
ok $? "quickstart restarts the gateway"
for f in $before $during after; do check "$f" "$tmp/$f" "gateway restarted"; done
s3 GET "/faults?list-type=2"
is "$(grep -o '<Key>' "$tmp/out" | wc -l | tr -d ' ')" 10 "the bucket lists the ten objects"

# ---- a gateway short of descriptors ----
# Spliced GETs hold pipes, at most a quarter of the descriptor limit: with 128 descriptors
# that is 16 pipes, one 4+2 GET's read-ahead, so concurrent GETs mix pieces that went
# through pipes with pieces read into memory, and must still be byte for byte right.
gpid=$(cat "$gwdir/pid")
kill "$gpid"
cp "$gwdir/stdout.log" "$tmp/gateway2.out"
for _ in $(seq 100); do kill -0 "$gpid" 2>/dev/null || break; sleep 0.1; done
(ulimit -n 128 && exec "$srcdir/ops/quickstart.sh" start) >"$tmp/restart3.log" 2>&1
ok $? "the gateway restarts with a limit of 128 descriptors"
is "$(awk '$1 == "Max" && $2 == "open" { print $4 }' /proc/"$(cat "$gwdir/pid")"/limits)" 128 \
    "... and runs with it"
getbytes() { # spliced|buffered: lode_gateway_get_body_bytes_total{path=...}
    curl -s "http://127.0.0.1:$((LODE_QUICKSTART_PORT + 501))/metrics" |
        awk -v m="lode_gateway_get_body_bytes_total{path=\"$1\"}" '$1 == m { printf "%d\n", $2 }'
}
sp0=$(getbytes spliced) bu0=$(getbytes buffered)
bad=""
for round in 1 2; do
    pids=""
    for f in stripes multipart d_large after stripes after; do
        "$PY" "$tmp/s3c.py" GET "$ep/faults/$f" - "$tmp/par.$f.$round.$RANDOM" >/dev/null &
        pids="$pids $!"
    done
    wait $pids
    for o in "$tmp"/par.*."$round".*; do
        case "$o" in *.h) continue ;; esac
        f=${o#"$tmp"/par.}
        f=${f%%.*}
        cmp -s "$o" "$tmp/$f" || bad="$bad $f"
    done
done
n=$(ls "$tmp"/par.* | grep -vc '\.h$')
is "$n $bad" "12 " "twelve concurrent GETs of large objects read back byte for byte"
sp=$(($(getbytes spliced) - ${sp0:-0})) bu=$(($(getbytes buffered) - ${bu0:-0}))
ok $([ "$sp" -gt 0 ] && [ "$bu" -gt 0 ]; echo $?) \
    "... partly spliced through pipes ($sp bytes), partly from memory past the pipe cap ($bu)"

qs_stop
unlike "$(cat "$tmp/gateway1.out" "$tmp/gateway2.out" "$gwdir/stdout.log")" \
    "Sanitizer|runtime error" "the three lode-gateway runs have no sanitizer report"
for i in 1 2 3 4 5 6; do cat "$LODE_QUICKSTART_DIR/node$i/stdout.log"; done >"$tmp/nodes.out" 2>/dev/null
cat "$tmp"/node*.killed.out >>"$tmp/nodes.out"
unlike "$(cat "$tmp/nodes.out")" "Sanitizer|runtime error" "the lode-nodes have no sanitizer report"

tap_done
