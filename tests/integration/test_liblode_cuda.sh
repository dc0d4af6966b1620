#!/bin/bash
# liblode into CUDA device memory: objects written with lode-put are read with
# `lode-get --buffer cuda` (device memory of GPU 0; over tcp through pinned bounce slots and
# asynchronous copies, over http through the same staging) and copied back to be compared
# with the files written; `lode-put --buffer cuda` uploads from device memory. Skips, saying
# why, where there is no GPU: no nvidia-smi, or libcuda.so.1 cannot be loaded, or it finds
# no device. The cluster is ops/quickstart.sh's, as in test_liblode.sh.
srcdir=${LODE_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=$(cd "${LODE_BUILDDIR:-.}" && pwd)
. "$srcdir/tests/lib/tap.sh"
# shellcheck source=tests/lib/qs_cluster.sh
. "$srcdir/tests/lib/qs_cluster.sh"

PY=/usr/bin/python3
command -v nvidia-smi >/dev/null 2>&1 || tap_skip_all "no GPU here (nvidia-smi not found)"
[ -x "$PY" ] || tap_skip_all "no /usr/bin/python3"
why=$("$PY" - <<'PYEOF'
import ctypes
try:
    cu = ctypes.CDLL("libcuda.so.1")
except OSError as e:
    print("libcuda.so.1 cannot be loaded: %s" % e)
    raise SystemExit
n = ctypes.c_int(0)
if cu.cuInit(0) != 0 or cu.cuDeviceGetCount(ctypes.byref(n)) != 0 or n.value == 0:
    print("the CUDA driver finds no device")
PYEOF
)
[ -n "$why" ] && tap_skip_all "$why"
qs_need_built lode-meta lode-node lode-gateway lodectl lode-get lode-put
GET="$builddir/lode-get"
PUT="$builddir/lode-put"

qs_start test_liblode_cuda
ok 0 "quickstart brings up the cluster"
export LODE_ENDPOINT=$QS_HOSTPORT
diag "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"

# The bucket, created with a SigV4 request made here (Python standard library).
"$PY" - "$tmp" <<'PYEOF'
import datetime, hashlib, hmac, http.client, os
ak, sk, ep = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], os.environ["LODE_ENDPOINT"]
now = datetime.datetime.now(datetime.timezone.utc)
amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
hd = {"host": ep, "x-amz-date": amzdate, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
names = sorted(hd)
creq = "\n".join(["PUT", "/gpu", "", "".join(n + ":" + hd[n] + "\n" for n in names), ";".join(names), "UNSIGNED-PAYLOAD"])
scope = day + "/us-east-1/s3/aws4_request"
sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(creq.encode()).hexdigest()])
h = lambda k, m: hmac.new(k, m.encode(), hashlib.sha256).digest()
key = h(h(h(h(("AWS4" + sk).encode(), day), "us-east-1"), "s3"), "aws4_request")
hd["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
    ak, scope, ";".join(names), hmac.new(key, sts.encode(), hashlib.sha256).hexdigest())
c = http.client.HTTPConnection(ep)
c.request("PUT", "/gpu", body=b"", headers=hd)
raise SystemExit(0 if c.getresponse().status == 200 else 1)
PYEOF
ok $? "bucket gpu created"

slice() { "$PY" -c 'import sys; f=open(sys.argv[1],"rb"); f.seek(int(sys.argv[2])); open(sys.argv[4],"wb").write(f.read(int(sys.argv[3])))' "$@"; }
stat_field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" "$2" | tail -n 1; }

sizes="1 1048583 67108867"
[ "${LODE_TEST_BIG:-0}" = 1 ] && sizes="$sizes 1073741829"
for n in $sizes; do
    f=$tmp/obj.$n
    head -c "$n" /dev/urandom >"$f"
    "$PUT" -q "$f" gpu "o$n"
    ok $? "$n bytes written from host memory"
    for t in tcp http; do
        "$GET" -q --buffer cuda --transport $t --stats gpu "o$n" "$tmp/dev.out" 2>"$tmp/dev.err"
        ok $? "$n bytes read into device memory over $t" || diag "$(cat "$tmp/dev.err")"
        cmp -s "$tmp/dev.out" "$f"
        ok $? "$n bytes over $t: device memory holds the object (copied back, compared)"
        diag "$t: $(tail -n 1 "$tmp/dev.err")"
    done
    first=$((n / 3)); len=$((n / 2 + 1))
    [ $((first + len)) -gt "$n" ] && len=$((n - first))
    slice "$f" "$first" "$len" "$tmp/want"
    "$GET" -q --buffer cuda --range "$first-$((first + len - 1))" gpu "o$n" "$tmp/dev.r"
    cmp -s "$tmp/dev.r" "$tmp/want"
    ok $? "$n bytes: a range into device memory"
    "$PUT" -q --buffer cuda --verify "$f" gpu "d$n"
    ok $? "$n bytes written from device memory, read back identical"
done

tap_done
