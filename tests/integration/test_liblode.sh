#!/bin/bash
# liblode end to end through lode-put and lode-get: 3 lode-meta replicas, 6 lode-nodes and a
# gateway started by ops/quickstart.sh from the build tree. Objects from 1 byte to 20 MiB
# (and 1 GiB + 5 bytes with LODE_TEST_BIG=1) are written with lode-put and read back whole
# and ranged, over plain HTTP and over the tcp fan-out, then with two nodes down (stripes the
# gateway decodes) and with a node killed in the middle of a read (the read completes with
# the right bytes or fails cleanly). Every read is compared with the file that was written
# and with a plain S3 GET made by a SigV4 client written here on Python's standard library
# (hashlib, hmac, http.client), which shares no code with lode.
#
# The tcp checks need a gateway that serves data sessions (quickstart's does); against one that
# does not, they fail, or are reported as skipped with LODE_TEST_REQUIRE_FANOUT=0.
srcdir=${LODE_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=$(cd "${LODE_BUILDDIR:-.}" && pwd)
. "$srcdir/tests/lib/tap.sh"
# shellcheck source=tests/lib/qs_cluster.sh
. "$srcdir/tests/lib/qs_cluster.sh"

PY=/usr/bin/python3
qs_need_built lode-meta lode-node lode-gateway lodectl lode-get lode-put
[ -x "$PY" ] || tap_skip_all "no /usr/bin/python3"
GET="$builddir/lode-get"
PUT="$builddir/lode-put"

qs_start test_liblode
ok 0 "quickstart brings up meta, nodes and the gateway"
export LODE_ENDPOINT=$QS_HOSTPORT

# The reference client: plain.py METHOD PATH OUTFILE [RANGE] -> prints the status; the body
# is streamed to OUTFILE.
cat >"$tmp/plain.py" <<'PYEOF'
import datetime, hashlib, hmac, http.client, os, sys, urllib.parse
method, path, out = sys.argv[1:4]
rng = sys.argv[4] if len(sys.argv) > 4 else None
ak, sk, ep = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], os.environ["LODE_ENDPOINT"]
u = urllib.parse.urlsplit("http://" + ep + path)
now = datetime.datetime.now(datetime.timezone.utc)
amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
headers = {"host": ep, "x-amz-date": amzdate, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
if rng:
    headers["range"] = rng
enc = lambda s: urllib.parse.quote(s, safe="-_.~")
params = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
cq = "&".join(enc(k) + "=" + enc(v) for k, v in sorted(params))
names = sorted(headers)
creq = "\n".join([method, u.path, cq, "".join(n + ":" + headers[n] + "\n" for n in names),
                  ";".join(names), "UNSIGNED-PAYLOAD"])
scope = day + "/us-east-1/s3/aws4_request"
sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(creq.encode()).hexdigest()])
h = lambda k, m: hmac.new(k, m.encode(), hashlib.sha256).digest()
key = h(h(h(h(("AWS4" + sk).encode(), day), "us-east-1"), "s3"), "aws4_request")
sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
headers["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
    ak, scope, ";".join(names), sig)
body = open(os.environ["PLAIN_BODY"], "rb").read() if os.environ.get("PLAIN_BODY") else None
if method in ("PUT", "POST") and body is None:
    body = b""
c = http.client.HTTPConnection(ep, timeout=300)
c.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers=headers)
r = c.getresponse()
with open(out, "wb") as f:
    while True:
        b = r.read(1 << 20)
        if not b:
            break
        f.write(b)
print(r.status)
PYEOF
plain() { "$PY" "$tmp/plain.py" "$@"; }

# slice FILE FIRST COUNT OUT: bytes FIRST.. of FILE (Python, independent of lode).
slice() { "$PY" -c 'import sys; f=open(sys.argv[1],"rb"); f.seek(int(sys.argv[2])); open(sys.argv[4],"wb").write(f.read(int(sys.argv[3])))' "$@"; }
stat_field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" "$2" | tail -n 1; }

code=$(plain PUT /liblode "$tmp/out")
is "$code" 200 "bucket created with the reference client"

# ---- does the gateway serve tcp fan-out? ----
head -c 1 /dev/urandom >"$tmp/probe"
"$PUT" -q "$tmp/probe" liblode probe
ok $? "lode-put of 1 byte"
"$GET" --transport tcp --no-fallback --stats liblode probe "$tmp/probe.out" 2>"$tmp/probe.err"
probe_rc=$?
fanout=yes
if [ $probe_rc -ne 0 ]; then
    fanout=no
    diag "tcp fan-out not served: $(tail -n 2 "$tmp/probe.err" | tr '\n' ' ')"
    if [ "${LODE_TEST_REQUIRE_FANOUT:-1}" = 1 ]; then
        ok 1 "the gateway serves tcp fan-out (LODE_TEST_REQUIRE_FANOUT=0 to skip those checks)"
    fi
fi
# tcp_ok STATUS NAME: a tcp check, skipped when the gateway does not serve fan-out.
tcp_ok() {
    if [ $fanout = yes ]; then ok "$1" "$2"; else printf 'ok %d - %s # SKIP no tcp fan-out\n' $((TAP_COUNT += 1)) "$2"; fi
}

# check NAME FILE WANT: byte comparison.
check() { cmp -s "$2" "$3"; ok $? "$1"; }

sizes="1 1000 65537 4194307 20971521"
[ "${LODE_TEST_BIG:-0}" = 1 ] && sizes="$sizes 1073741829"
for n in $sizes; do
    f=$tmp/obj.$n
    head -c "$n" /dev/urandom >"$f"
    "$PUT" -q --verify "$f" liblode "o$n" 2>"$tmp/put.err"
    ok $? "$n bytes: lode-put --verify" || diag "$(cat "$tmp/put.err")"
    code=$(plain GET "/liblode/o$n" "$tmp/ref")
    is "$code" 200 "$n bytes: reference GET"
    check "$n bytes: reference GET = the file" "$tmp/ref" "$f"
    "$GET" -q --transport http liblode "o$n" "$tmp/http.out"
    ok $? "$n bytes: lode-get over http"
    check "$n bytes: http read = reference GET" "$tmp/http.out" "$tmp/ref"
    if [ $fanout = yes ]; then
        "$GET" -q --transport tcp --no-fallback --stats liblode "o$n" "$tmp/tcp.out" 2>"$tmp/tcp.err"
        tcp_ok $? "$n bytes: lode-get over tcp, no fallback"
        tcp_ok "$(cmp -s "$tmp/tcp.out" "$tmp/ref"; echo $?)" "$n bytes: tcp read = reference GET"
        [ "$(stat_field transport "$tmp/tcp.err")" = tcp ]
        tcp_ok $? "$n bytes: the tcp transport moved the data"
    fi
    # Ranges: the first byte, a middle piece, the tail, and to the end.
    half=$((n / 2)); len=$(( n / 3 + 1 ))
    [ $((half + len)) -gt "$n" ] && len=$((n - half))
    for r in "0-0" "$half-$((half + len - 1))" "$((n - 1))-$((n - 1))" "$half-"; do
        first=${r%-*}; last=${r#*-}
        [ -z "$last" ] && last=$((n - 1))
        slice "$f" "$first" $((last - first + 1)) "$tmp/want"
        plain GET "/liblode/o$n" "$tmp/ref.r" "bytes=$r" >/dev/null
        check "$n bytes, range $r: reference GET = the file's bytes" "$tmp/ref.r" "$tmp/want"
        "$GET" -q --transport http --range "$r" liblode "o$n" "$tmp/http.r"
        check "$n bytes, range $r: over http" "$tmp/http.r" "$tmp/want"
        if [ $fanout = yes ]; then
            "$GET" -q --transport tcp --no-fallback --range "$r" liblode "o$n" "$tmp/tcp.r"
            tcp_ok "$(cmp -s "$tmp/tcp.r" "$tmp/want"; echo $?)" "$n bytes, range $r: over tcp"
        fi
    done
done

# --verify reads again with a plain GET and compares.
"$GET" -q --verify liblode o4194307 /dev/null
ok $? "lode-get --verify agrees with a plain GET"
# Pieces, in parallel, with progress.
"$GET" --chunk 1M --parallel 4 --progress liblode o20971521 "$tmp/pieces.out" 2>"$tmp/progress.err"
ok $? "lode-get --chunk 1M --parallel 4 --progress"
check "pieces: the same bytes" "$tmp/pieces.out" "$tmp/obj.20971521"
# Repeated reads into one buffer (what bench/fanout times): every read lands, the last one is
# written out.
"$GET" --repeat 3 --stats liblode o4194307 "$tmp/repeat.out" 2>"$tmp/repeat.err"
ok $? "lode-get --repeat 3"
like "$(cat "$tmp/repeat.err")" "repeat=3 seconds=[0-9.]+ cpu_seconds=[0-9.]+" "... reports the three reads"
check "repeat: the same bytes" "$tmp/repeat.out" "$tmp/obj.4194307"
like "$(cat "$tmp/progress.err")" "20 / 20 MiB" "progress reaches the end"

# ---- multipart: a part by number ----
head -c $((5 * 1048576)) /dev/urandom >"$tmp/p1"
head -c 777777 /dev/urandom >"$tmp/p2"
plain POST "/liblode/mp?uploads" "$tmp/create" >/dev/null
uid=$(sed -n 's:.*<UploadId>\(.*\)</UploadId>.*:\1:p' "$tmp/create")
PLAIN_BODY=$tmp/p1 plain PUT "/liblode/mp?partNumber=1&uploadId=$uid" "$tmp/o" >/dev/null
PLAIN_BODY=$tmp/p2 plain PUT "/liblode/mp?partNumber=2&uploadId=$uid" "$tmp/o" >/dev/null
e1=$("$PY" -c 'import hashlib,sys; print(hashlib.md5(open(sys.argv[1],"rb").read()).hexdigest())' "$tmp/p1")
e2=$("$PY" -c 'import hashlib,sys; print(hashlib.md5(open(sys.argv[1],"rb").read()).hexdigest())' "$tmp/p2")
printf '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"%s"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>"%s"</ETag></Part></CompleteMultipartUpload>' "$e1" "$e2" >"$tmp/complete"
code=$(PLAIN_BODY=$tmp/complete plain POST "/liblode/mp?uploadId=$uid" "$tmp/o")
is "$code" 200 "multipart upload completed with the reference client"
"$GET" -q --transport http --part 2 liblode mp "$tmp/part.http"
check "part 2 over http = the part sent" "$tmp/part.http" "$tmp/p2"
if [ $fanout = yes ]; then
    "$GET" -q --transport tcp --no-fallback --part 2 liblode mp "$tmp/part.tcp"
    tcp_ok "$(cmp -s "$tmp/part.tcp" "$tmp/p2"; echo $?)" "part 2 over tcp = the part sent"
fi

# ---- multipart uploads through liblode: lode-put --part-size ----
n=$((17 * 1048576 + 3))
head -c $n /dev/urandom >"$tmp/mpl"
"$PUT" --part-size 5M --jobs 3 --progress --stats --verify "$tmp/mpl" liblode mpl 2>"$tmp/mpl.err"
ok $? "lode-put --part-size 5M --jobs 3 --verify: a 4-part upload" || diag "$(cat "$tmp/mpl.err")"
# The S3 multipart ETag, computed here: MD5 of the parts' MD5 digests, then "-<parts>".
want=$("$PY" -c '
import hashlib, sys
d = open(sys.argv[1], "rb").read()
ps = [d[i:i + (5 << 20)] for i in range(0, len(d), 5 << 20)]
md5s = b"".join(hashlib.md5(p).digest() for p in ps)
print("\"%s-%d\"" % (hashlib.md5(md5s).hexdigest(), len(ps)))
' "$tmp/mpl")
is "$(stat_field etag "$tmp/mpl.err")" "$want" "... its ETag is the 4-part ETag computed here"
like "$(cat "$tmp/mpl.err")" "part 4 of 4 written" "... progress names the parts"
plain GET /liblode/mpl "$tmp/mpl.ref" >/dev/null
check "... a reference GET returns the file" "$tmp/mpl.ref" "$tmp/mpl"
slice "$tmp/mpl" $((10 * 1048576)) $((5 * 1048576)) "$tmp/want"
"$GET" -q --transport http --part 3 liblode mpl "$tmp/mpl.p3"
check "... part 3 reads back as bytes 10M..15M of the file" "$tmp/mpl.p3" "$tmp/want"
plain GET "/liblode?uploads" "$tmp/uploads" >/dev/null
grep -q "<Upload>" "$tmp/uploads"
is $? 1 "... no upload is left open"
"$PUT" -q --part-size 5M --jobs 2 - liblode mpl-stdin <"$tmp/mpl" 2>"$tmp/mpl.err"
ok $? "lode-put --part-size from standard input" || diag "$(cat "$tmp/mpl.err")"
plain GET /liblode/mpl-stdin "$tmp/mpl.ref" >/dev/null
check "... a reference GET returns the same bytes" "$tmp/mpl.ref" "$tmp/mpl"
"$PUT" -q --part-size 5M "$tmp/mpl" no-such-bucket k 2>"$tmp/mpl.err"
is $? 4 "a multipart lode-put into a missing bucket exits 4"
like "$(cat "$tmp/mpl.err")" "NoSuchBucket" "... and says NoSuchBucket"
"$PUT" -q --part-size 1M "$tmp/mpl" liblode k 2>/dev/null
is $? 2 "--part-size below 5M is a usage error"

# ---- exit codes ----
"$GET" -q liblode no-such-key /dev/null 2>/dev/null
is $? 4 "a missing key exits 4"
AWS_SECRET_ACCESS_KEY=wrong "$GET" -q liblode o1 /dev/null 2>/dev/null
is $? 1 "a wrong secret exits 1"
LODE_ENDPOINT= "$GET" -q liblode o1 /dev/null 2>/dev/null
is $? 2 "no endpoint exits 2"
# The gateway refuses a large body before reading it: the S3 error must come through, not
# "connection closed".
"$PUT" -q "$tmp/obj.20971521" no-such-bucket k 2>"$tmp/nobucket.err"
is $? 4 "a 20 MiB PUT into a missing bucket exits 4"
like "$(cat "$tmp/nobucket.err")" "NoSuchBucket" "... and says NoSuchBucket"

# ---- a node killed in the middle of a read ----
big=$tmp/obj.20971521
if [ $fanout = yes ]; then
    "$GET" -q --transport tcp --stats liblode o20971521 "$tmp/mid.out" 2>"$tmp/mid.err" &
    gpid=$!
    sleep 0.05
    kill -KILL "$(cat "$LODE_QUICKSTART_DIR/node3/pid")"
    wait $gpid
    rc=$?
    if [ $rc = 0 ]; then
        check "node killed mid-read: the read completed with the right bytes" "$tmp/mid.out" "$big"
    else
        ok 0 "node killed mid-read: the read failed cleanly (exit $rc: $(tail -n 1 "$tmp/mid.err"))"
    fi
else
    kill -KILL "$(cat "$LODE_QUICKSTART_DIR/node3/pid")"
fi

# ---- two nodes down: the gateway decodes the missing stripes ----
kill -KILL "$(cat "$LODE_QUICKSTART_DIR/node5/pid")"
sleep 0.5
for n in 65537 20971521; do
    "$GET" -q --transport http liblode "o$n" "$tmp/deg.http"
    check "two nodes down, $n bytes over http" "$tmp/deg.http" "$tmp/obj.$n"
    if [ $fanout = yes ]; then
        "$GET" -q --transport tcp --stats liblode "o$n" "$tmp/deg.tcp" 2>"$tmp/deg.err"
        tcp_ok "$(cmp -s "$tmp/deg.tcp" "$tmp/obj.$n"; echo $?)" "two nodes down, $n bytes over tcp"
        [ "$(stat_field transport "$tmp/deg.err")" = tcp ]
        tcp_ok $? "two nodes down, $n bytes: still the tcp transport"
        "$GET" -q --transport tcp --range 1000-2000999 liblode "o$n" "$tmp/deg.r" 2>/dev/null
        slice "$tmp/obj.$n" 1000 2000000 "$tmp/want"
        tcp_ok "$(cmp -s "$tmp/deg.r" "$tmp/want"; echo $?)" "two nodes down, $n bytes, a range over tcp"
    fi
done

tap_done
