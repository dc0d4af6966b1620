#!/bin/bash
# lode-gateway under hostile input, end to end: 3 lode-meta replicas, 6 lode-nodes and a
# gateway (ops/quickstart.sh from the build tree), driven over raw sockets by a client written
# here on Python's standard library (socket, hashlib, hmac: the signing steps of the AWS SigV4
# documentation, so the expected signatures do not come from the gateway's own signer).
# Every hostile request must get an S3 error document with the right status and <Code>, or a
# clean close; never a crash, never a hang (every socket read has a deadline), and nothing it
# sent may become visible. Afterwards the gateway still serves a normal PUT/GET, is alive and
# its output has no sanitizer report.
srcdir=${LODE_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=$(cd "${LODE_BUILDDIR:-.}" && pwd)
. "$srcdir/tests/lib/tap.sh"
# shellcheck source=tests/lib/qs_cluster.sh
. "$srcdir/tests/lib/qs_cluster.sh"

PY=/usr/bin/python3
CURL=/usr/bin/curl
qs_need_built lode-meta lode-node lode-gateway lodectl
[ -x "$PY" ] || tap_skip_all "no /usr/bin/python3"
[ -x "$CURL" ] || tap_skip_all "no /usr/bin/curl"

# Port blocks of its own (apart from test_gw_s3's), so that both can run at once.
qs_ports 30000 150 100 53
qs_start test_gw_hostile
ok 0 "quickstart brings up meta, nodes and the gateway"
gwdir=$LODE_QUICKSTART_DIR/gateway
port=$((LODE_QUICKSTART_PORT + 500))

# The gateway again with short slow-client and collector periods, so that the slowloris and
# the collection of a truncated upload's chunks are seen within seconds.
kill "$(cat "$gwdir/pid")"
for _ in $(seq 100); do kill -0 "$(cat "$gwdir/pid")" 2>/dev/null || break; sleep 0.1; done
printf 'header-timeout = 2s\ngc-interval = 1s\n' >>"$gwdir/lode-gateway.conf"
nohup setsid "$builddir/lode-gateway" -c "$gwdir/lode-gateway.conf" >>"$gwdir/stdout.log" 2>&1 &
echo $! >"$gwdir/pid"
gwpid=$!
for _ in $(seq 100); do
    [ "$("$CURL" -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 403 ] && break
    sleep 0.2
done
is "$("$CURL" -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" 403 \
    "the gateway restarted with header-timeout = 2s"

# gwc.py MODE ...: prints "STATUS CODE" for a response (CODE from the error document, "-"
# without one), "CLOSED" when the gateway closed without answering, "HANG" when nothing came
# within the deadline. Bodies go to $tmp/resp.
cat >"$tmp/gwc.py" <<'PYEOF'
import datetime, hashlib, hmac, os, re, socket, sys, time, urllib.parse
port = int(os.environ["GW_PORT"])
host = "127.0.0.1:%d" % port
ak, sk = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
region = "us-east-1"
DEADLINE = 20.0

def sha(b):
    return hashlib.sha256(b).hexdigest()

def hm(k, m):
    return hmac.new(k, m.encode(), hashlib.sha256)

def signing_key(secret, day):
    return hm(hm(hm(hm(("AWS4" + secret).encode(), day).digest(), region).digest(), "s3").digest(),
              "aws4_request").digest()

def enc(s):
    return urllib.parse.quote(s, safe="-_.~")

def canonical_query(q):
    params = urllib.parse.parse_qsl(q, keep_blank_values=True)
    return "&".join(enc(k) + "=" + enc(v) for k, v in sorted(params))

def sign(method, path, query, headers, payload, age=0, secret=None):
    """Adds x-amz-date, x-amz-content-sha256 and Authorization; returns (signature, date,
    scope) for chunk signatures. The path is signed as sent (S3 does not normalise it)."""
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age)
    amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers["x-amz-date"] = amzdate
    headers.setdefault("x-amz-content-sha256", payload)
    names = sorted(headers)
    ch = "".join(n + ":" + headers[n].strip() + "\n" for n in names)
    sh = ";".join(names)
    creq = "\n".join([method, path, canonical_query(query), ch, sh, headers["x-amz-content-sha256"]])
    scope = day + "/" + region + "/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, sha(creq.encode())])
    sig = hm(signing_key(secret or sk, day), sts).hexdigest()
    headers["authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
                                % (ak, scope, sh, sig))
    return sig, amzdate, scope, signing_key(secret or sk, day)

def report(data, out="resp"):
    """Prints STATUS CODE for the first response in data (or CLOSED)."""
    if not data:
        print("CLOSED")
        return
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    if not m:
        print("GARBAGE")
        return
    head, _, body = data.partition(b"\r\n\r\n")
    if out:
        open(os.environ["TMPD"] + "/" + out, "wb").write(body)
        open(os.environ["TMPD"] + "/" + out + ".head", "wb").write(head)
    c = re.search(rb"<Code>([^<]*)</Code>", body)
    print(m.group(1).decode(), c.group(1).decode() if c else "-")

def exchange(chunks, pause=0.0, shut=True, deadline=DEADLINE):
    """Sends the byte strings (pausing between them), half-closes, reads to EOF. Returns the
    bytes received, or None when the gateway neither answered nor closed in time."""
    s = socket.create_connection(("127.0.0.1", port), timeout=deadline)
    s.settimeout(deadline)
    try:
        for i, c in enumerate(chunks):
            if i and pause:
                time.sleep(pause)
            s.sendall(c)
        if shut:
            s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the gateway refused early; its answer may still be readable
    got = b""
    end = time.monotonic() + deadline
    try:
        while time.monotonic() < end:
            b = s.recv(65536)
            if not b:
                break
            got += b
        else:
            return None
    except socket.timeout:
        return None
    except ConnectionResetError:
        pass
    finally:
        s.close()
    return got

def request(method, target, body=b"", extra=(), payload=None, age=0, secret=None, nosign=False,
            send_len=None):
    path, _, query = target.partition("?")
    headers = {"host": host}
    for h in extra:
        k, v = h.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    if not nosign:
        sign(method, path, query, headers, payload or sha(body), age, secret)
    head = "%s %s HTTP/1.1\r\n" % (method, target)
    cl = len(body)
    if ("content-length" not in headers and "transfer-encoding" not in headers
            and (body or method in ("PUT", "POST"))):
        headers["content-length"] = str(cl)
    headers["connection"] = "close"
    head += "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
    data = body if send_len is None else body[:send_len]
    return exchange([head.encode(), data])

mode, args = sys.argv[1], sys.argv[2:]
if mode == "raw":
    # raw FILE: the file's bytes as they are.
    r = exchange([open(args[0], "rb").read()])
    print("HANG") if r is None else report(r)
elif mode == "req":
    # req METHOD TARGET BODYFILE|- [Header:value]... ; env: AGE, SECRET, NOSIGN, PAYLOAD,
    # SEND (bytes of the body actually sent before closing).
    body = b"" if args[2] == "-" else open(args[2], "rb").read()
    r = request(args[0], args[1], body, args[3:], payload=os.environ.get("PAYLOAD"),
                age=int(os.environ.get("AGE", "0")), secret=os.environ.get("SECRET"),
                nosign=bool(os.environ.get("NOSIGN")),
                send_len=int(os.environ["SEND"]) if "SEND" in os.environ else None)
    print("HANG") if r is None else report(r)
elif mode == "chunked":
    # chunked TARGET SIZE good|bad: a signed aws-chunked PUT (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)
    # of SIZE bytes in 8 KiB chunks, with the right chunk signatures or a wrong second one.
    target, size, how = args[0], int(args[1]), args[2]
    data = os.urandom(size)
    open(os.environ["TMPD"] + "/chunked.sent", "wb").write(data)
    pieces = [data[i:i + 8192] for i in range(0, size, 8192)] + [b""]
    enc_len = sum(len("%x;chunk-signature=" % len(p)) + 64 + 2 + len(p) + 2 for p in pieces)
    headers = {"host": host, "content-encoding": "aws-chunked",
               "x-amz-decoded-content-length": str(size), "content-length": str(enc_len)}
    seed, amzdate, scope, key = sign("PUT", target, "", headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    prev, body = seed, b""
    for i, p in enumerate(pieces):
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amzdate, scope, prev, sha(b""), sha(p)])
        sig = hm(key, sts).hexdigest()
        if how == "bad" and i == 1:
            sig = sig[:-4] + ("0000" if sig[-4:] != "0000" else "1111")
        body += b"%x;chunk-signature=%s\r\n" % (len(p), sig.encode()) + p + b"\r\n"
        prev = sig
    assert len(body) == enc_len
    headers["connection"] = "close"
    head = "PUT %s HTTP/1.1\r\n" % target + "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
    r = exchange([head.encode(), body])
    print("HANG") if r is None else report(r)
elif mode == "presign":
    # presign TARGET EXPIRES AGE: a presigned GET made AGE seconds ago.
    target, expires, age = args[0], int(args[1]), int(args[2])
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age)
    amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = day + "/" + region + "/s3/aws4_request"
    q = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": ak + "/" + scope,
         "X-Amz-Date": amzdate, "X-Amz-Expires": str(expires), "X-Amz-SignedHeaders": "host"}
    cq = "&".join(enc(k) + "=" + enc(v) for k, v in sorted(q.items()))
    creq = "\n".join(["GET", target, cq, "host:" + host + "\n", "host", "UNSIGNED-PAYLOAD"])
    sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, sha(creq.encode())])
    sig = hm(signing_key(sk, day), sts).hexdigest()
    r = request("GET", target + "?" + cq + "&X-Amz-Signature=" + sig, nosign=True)
    print("HANG") if r is None else report(r)
elif mode == "slowloris":
    # One byte of a request head per second; prints how many seconds until the gateway
    # closed the connection, or HANG after LIMIT seconds.
    limit = float(args[0])
    msg = b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\nX-Slow: " + b"a" * 200
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.monotonic()
    closed = None
    try:
        for b in msg:
            if time.monotonic() - t0 > limit:
                break
            s.sendall(bytes([b]))
            s.settimeout(1.0)
            try:
                s.recv(65536)  # an answer or EOF: either way the gateway gave up
                closed = time.monotonic() - t0
                break
            except socket.timeout:
                pass
    except (BrokenPipeError, ConnectionResetError):
        closed = time.monotonic() - t0
    s.close()
    print("HANG" if closed is None else "%.0f" % closed)
PYEOF
export GW_PORT=$port TMPD=$tmp
gwc() { "$PY" "$tmp/gwc.py" "$@"; }
md5b64() { "$PY" -c 'import base64,hashlib,sys; print(base64.b64encode(hashlib.md5(open(sys.argv[1],"rb").read()).digest()).decode())' "$1"; }
raw() { printf "$1" >"$tmp/raw"; gwc raw "$tmp/raw"; }

is "$(gwc req PUT /hostile -)" "200 -" "CreateBucket of the test bucket"

# ---- malformed HTTP ----
head -c 4096 /dev/urandom >"$tmp/random"
like "$(gwc raw "$tmp/random")" "^(400 [A-Za-z]+|CLOSED)$" "4 KiB of random bytes: 400 or a clean close"
like "$(raw 'GET\r\n\r\n')" "^400 BadRequest$" "a request line without target or version: 400 BadRequest"
like "$(raw 'GET / HTTP/9.9\r\nHost: x\r\n\r\n')" "^(400|505) [A-Za-z]+$" "HTTP/9.9: 400 or 505"
like "$(raw 'G@T / HTTP/1.1\r\nHost: x\r\n\r\n')" "^400 BadRequest$" "a method with a bad character: 400 BadRequest"
like "$(raw 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n')" "^400 BadRequest$" "a target with a space: 400 BadRequest"
like "$(raw 'GET / HTTP/1.1\nHost: x\n\n')" "^400 BadRequest$" "bare LF line ends: 400 BadRequest"
"$PY" -c 'import sys; sys.stdout.write("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + "a" * 70000 + "\r\n\r\n")' >"$tmp/raw"
is "$(gwc raw "$tmp/raw")" "400 RequestHeaderSectionTooLarge" "a 70 KB header section: 400 RequestHeaderSectionTooLarge"
"$PY" -c 'import sys; sys.stdout.write("GET / HTTP/1.1\r\nHost: x\r\n" + "".join("X-H%d: v\r\n" % i for i in range(300)) + "\r\n")' >"$tmp/raw"
is "$(gwc raw "$tmp/raw")" "400 RequestHeaderSectionTooLarge" "300 header fields: 400 RequestHeaderSectionTooLarge"
like "$(raw 'PUT /hostile/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n')" \
    "^400 BadRequest$" "Content-Length with Transfer-Encoding: 400 BadRequest"
# Chunked framing is parsed only once the request is authenticated and the operation takes a
# body of unknown length (PutObject needs its length up front: 411 MissingContentLength, as
# S3), so these are DeleteObjects requests, signed with UNSIGNED-PAYLOAD, their XML body
# framed with HTTP chunked, well or badly.
delxml='<Delete><Object><Key>no-such-key</Key></Object></Delete>'
chunked_post() {
    printf "$1" >"$tmp/raw"
    PAYLOAD=UNSIGNED-PAYLOAD gwc req POST "/hostile?delete" "$tmp/raw" "Transfer-Encoding: chunked" \
        "Content-MD5: $(printf '%s' "$delxml" | "$PY" -c 'import base64,hashlib,sys; print(base64.b64encode(hashlib.md5(sys.stdin.buffer.read()).digest()).decode())')"
}
is "$(chunked_post "$(printf '%x' ${#delxml})\r\n$delxml\r\n0\r\n\r\n")" "200 -" \
    "DeleteObjects with a well-formed HTTP chunked body: 200 (control)"
is "$(PAYLOAD=UNSIGNED-PAYLOAD gwc req PUT /hostile/te "$tmp/raw" "Transfer-Encoding: chunked")" \
    "411 MissingContentLength" "PutObject with HTTP chunked framing: 411 MissingContentLength"
like "$(chunked_post 'zz\r\nhello\r\n0\r\n\r\n')" "^400 [A-Za-z]+$" "a chunk size that is not hex: 400"
like "$(chunked_post "$(printf '%x' ${#delxml})\r\n${delxml}XX0\r\n\r\n")" "^400 [A-Za-z]+$" \
    "chunk data not followed by CRLF: 400"
like "$(chunked_post 'ffffffffffffffffffff\r\n')" "^400 [A-Za-z]+$" "a chunk size beyond 64 bits: 400"
like "$(chunked_post '5\r\n<Del')" "^(400 [A-Za-z]+|CLOSED)$" "a chunked body cut short: 400 or a close"

# ---- authentication ----
is "$(NOSIGN=1 gwc req GET /hostile -)" "403 AccessDenied" "an unsigned request: 403 AccessDenied"
is "$(SECRET=not-the-secret gwc req GET /hostile -)" "403 SignatureDoesNotMatch" \
    "a request signed with the wrong secret: 403 SignatureDoesNotMatch"
is "$(AGE=3600 gwc req GET /hostile -)" "403 RequestTimeTooSkewed" "a request signed an hour ago: 403 RequestTimeTooSkewed"
is "$(AGE=-3600 gwc req GET /hostile -)" "403 RequestTimeTooSkewed" "a request dated an hour ahead: 403 RequestTimeTooSkewed"
printf 'x' >"$tmp/one"
is "$(NOSIGN=1 gwc req PUT /hostile/unsigned "$tmp/one")" "403 AccessDenied" "an unsigned PUT: 403 AccessDenied"
is "$(gwc presign /hostile/unsigned 60 120)" "403 AccessDenied" "a presigned URL expired a minute ago: 403 AccessDenied"
is "$(NOSIGN=1 gwc req GET /hostile - 'Authorization: AWS4-HMAC-SHA256 Credential=garbage' \
    "x-amz-date: $(date -u +%Y%m%dT%H%M%SZ)" 'x-amz-content-sha256: UNSIGNED-PAYLOAD')" \
    "400 AuthorizationHeaderMalformed" "a malformed Authorization header: 400 AuthorizationHeaderMalformed"

# ---- bodies that must not be stored ----
head -c 100000 /dev/urandom >"$tmp/hundred"
is "$(gwc req PUT /hostile/badmd5 "$tmp/hundred" 'Content-MD5: AAAAAAAAAAAAAAAAAAAAAA==')" \
    "400 BadDigest" "a wrong Content-MD5: 400 BadDigest"
is "$(gwc req PUT /hostile/badmd5b "$tmp/hundred" 'Content-MD5: not base64!')" \
    "400 InvalidDigest" "a Content-MD5 that is not base64: 400 InvalidDigest"
is "$(gwc req PUT /hostile/badcrc "$tmp/hundred" 'x-amz-checksum-crc32: AAAAAA==')" \
    "400 BadDigest" "a wrong x-amz-checksum-crc32: 400 BadDigest"
is "$(gwc req PUT /hostile/badsha "$tmp/hundred" \
    'x-amz-content-sha256: 0000000000000000000000000000000000000000000000000000000000000000')" \
    "400 XAmzContentSHA256Mismatch" "a wrong signed payload hash: 400 XAmzContentSHA256Mismatch"
is "$(gwc chunked /hostile/chunked-good 20000 good)" "200 -" \
    "a signed aws-chunked upload with the right chunk signatures: 200 (control)"
cp "$tmp/chunked.sent" "$tmp/chunked.good"
is "$(gwc chunked /hostile/chunked-bad 20000 bad)" "403 SignatureDoesNotMatch" \
    "aws-chunked with a wrong chunk signature: 403 SignatureDoesNotMatch"

# A PUT of 10 MiB that stops after 9 MiB: two 4 MiB stripes (12 chunks of 1 MiB in 4+2)
# were sent to nodes; the object must not appear and those chunks must be collected.
# The collector logs each pass ("gc: pass: Q queued, D deleted, ..."); lode-meta's queue has
# no lodectl command, so the deleted counts logged after the upload are what is checked.
gc_deleted() {
    grep -o 'gc: pass: [0-9]* queued, [0-9]* deleted' "$gwdir/lode-gateway.log" |
        awk '{ s += $5 } END { printf "%d\n", s }'
}
head -c $((9 << 20)) /dev/urandom >"$tmp/nine"
for _ in $(seq 20); do g0=$(gc_deleted); sleep 1.5; [ "$(gc_deleted)" = "$g0" ] && break; done
out=$(PAYLOAD=UNSIGNED-PAYLOAD SEND=$((9 << 20)) gwc req PUT /hostile/truncated "$tmp/nine" \
    "Content-Length: $((10 << 20))")
# The declared length wins over the bytes in the file (request() takes it from the header).
like "$out" "^(400 IncompleteBody|CLOSED)$" "a PUT cut short of its Content-Length: 400 IncompleteBody or a close"
is "$(gwc req HEAD /hostile/truncated -)" "404 -" "... and the object does not exist"
g1=$g0
for _ in $(seq 30); do g1=$(gc_deleted); [ $((g1 - g0)) -ge 12 ] && break; sleep 0.5; done
ok "$([ $((g1 - g0)) -ge 12 ]; echo $?)" "... and the 12 chunks it sent are collected ($((g1 - g0)) deleted)"

# ---- bad XML ----
uid=$(gwc req POST "/hostile/mp?uploads" - >/dev/null; sed -n 's/.*<UploadId>\([^<]*\)<.*/\1/p' "$tmp/resp")
[ -n "$uid" ]
ok $? "CreateMultipartUpload for the XML tests"
head -c $((5 << 20)) /dev/urandom >"$tmp/part"
is "$(gwc req PUT "/hostile/mp?partNumber=1&uploadId=$uid" "$tmp/part")" "200 -" "UploadPart 1"
for xml in '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>' \
    'not xml at all' \
    '<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>"a"</ETag></Part></CompleteMultipartUpload>' \
    '<!DOCTYPE a [<!ENTITY e "x">]><CompleteMultipartUpload>&e;</CompleteMultipartUpload>' \
    '<CompleteMultipartUpload></CompleteMultipartUpload>'; do
    printf '%s' "$xml" >"$tmp/xml"
    like "$(gwc req POST "/hostile/mp?uploadId=$uid" "$tmp/xml")" "^400 (MalformedXML|InvalidPart|InvalidRequest)$" \
        "CompleteMultipartUpload with '${xml:0:40}': 400"
done
"$PY" -c 'import sys; sys.stdout.write("<a>" * 100000)' >"$tmp/xml"
like "$(gwc req POST "/hostile/mp?uploadId=$uid" "$tmp/xml")" "^400 [A-Za-z]+$" \
    "CompleteMultipartUpload nested 100000 deep: 400"
is "$(gwc req HEAD /hostile/mp -)" "404 -" "... and no object was completed"
for xml in '<Delete><Object><Key>k</Key></Object>' 'garbage' \
    '<Delete><Object><Key></Key></Object></Delete>' \
    '<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>'; do
    printf '%s' "$xml" >"$tmp/xml"
    like "$(gwc req POST "/hostile?delete" "$tmp/xml" "Content-MD5: $(md5b64 "$tmp/xml")")" \
        "^400 (MalformedXML|InvalidArgument|InvalidRequest)$" "DeleteObjects with '${xml:0:40}': 400"
done

# ---- keys ----
is "$(gwc req PUT /hostile/a/../b "$tmp/one")" "400 InvalidArgument" "a key with a '..' segment: 400 InvalidArgument"
is "$(gwc req PUT /hostile/a/./b "$tmp/one")" "400 InvalidArgument" "a key with a '.' segment: 400 InvalidArgument"
like "$(gwc req PUT /hostile/a%00b "$tmp/one")" "^400 (InvalidArgument|InvalidURI)$" "a key with NUL (%00): 400"
like "$(gwc req PUT /hostile/a%C0%AFb "$tmp/one")" "^400 (InvalidArgument|InvalidURI)$" "an overlong UTF-8 '/' (%C0%AF): 400"
like "$(gwc req PUT /hostile/a%FFb "$tmp/one")" "^400 (InvalidArgument|InvalidURI)$" "a key with byte 0xFF: 400"
like "$(gwc req PUT /hostile/a%ED%A0%80b "$tmp/one")" "^400 (InvalidArgument|InvalidURI)$" "a UTF-16 surrogate (%ED%A0%80): 400"
like "$(gwc req PUT /hostile/a%zzb "$tmp/one")" "^400 (InvalidArgument|InvalidURI)$" "a bad percent escape: 400"
is "$(gwc req PUT "/hostile/$(head -c 1025 /dev/zero | tr '\0' k)" "$tmp/one")" "400 KeyTooLongError" \
    "a 1025-byte key: 400 KeyTooLongError"
is "$(gwc req PUT "/hostile/$(head -c 1024 /dev/zero | tr '\0' k)" "$tmp/one")" "200 -" \
    "a 1024-byte key is accepted (control)"

# ---- slowloris ----
t=$(gwc slowloris 15)
like "$t" "^[0-9]+$" "a head sent one byte a second is cut off (after ${t}s)"
ok "$([ "$t" != HANG ] && [ "$t" -le 6 ]; echo $?)" "... within the 2 s header timeout and some slack"

# ---- nothing stored, and the gateway still works ----
gwc req GET "/hostile?list-type=2" - >/dev/null
keys=$(grep -o '<Key>[^<]*</Key>' "$tmp/resp" | sed 's/<[^>]*>//g' | cut -c1-20 | sort | tr '\n' ' ')
is "$keys" "chunked-good kkkkkkkkkkkkkkkkkkkk " "the bucket holds only the two accepted objects"
gwc req GET /hostile/chunked-good - >/dev/null
cmp -s "$tmp/resp" "$tmp/chunked.good"
ok $? "the good aws-chunked upload reads back byte for byte"
is "$(gwc req PUT /hostile/after.bin "$tmp/hundred")" "200 -" "after all of it, a normal PUT answers 200"
gwc req GET /hostile/after.bin - >/dev/null
cmp -s "$tmp/resp" "$tmp/hundred"
ok $? "... and reads back byte for byte"
kill -0 "$gwpid" 2>/dev/null
ok $? "lode-gateway is still running (pid $gwpid)"
qs_stop
unlike "$(cat "$gwdir/stdout.log")" "Sanitizer|runtime error" "lode-gateway has no sanitizer report"
like "$(tail -n 1 "$gwdir/lode-gateway.log")" "stopped" "lode-gateway stopped on SIGTERM"

tap_done
