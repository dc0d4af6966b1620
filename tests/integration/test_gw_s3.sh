#!/bin/bash
# lode-gateway end to end: 3 lode-meta replicas, 6 lode-nodes and a gateway started by
# ops/quickstart.sh from the build tree, driven by a SigV4 client written here on Python's
# standard library (hashlib, hmac, http.client; the signing steps of the AWS SigV4
# documentation) and by curl for unsigned requests: buckets, small and 20 MiB objects
# byte-compared, ranges, listings with prefix and delimiter over 300 keys, a multipart
# upload, ListMultipartUploads with a delimiter (the query parameters boto3 and awscli
# send), per-bucket erasure schemes (lodectl bucket create --ec, the x-lode-erasure header)
# checked in the layouts meta recorded (tests/lib/object_layout), the bucket cache against a
# deleted bucket, the collector's metrics, deletes, and the refusals of unsigned and wrongly
# signed requests. Expected ETags come from md5sum, expected bytes from the files sent.
srcdir=${LODE_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=$(cd "${LODE_BUILDDIR:-.}" && pwd)
. "$srcdir/tests/lib/tap.sh"
# shellcheck source=tests/lib/qs_cluster.sh
. "$srcdir/tests/lib/qs_cluster.sh"

CURL=/usr/bin/curl
PY=/usr/bin/python3
qs_need_built lode-meta lode-node lode-gateway lodectl tests/lib/object_layout
[ -x "$CURL" ] || tap_skip_all "no /usr/bin/curl"
[ -x "$PY" ] || tap_skip_all "no /usr/bin/python3"

qs_start test_gw_s3
ok 0 "quickstart brings up meta, nodes and the gateway"
out=$(cat "$tmp/quickstart.log")
like "$out" "aws --endpoint-url http://127.0.0.1:[0-9]+ s3 cp" "quickstart prints an aws command line"
[ -n "$AWS_ACCESS_KEY_ID" ] && [ -n "$AWS_SECRET_ACCESS_KEY" ]
ok $? "quickstart created a user with credentials"
ep=$QS_EP
metrics_ep="http://127.0.0.1:$((LODE_QUICKSTART_PORT + 501))/metrics"
# LODE_META and LODE_SECRET_FILE for lodectl and object_layout.
. "$LODE_QUICKSTART_DIR/env.sh"
lodectl() { "$builddir/lodectl" "$@"; }
layout() { "$builddir/tests/lib/object_layout" "$@" 2>&1; }

# The signer: s3req.py METHOD URL BODYFILE|- OUTBODY OUTHEADERS [Header:value]...
# Prints the status. The payload is signed (its SHA-256 in x-amz-content-sha256).
cat >"$tmp/s3req.py" <<'PYEOF'
import datetime, hashlib, hmac, http.client, os, sys, urllib.parse
method, url, src, out_body, out_headers = sys.argv[1:6]
extra = [h.split(":", 1) for h in sys.argv[6:]]
ak, sk = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
region = "us-east-1"
def send(c, method, url, data):
    u = urllib.parse.urlsplit(url)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
        seconds=int(os.environ.get("S3REQ_AGE", "0")))  # a client with a slow clock
    amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(data).hexdigest()
    trailer = os.environ.get("S3REQ_CRC32_TRAILER")
    if trailer is not None:
        # aws-chunked, unsigned, with a CRC32 trailer (zlib's CRC-32 is S3's CRC32): the value
        # given, or the right one when "".
        import base64, zlib
        crc = trailer or base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        n = len(data)
        data = (b"%x\r\n" % n + data + b"\r\n" if n else b"") + b"0\r\nx-amz-checksum-crc32:" + crc.encode() + b"\r\n\r\n"
        payload = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    headers = {"host": u.netloc, "x-amz-date": amzdate, "x-amz-content-sha256": payload}
    if trailer is not None:
        headers.update({"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(n),
                        "x-amz-trailer": "x-amz-checksum-crc32"})
    for k, v in extra:
        headers[k.strip().lower()] = v.strip()
    payload = headers["x-amz-content-sha256"]  # a caller's override is signed as sent
    def enc(s):
        return urllib.parse.quote(s, safe="-_.~")
    params = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
    cq = "&".join(enc(k) + "=" + enc(v) for k, v in sorted(params))
    names = sorted(headers)
    ch = "".join(n + ":" + headers[n] + "\n" for n in names)
    sh = ";".join(names)
    creq = "\n".join([method, u.path, cq, ch, sh, payload])
    scope = day + "/" + region + "/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(creq.encode()).hexdigest()])
    def h(k, m):
        return hmac.new(k, m.encode(), hashlib.sha256).digest()
    key = h(h(h(h(("AWS4" + sk).encode(), day), region), "s3"), "aws4_request")
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (ak, scope, sh, sig)
    target = u.path + ("?" + u.query if u.query else "")
    c.request(method, target, body=data if (data or method in ("PUT", "POST")) else None, headers=headers)
    r = c.getresponse()
    return r

def presign(url, expires, age):
    # A presigned GET made `age` seconds ago, valid for `expires` seconds.
    u = urllib.parse.urlsplit(url)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age)
    amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = day + "/" + region + "/s3/aws4_request"
    q = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": ak + "/" + scope,
         "X-Amz-Date": amzdate, "X-Amz-Expires": str(expires), "X-Amz-SignedHeaders": "host"}
    enc = lambda s: urllib.parse.quote(s, safe="-_.~")
    cq = "&".join(enc(k) + "=" + enc(v) for k, v in sorted(q.items()))
    creq = "\n".join(["GET", u.path, cq, "host:" + u.netloc + "\n", "host", "UNSIGNED-PAYLOAD"])
    sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(creq.encode()).hexdigest()])
    h = lambda k, m: hmac.new(k, m.encode(), hashlib.sha256).digest()
    key = h(h(h(h(("AWS4" + sk).encode(), day), region), "s3"), "aws4_request")
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    return url + "?" + cq + "&X-Amz-Signature=" + sig

if method == "PRESIGN":
    print(presign(url, int(src), int(out_body)))
    sys.exit(0)
u0 = urllib.parse.urlsplit(url)
c = http.client.HTTPConnection(u0.netloc, timeout=120)
if method == "PUTMANY":
    # src: lines "path<TAB>content"; one connection; prints how many were not 200.
    bad = 0
    for line in open(src).read().splitlines():
        path, content = line.split("\t", 1)
        r = send(c, "PUT", url + path, content.encode())
        r.read()
        bad += r.status != 200
    print(bad)
    sys.exit(0)
r = send(c, method, url, b"" if src == "-" else open(src, "rb").read())
body = r.read()
open(out_body, "wb").write(body)
with open(out_headers, "w") as f:
    for k, v in r.getheaders():
        f.write("%s: %s\n" % (k, v))
print(r.status)
PYEOF

# s3 METHOD PATH [BODYFILE [Header:value...]]: a signed request; sets $code and $body.
s3() {
    m=$1; p=$2; src=${3:--}
    [ $# -ge 3 ] && shift 3 || shift $#
    code=$("$PY" "$tmp/s3req.py" "$m" "$ep$p" "$src" "$tmp/body" "$tmp/headers" "$@")
    body=$(tr -d '\0' <"$tmp/body" 2>/dev/null)
}
header() { tr -d '\r' <"$tmp/headers" | sed -n "s/^$1: //Ip" | tail -n 1; }
# The texts of every <tag> in $body, one a line.
tags() { printf '%s' "$body" | grep -o "<$1>[^<]*</$1>" | sed "s/<[^>]*>//g"; }

# ---- refusals ----
code=$("$CURL" -s -o "$tmp/body" -w '%{http_code}' "$ep/")
is "$code" 403 "an unsigned request is refused with 403"
like "$(cat "$tmp/body")" "<Code>AccessDenied</Code>" "... as AccessDenied"
code=$(AWS_SECRET_ACCESS_KEY=wrong-secret-wrong-secret "$PY" "$tmp/s3req.py" GET "$ep/" - \
    "$tmp/body" "$tmp/headers")
is "$code" 403 "a wrongly signed request is refused with 403"
like "$(cat "$tmp/body")" "<Code>SignatureDoesNotMatch</Code>" "... as SignatureDoesNotMatch"
code=$(AWS_ACCESS_KEY_ID=LODENOSUCHKEY0000000 "$PY" "$tmp/s3req.py" GET "$ep/" - \
    "$tmp/body" "$tmp/headers")
like "$(cat "$tmp/body")" "<Code>InvalidAccessKeyId</Code>" "an unknown access key is InvalidAccessKeyId"

# ---- buckets ----
s3 GET /
is "$code" 200 "ListBuckets answers 200"
like "$body" "<ListAllMyBucketsResult" "... with a bucket list"
like "$(header x-amz-request-id)" "^[0-9a-f]{16}$" "responses carry x-amz-request-id"
s3 PUT /lode-test
is "$code" 200 "CreateBucket answers 200"
s3 PUT /lode-test
like "$body" "<Code>BucketAlreadyOwnedByYou</Code>" "creating it again: BucketAlreadyOwnedByYou"
s3 HEAD /lode-test
is "$code" 200 "HeadBucket answers 200"
s3 HEAD /no-such-bucket-here
is "$code" 404 "HeadBucket of a missing bucket answers 404"
s3 GET /
like "$body" "<Name>lode-test</Name>" "ListBuckets shows the new bucket"
s3 GET "/lode-test?location"
like "$body" "<LocationConstraint" "GetBucketLocation answers"
s3 PUT /Bad_Name
like "$body" "<Code>InvalidBucketName</Code>" "an invalid bucket name is refused"

# ---- small object ----
printf 'hello, lode\n' >"$tmp/small"
s3 PUT /lode-test/dir/hello.txt "$tmp/small" "Content-Type: text/plain" "x-amz-meta-color: blue"
is "$code" 200 "PutObject of a small object answers 200"
want=$(md5sum <"$tmp/small" | cut -d' ' -f1)
is "$(header ETag)" "\"$want\"" "its ETag is the MD5 of the bytes"
s3 GET /lode-test/dir/hello.txt
is "$code" 200 "GetObject answers 200"
cmp -s "$tmp/body" "$tmp/small"
ok $? "GetObject returns the same bytes"
is "$(header Content-Type)" "text/plain" "Content-Type is kept"
is "$(header x-amz-meta-color)" "blue" "user metadata is kept"
s3 HEAD /lode-test/dir/hello.txt
is "$code" 200 "HeadObject answers 200"
is "$(header Content-Length)" "12" "HeadObject gives the length"
s3 GET /lode-test/dir/hello.txt - "If-None-Match: \"$want\""
is "$code" 304 "If-None-Match with the ETag gives 304"
purl=$("$PY" "$tmp/s3req.py" PRESIGN "$ep/lode-test/dir/hello.txt" 600 0 -)
code=$("$CURL" -s -o "$tmp/body" -w '%{http_code}' "$purl")
is "$code" 200 "a presigned GET answers 200"
cmp -s "$tmp/body" "$tmp/small"
ok $? "... with the object's bytes"
purl=$("$PY" "$tmp/s3req.py" PRESIGN "$ep/lode-test/dir/hello.txt" 60 120 -)
code=$("$CURL" -s -o "$tmp/body" -w '%{http_code}' "$purl")
is "$code" 403 "an expired presigned GET is refused with 403"
like "$(cat "$tmp/body")" "<Code>AccessDenied</Code>" "... as AccessDenied"
code=$("$CURL" -s -o "$tmp/body" -w '%{http_code}' "${purl%?????}00000")
like "$(cat "$tmp/body")" "<Code>(SignatureDoesNotMatch|AccessDenied)</Code>" "a presigned URL with a changed signature is refused"
S3REQ_AGE=3600 s3 GET /
like "$body" "<Code>RequestTimeTooSkewed</Code>" "a request signed an hour ago is RequestTimeTooSkewed"
s3 GET /lode-test/nothing-here
is "$code" 404 "a missing key answers 404"
like "$body" "<Code>NoSuchKey</Code>" "... as NoSuchKey"

# ---- 20 MiB object, ranges ----
head -c $((20 << 20)) /dev/urandom >"$tmp/big"
s3 PUT /lode-test/big.bin "$tmp/big"
is "$code" 200 "PutObject of 20 MiB answers 200"
is "$(header ETag)" "\"$(md5sum <"$tmp/big" | cut -d' ' -f1)\"" "its ETag is the MD5 of the bytes"
s3 GET /lode-test/big.bin
cmp -s "$tmp/body" "$tmp/big"
ok $? "GetObject returns the 20 MiB byte for byte"
s3 GET /lode-test/big.bin - "Range: bytes=1048570-3145739"
is "$code" 206 "a ranged GET answers 206"
tail -c +1048571 "$tmp/big" | head -c 2097170 >"$tmp/slice"
cmp -s "$tmp/body" "$tmp/slice"
ok $? "the range holds the right bytes (crossing stripe boundaries)"
is "$(header Content-Range)" "bytes 1048570-3145739/20971520" "Content-Range is right"
s3 GET /lode-test/big.bin - "Range: bytes=30000000-"
is "$code" 416 "a range past the end answers 416"

# ---- checksums and digests: a mismatch stores nothing ----
head -c 100000 /dev/urandom >"$tmp/hundred"
want_crc=$("$PY" -c 'import base64,sys,zlib; print(base64.b64encode(zlib.crc32(open(sys.argv[1],"rb").read()).to_bytes(4,"big")).decode())' "$tmp/hundred")
S3REQ_CRC32_TRAILER= s3 PUT /lode-test/trailer.bin "$tmp/hundred"
is "$code" 200 "an aws-chunked upload with a CRC32 trailer answers 200"
is "$(header x-amz-checksum-crc32)" "$want_crc" "... and returns the CRC32 zlib computes"
s3 GET /lode-test/trailer.bin - "x-amz-checksum-mode: ENABLED"
cmp -s "$tmp/body" "$tmp/hundred"
ok $? "the aws-chunked upload reads back byte for byte"
is "$(header x-amz-checksum-crc32)" "$want_crc" "GetObject with checksum mode returns the stored CRC32"
S3REQ_CRC32_TRAILER=AAAAAA== s3 PUT /lode-test/badtrailer.bin "$tmp/hundred"
is "$code" 400 "a wrong CRC32 trailer is refused with 400"
like "$body" "<Code>BadDigest</Code>" "... as BadDigest"
s3 PUT /lode-test/badmd5.bin "$tmp/hundred" "Content-MD5: AAAAAAAAAAAAAAAAAAAAAA=="
like "$body" "<Code>BadDigest</Code>" "a wrong Content-MD5 is BadDigest"
s3 PUT /lode-test/badsha.bin "$tmp/hundred" \
    "x-amz-content-sha256: 0000000000000000000000000000000000000000000000000000000000000000"
like "$body" "<Code>XAmzContentSHA256Mismatch</Code>" "a wrong payload digest is XAmzContentSHA256Mismatch"
s3 GET "/lode-test?list-type=2&prefix=bad"
like "$body" "<KeyCount>0</KeyCount>" "none of the refused uploads is visible"
s3 PUT "/lode-test/a/../b" "$tmp/small"
is "$code" 400 "a key with a '..' segment is refused"
s3 PUT /lode-test/cond.txt "$tmp/small" "If-None-Match: *"
is "$code" 200 "PutObject with If-None-Match: * creates"
s3 PUT /lode-test/cond.txt "$tmp/small" "If-None-Match: *"
is "$code" 412 "... and refuses to overwrite (412)"

# ---- copies ----
s3 PUT /lode-test/copy.bin - "x-amz-copy-source: /lode-test/big.bin"
is "$code" 200 "CopyObject answers 200"
like "$body" "<CopyObjectResult" "... with a CopyObjectResult"
like "$body" "$(md5sum <"$tmp/big" | cut -d' ' -f1)" "... naming the ETag of the bytes"
s3 GET /lode-test/copy.bin
cmp -s "$tmp/body" "$tmp/big"
ok $? "the copy reads back byte for byte"
s3 PUT /lode-test/copy2.txt - "x-amz-copy-source: /lode-test/dir/hello.txt" \
    "x-amz-metadata-directive: REPLACE" "x-amz-meta-color: red"
s3 HEAD /lode-test/copy2.txt
is "$(header x-amz-meta-color)" "red" "a copy with REPLACE takes the new metadata"
s3 PUT /lode-test/copy3.txt - "x-amz-copy-source: /lode-test/nothing-here"
is "$code" 404 "copying a missing source answers 404"

# ---- listing over 300 keys ----
for d in 0 1 2 3 4 5 6 7 8 9; do
    for i in $(seq -w 0 29); do printf '/lode-test/list/d%s/k%s\t%s%s\n' $d $i $d $i; done
done >"$tmp/many"
bad=$("$PY" "$tmp/s3req.py" PUTMANY "$ep" "$tmp/many" /dev/null /dev/null)
is "$bad" 0 "300 small objects stored"
s3 GET "/lode-test?list-type=2&prefix=list/&delimiter=/"
is "$(printf '%s' "$body" | grep -o '<CommonPrefixes>' | wc -l)" 10 "ListObjectsV2 with a delimiter: 10 common prefixes"
like "$body" "<Prefix>list/d3/</Prefix>" "... named by their prefix"
s3 GET "/lode-test?list-type=2&prefix=list/d4/"
like "$body" "<KeyCount>30</KeyCount>" "ListObjectsV2 with a prefix: 30 keys"
s3 GET "/lode-test?list-type=2&prefix=list/&max-keys=100"
like "$body" "<IsTruncated>true</IsTruncated>" "a page of 100 of 300 is truncated"
tok=$(printf '%s' "$body" | sed -n 's/.*<NextContinuationToken>\([^<]*\)<.*/\1/p')
seen=$(printf '%s' "$body" | grep -o '<Key>' | wc -l)
pages=1
while [ -n "$tok" ] && [ $pages -lt 10 ]; do
    s3 GET "/lode-test?list-type=2&prefix=list/&max-keys=100&continuation-token=$tok"
    seen=$((seen + $(printf '%s' "$body" | grep -o '<Key>' | wc -l)))
    tok=$(printf '%s' "$body" | sed -n 's/.*<NextContinuationToken>\([^<]*\)<.*/\1/p')
    pages=$((pages + 1))
done
is "$seen" 300 "continuation tokens walk all 300 keys"
s3 GET "/lode-test?prefix=list/d9/&marker=list/d9/k10"
is "$(printf '%s' "$body" | grep -o '<Key>' | wc -l | tr -d ' ')" 19 "ListObjects v1 starts after the marker"

# ---- multipart ----
head -c $((5 << 20)) /dev/urandom >"$tmp/p1"
head -c $((1 << 20)) /dev/urandom >"$tmp/p2"
s3 POST "/lode-test/mp.bin?uploads"
is "$code" 200 "CreateMultipartUpload answers 200"
uid=$(printf '%s' "$body" | sed -n 's/.*<UploadId>\([^<]*\)<.*/\1/p')
[ -n "$uid" ]
ok $? "... with an upload id"
s3 PUT "/lode-test/mp.bin?partNumber=1&uploadId=$uid" "$tmp/p1"
is "$code" 200 "UploadPart 1 answers 200"
e1=$(header ETag)
s3 PUT "/lode-test/mp.bin?partNumber=2&uploadId=$uid" "$tmp/p2"
is "$code" 200 "UploadPart 2 answers 200"
e2=$(header ETag)
s3 GET "/lode-test/mp.bin?uploadId=$uid"
is "$(printf '%s' "$body" | grep -o '<Part>' | wc -l | tr -d ' ')" 2 "ListParts shows two parts"
s3 GET "/lode-test?uploads"
like "$body" "<UploadId>$uid</UploadId>" "ListMultipartUploads shows the upload"
printf '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part><Part><PartNumber>2</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>' \
    "$e1" "$e2" >"$tmp/complete.xml"
s3 POST "/lode-test/mp.bin?uploadId=$uid" "$tmp/complete.xml"
is "$code" 200 "CompleteMultipartUpload answers 200"
# The multipart ETag: MD5 of the parts' binary MD5s, then "-2".
# (Python's hashlib, independent of the gateway; xxd is not on a minimal Debian.)
want=$(/usr/bin/python3 -c 'import hashlib, sys
print(hashlib.md5(b"".join(hashlib.md5(open(f, "rb").read()).digest() for f in sys.argv[1:])).hexdigest())' "$tmp/p1" "$tmp/p2")
like "$body" "<ETag>(&quot;|\")$want-2(&quot;|\")</ETag>" "the multipart ETag is S3's"
cat "$tmp/p1" "$tmp/p2" >"$tmp/mp"
s3 GET /lode-test/mp.bin
cmp -s "$tmp/body" "$tmp/mp"
ok $? "the assembled object reads back byte for byte"
s3 GET "/lode-test/mp.bin?partNumber=2"
cmp -s "$tmp/body" "$tmp/p2"
ok $? "GetObject with partNumber=2 returns the second part"
s3 POST "/lode-test/mpc.bin?uploads"
uid3=$(printf '%s' "$body" | sed -n 's/.*<UploadId>\([^<]*\)<.*/\1/p')
s3 PUT "/lode-test/mpc.bin?partNumber=1&uploadId=$uid3" - "x-amz-copy-source: /lode-test/big.bin" \
    "x-amz-copy-source-range: bytes=1000-5243879"
is "$code" 200 "UploadPartCopy of a 5 MiB range answers 200"
like "$body" "<CopyPartResult" "... with a CopyPartResult"
c1=$(printf '%s' "$body" | sed -n 's/.*<ETag>\([^<]*\)<.*/\1/p' | sed 's/&quot;/"/g')
s3 PUT "/lode-test/mpc.bin?partNumber=2&uploadId=$uid3" "$tmp/p2"
c2=$(header ETag)
printf '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part><Part><PartNumber>2</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>' \
    "$c1" "$c2" >"$tmp/complete.xml"
s3 POST "/lode-test/mpc.bin?uploadId=$uid3" "$tmp/complete.xml"
is "$code" 200 "completing an upload with a copied part answers 200"
{ tail -c +1001 "$tmp/big" | head -c 5242880; cat "$tmp/p2"; } >"$tmp/mpc"
s3 GET /lode-test/mpc.bin
cmp -s "$tmp/body" "$tmp/mpc"
ok $? "the object with a copied part reads back byte for byte"
s3 POST "/lode-test/x.bin?uploads"
uid2=$(printf '%s' "$body" | sed -n 's/.*<UploadId>\([^<]*\)<.*/\1/p')
s3 DELETE "/lode-test/x.bin?uploadId=$uid2"
is "$code" 204 "AbortMultipartUpload answers 204"

# ---- ListMultipartUploads with a delimiter (as boto3's list_multipart_uploads and awscli's
# s3api list-multipart-uploads send it: prefix, delimiter, max-uploads, key-marker,
# upload-id-marker, encoding-type=url) ----
for k in mpu/a/1 mpu/a/2 mpu/b/1 mpu/c "mpu/d%20e%2Bf/1"; do
    s3 POST "/lode-test/$k?uploads"
    [ "$code" = 200 ] || diag "CreateMultipartUpload $k: $code $body"
done
s3 GET "/lode-test?uploads&prefix=mpu/&delimiter=/"
is "$(tags Prefix | tr '\n' ' ')" "mpu/ mpu/a/ mpu/b/ mpu/d e+f/ " \
    "ListMultipartUploads with '/': the prefix, then common prefixes a/, b/ and 'd e+f/'"
is "$(tags Key | tr '\n' ' ')" "mpu/c " "... and the one upload outside them, mpu/c"
like "$body" "<IsTruncated>false</IsTruncated>" "... in one page"
s3 GET "/lode-test?uploads&prefix=mpu/&delimiter=/&max-uploads=2"
is "$(tags Prefix | tr '\n' ' ')" "mpu/ mpu/a/ mpu/b/ " "max-uploads=2: two common prefixes"
like "$body" "<IsTruncated>true</IsTruncated>" "... truncated"
is "$(tags NextKeyMarker)" "mpu/b/" "... NextKeyMarker is the last common prefix"
s3 GET "/lode-test?uploads&prefix=mpu/&delimiter=/&max-uploads=2&key-marker=mpu/b/&upload-id-marker="
is "$(tags Key | tr '\n' ' ')$(tags Prefix | tr '\n' ' ')" "mpu/c mpu/ mpu/d e+f/ " \
    "the next page, from NextKeyMarker: mpu/c and 'd e+f/', nothing of b/ again"
like "$body" "<IsTruncated>false</IsTruncated>" "... and it is the last"
s3 GET "/lode-test?uploads&prefix=mpu/&delimiter=/&encoding-type=url"
enc=$(tags Prefix | sed -n 4p)
is "$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.unquote_plus(sys.argv[1]))' "$enc")" \
    "mpu/d e+f/" "encoding-type=url encodes common prefixes too (decoded as botocore does: $enc)"
unlike "$enc" "[ +]" "... leaving no space or plus sign in them"
s3 GET "/lode-test?uploads&prefix=mpu/a/&delimiter=/"
is "$(tags Key | tr '\n' ' ')" "mpu/a/1 mpu/a/2 " "prefix mpu/a/: its two uploads, no common prefix"
s3 GET "/lode-test?uploads&prefix=mpu/"
is "$(tags Key | wc -l | tr -d ' ')" 5 "without a delimiter: all five uploads"
s3 GET "/lode-test?uploads&prefix=mpu/&delimiter=/&max-uploads=0"
ok $([ "$code" = 200 ] && [ -z "$(tags Key)$(tags Prefix | sed 1d)" ]; echo $?) "max-uploads=0: an empty page"
# boto3 itself, when it is installed (python3-boto3): its paginator follows the markers.
if "$PY" -c 'import boto3' 2>/dev/null; then
    got=$("$PY" - "$ep" <<'PYEOF'
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}))
seen = []
for page in s3.get_paginator("list_multipart_uploads").paginate(
        Bucket="lode-test", Prefix="mpu/", Delimiter="/", PaginationConfig={"PageSize": 1}):
    seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    seen += [u["Key"] for u in page.get("Uploads", [])]
print("|".join(seen))
PYEOF
)
    is "$got" "mpu/a/|mpu/b/|mpu/c|mpu/d e+f/" "boto3's paginator, one entry a page, lists each entry once"
else
    ok 0 "boto3's paginator lists each entry once # SKIP python3-boto3 not installed"
fi
s3 GET "/lode-test?uploads&prefix=mpu/"
printf '%s' "$body" | grep -o '<Key>[^<]*</Key><UploadId>[^<]*</UploadId>' |
    sed 's/<Key>\([^<]*\)<\/Key><UploadId>\([^<]*\)<\/UploadId>/\2 \1/' >"$tmp/mpus"
while read -r id k; do
    s3 DELETE "/lode-test/$(printf '%s' "$k" | sed 's/ /%20/g; s/+/%2B/g')?uploadId=$id"
    [ "$code" = 204 ] || diag "AbortMultipartUpload $k: $code $body"
done <"$tmp/mpus"
s3 GET "/lode-test?uploads&prefix=mpu/"
is "$(tags Key | wc -l | tr -d ' ')" 0 "the five uploads are aborted"

# ---- per-bucket erasure schemes ----
out=$(lodectl bucket create lode-ec21 --ec 2+1 2>&1)
is "$?" 0 "lodectl bucket create --ec 2+1 (the only user owns it)"
like "$out" "erasure 2\\+1" "... and says so"
out=$(lodectl bucket create lode-ec-bad --ec 17+1 2>&1)
is "$?" 2 "--ec 17+1 is a usage error"
like "$out" "1 <= K <= 16" "... naming the limits"
out=$(lodectl bucket create lode-ec-bad --ec 4+2 --owner nobody-here 2>&1)
is "$?" 1 "--owner of an unknown user is refused"
like "$out" "user 'nobody-here' does not exist" "... with the reason"
out=$(lodectl bucket info lode-ec21)
like "$out" "erasure: 2\\+1" "lodectl bucket info shows the scheme"
out=$(lodectl --json bucket info lode-ec21)
like "$out" '"erasure":\{"k":2,"m":1' "... and in JSON"
out=$(lodectl bucket list)
like "$out" "lode-ec21 +[^ ]+ +2\\+1" "lodectl bucket list shows it"
like "$out" "lode-test +[^ ]+ +default" "... and the gateway's default for the others"
s3 HEAD /lode-ec21
is "$(header x-lode-erasure)" "2+1" "HeadBucket answers x-lode-erasure: 2+1"
head -c $((1 << 20)) /dev/urandom >"$tmp/ec1m"
s3 PUT /lode-ec21/one.bin "$tmp/ec1m"
is "$code" 200 "PutObject of 1 MiB into the 2+1 bucket"
is "$(layout lode-ec21 one.bin)" "object 2+1 stripes=1 chunks=3" "... is stored as one 2+1 stripe"
s3 GET /lode-ec21/one.bin
cmp -s "$tmp/body" "$tmp/ec1m"
ok $? "... and reads back byte for byte"
s3 PUT /lode-ec21/small.txt "$tmp/small"
is "$(layout lode-ec21 small.txt)" "object 1+1 stripes=1 chunks=2" \
    "a small object in it: two replicas (1 + the bucket's parity)"
is "$(layout lode-test big.bin)" "object 4+2 stripes=5 chunks=30" \
    "an object of a default bucket follows the gateway's 4+2 (20 MiB: five 4 MiB stripes)"
head -c $((300 << 10)) /dev/urandom >"$tmp/p300k"
s3 POST "/lode-ec21/mp.bin?uploads"
uid4=$(printf '%s' "$body" | sed -n 's/.*<UploadId>\([^<]*\)<.*/\1/p')
s3 PUT "/lode-ec21/mp.bin?partNumber=1&uploadId=$uid4" "$tmp/p1"
f1=$(header ETag)
s3 PUT "/lode-ec21/mp.bin?partNumber=2&uploadId=$uid4" "$tmp/p300k"
f2=$(header ETag)
printf '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part><Part><PartNumber>2</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>' \
    "$f1" "$f2" >"$tmp/complete.xml"
s3 POST "/lode-ec21/mp.bin?uploadId=$uid4" "$tmp/complete.xml"
is "$code" 200 "a multipart upload into the 2+1 bucket completes"
is "$(layout lode-ec21 mp.bin | tr '\n' '|')" "part 1 2+1 stripes=3 chunks=9|part 2 2+1 stripes=1 chunks=3|" \
    "... each part stored 2+1 (5 MiB: three 2 MiB stripes; 300 KiB: one)"
cat "$tmp/p1" "$tmp/p300k" >"$tmp/mp4"
s3 GET /lode-ec21/mp.bin
cmp -s "$tmp/body" "$tmp/mp4"
ok $? "... and reads back byte for byte"
s3 PUT /lode-ec31 - "x-lode-erasure: 3+1"
is "$code" 200 "CreateBucket with x-lode-erasure: 3+1"
like "$(lodectl bucket info lode-ec31)" "erasure: 3\\+1" "... is recorded in meta"
s3 PUT /lode-ec31/one.bin "$tmp/ec1m"
is "$(layout lode-ec31 one.bin)" "object 3+1 stripes=1 chunks=4" "... and its objects are 3+1"
s3 PUT /lode-ec-bad - "x-lode-erasure: 17+1"
is "$code" 400 "CreateBucket with x-lode-erasure: 17+1 answers 400"
like "$body" "<Code>InvalidArgument</Code>" "... InvalidArgument"
s3 HEAD /lode-ec-bad
is "$code" 404 "... and creates no bucket"
for k in lode-ec21/one.bin lode-ec21/small.txt lode-ec21/mp.bin lode-ec31/one.bin; do
    s3 DELETE "/$k"
done
s3 DELETE /lode-ec21
is "$code" 204 "the 2+1 bucket is deleted"
s3 DELETE /lode-ec31

# ---- the bucket cache: a deleted bucket is gone at once for HeadBucket, and nothing is ever
# stored in it (each worker may still vouch for it for bucket-cache-ttl; meta does not) ----
s3 PUT /lode-cache
for i in 1 2 3 4; do s3 PUT /lode-cache/warm.txt "$tmp/small"; done
s3 DELETE /lode-cache/warm.txt
s3 DELETE /lode-cache
is "$code" 204 "a bucket whose record the workers cached is deleted"
s3 HEAD /lode-cache
is "$code" 404 "HeadBucket right after: 404 (never answered from the cache)"
bad=0
for i in 1 2 3 4; do
    s3 PUT /lode-cache/after.txt "$tmp/small"
    [ "$code" = 404 ] || bad=$((bad + 1))
    like "$body" "<Code>NoSuchBucket</Code>" "PutObject $i right after the delete: NoSuchBucket"
done
is "$bad" 0 "... each answered 404, whichever worker had the bucket cached"
s3 PUT /lode-cache
s3 GET "/lode-cache?list-type=2"
like "$body" "<KeyCount>0</KeyCount>" "the bucket created again holds nothing"
s3 DELETE /lode-cache
m=$("$CURL" -s "$metrics_ep")
hits=$(printf '%s\n' "$m" | sed -n 's/^lode_gateway_bucket_cache_total{result="hit"} //p')
ok $([ "${hits:-0}" -gt 0 ]; echo $?) "the bucket cache answered bucket checks (hits: ${hits:-none})"

# ---- the collector's metrics, after the failed uploads above queued their chunks ----
found=0
for i in $(seq 1 60); do
    m=$("$CURL" -s "$metrics_ep")
    c=$(printf '%s\n' "$m" | sed -n 's/^lode_gateway_gc_collected_total //p')
    if [ "${c:-0}" -gt 0 ]; then found=1; break; fi
    sleep 0.5
done
for name in lode_gateway_gc_passes_total lode_gateway_gc_collected_total \
    lode_gateway_gc_failed_total lode_gateway_gc_queue_seen; do
    like "$m" "^$name [0-9]" "the metrics endpoint shows $name"
done
ok $([ $found = 1 ]; echo $?) "the collector deleted the chunks of the failed uploads (collected: ${c:-none})"

# ---- deletes ----
s3 DELETE /lode-test
is "$code" 409 "deleting a bucket with objects: 409"
like "$body" "<Code>BucketNotEmpty</Code>" "... BucketNotEmpty"
{
    printf '<Delete><Quiet>true</Quiet>'
    for d in 0 1 2 3 4 5 6 7 8 9; do for i in $(seq -w 0 29); do printf '<Object><Key>list/d%s/k%s</Key></Object>' $d $i; done; done
    printf '</Delete>'
} >"$tmp/delete.xml"
s3 POST "/lode-test?delete" "$tmp/delete.xml"
is "$code" 200 "DeleteObjects of 300 keys answers 200"
s3 GET "/lode-test?list-type=2&prefix=list/"
like "$body" "<KeyCount>0</KeyCount>" "... and they are gone"
for k in dir/hello.txt big.bin mp.bin mpc.bin copy.bin copy2.txt trailer.bin cond.txt; do
    s3 DELETE "/lode-test/$k"
    [ "$code" = 204 ] || diag "DELETE $k: $code $body"
done
s3 GET /lode-test/big.bin
is "$code" 404 "a deleted object answers 404"
s3 DELETE /lode-test
is "$code" 204 "DeleteBucket of the emptied bucket answers 204"
s3 GET /
unlike "$body" "<Name>lode-test</Name>" "ListBuckets no longer shows it"

# A graceful stop, and nothing the sanitizers (in sanitized builds) had to say.
"$srcdir/ops/quickstart.sh" stop >/dev/null 2>&1
out=$(cat "$LODE_QUICKSTART_DIR/gateway/stdout.log" 2>/dev/null)
unlike "$out" "Sanitizer|runtime error" "lode-gateway stopped without sanitizer reports"
like "$(tail -n 1 "$LODE_QUICKSTART_DIR/gateway/lode-gateway.log")" "stopped" "lode-gateway stopped on SIGTERM"

tap_done
