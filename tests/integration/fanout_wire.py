"""A second, independent client of lode's fan-out GET, written from docs/fanout.md and
docs/dataplane.md on Python's standard library only: SigV4 signing, the session request, one
data connection per source (HELLO, DATA frames received straight into a bytearray window
with recv_into), the completion rule (x-lode-sources). test_gw_fanout.sh drives it.

    fanout_wire.py ENDPOINT COMMAND [ARGS...]
      session                         print the session XML's sources
      get BUCKET KEY FILE [RANGE] [WINDOW]   fan-out GET, compare with FILE; prints a summary
      raw METHOD BUCKET KEY TOKEN|- [BODYFILE]  a signed request with x-amz-rdma-token;
                                      prints status, the rdma headers and the body length
      unsigned-token BUCKET KEY       the token sent but not signed
      badhello                        a HELLO with a forged MAC: prints the reply code
Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""
import datetime
import hashlib
import hmac
import http.client
import os
import secrets
import socket
import struct
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

AK = os.environ["AWS_ACCESS_KEY_ID"]
SK = os.environ["AWS_SECRET_ACCESS_KEY"]
REGION = "us-east-1"


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def sign(method, url, headers, payload_hash, signed_extra=True, unsigned=()):
    u = urllib.parse.urlsplit(url)
    now = datetime.datetime.now(datetime.timezone.utc)
    amz = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz[:8]
    h = {k.lower(): v for k, v in headers.items()}
    h["host"] = u.netloc
    h["x-amz-date"] = amz
    h["x-amz-content-sha256"] = payload_hash
    signed = sorted(k for k in h if k not in unsigned)
    q = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
    cq = "&".join("%s=%s" % (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
                  for k, v in sorted(q))
    path = urllib.parse.quote(u.path or "/", safe="/-_.~")
    creq = "\n".join([method, path, cq] + ["%s:%s" % (k, h[k].strip()) for k in signed] +
                     ["", ";".join(signed), payload_hash])
    scope = "%s/%s/s3/aws4_request" % (day, REGION)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + SK).encode()
    for part in (day, REGION, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    h["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        AK, scope, ";".join(signed), sig)
    return h


def request(ep, method, path, headers=None, body=b"", unsigned=()):
    url = ep + path
    h = sign(method, url, headers or {}, hashlib.sha256(body).hexdigest(), unsigned=unsigned)
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.netloc, timeout=120)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


class Receiver:
    """One connection per source; frames land in the window whose (base, tag) they name."""

    def __init__(self, sess):
        self.sess = sess
        self.lock = threading.Condition()
        self.windows = {}            # (base, tag) -> [bytearray, {source: bytes}]
        self.dropped = 0
        self.failed = {}
        self.socks = []

    def hello(self):
        key = self.sess["key"].encode()
        return (b"LDP1" + struct.pack("<HH", 1, 0) + self.sess["sid"] +
                struct.pack("<Q", self.sess["expires"]) + self.sess["mac"] +
                struct.pack("<HH", len(key), 0) + key.ljust(28, b"\0"))

    def connect(self, sid_num, addr):
        host, port = addr.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(self.hello())
        rep = b""
        while len(rep) < 16:
            d = s.recv(16 - len(rep))
            if not d:
                raise IOError("source %d closed during HELLO" % sid_num)
            rep += d
        magic, kind, code, src = struct.unpack("<4sHHQ", rep)
        if magic != b"LDP1" or kind != 1 or src != sid_num:
            raise IOError("source %d refused the HELLO: kind %d code %d (id %d)" %
                          (sid_num, kind, code, src))
        s.settimeout(None)
        self.socks.append(s)
        threading.Thread(target=self.run, args=(sid_num, s), daemon=True).start()

    def recv_exact(self, s, n):
        b = bytearray(n)
        mv = memoryview(b)
        got = 0
        while got < n:
            k = s.recv_into(mv[got:])
            if k == 0:
                raise EOFError
            got += k
        return bytes(b)

    def run(self, src, s):
        try:
            while True:
                hdr = self.recv_exact(s, 32)
                magic, ln, addr, base, tag, crc = struct.unpack("<4sIQQII", hdr)
                if magic != b"LDPD" or crc != crc32c(hdr[:28]):
                    raise IOError("bad DATA header from source %d" % src)
                with self.lock:
                    w = self.windows.get((base, tag))
                if w is None or addr < base or addr + ln > base + len(w[0]):
                    self.recv_exact(s, ln)
                    with self.lock:
                        self.dropped += ln
                    continue
                mv = memoryview(w[0])[addr - base:addr - base + ln]
                got = 0
                while got < ln:  # straight into the window, no intermediate copy
                    k = s.recv_into(mv[got:])
                    if k == 0:
                        raise EOFError
                    got += k
                with self.lock:
                    w[1][src] = w[1].get(src, 0) + ln
                    self.lock.notify_all()
        except (EOFError, OSError) as e:
            with self.lock:
                self.failed[src] = str(e) or "closed"
                self.lock.notify_all()

    def open(self, base, tag, size):
        w = [bytearray(size), {}]
        with self.lock:
            self.windows[(base, tag)] = w
        return w

    def wait(self, w, expect, timeout=120):
        end = time.time() + timeout
        with self.lock:
            while True:
                missing = {s: b for s, b in expect.items() if w[1].get(s, 0) < b}
                if not missing:
                    return True
                for s in missing:
                    if s in self.failed:
                        raise IOError("source %d failed: %s" % (s, self.failed[s]))
                if time.time() > end:
                    raise IOError("timeout waiting for %r" % missing)
                self.lock.wait(0.5)

    def close(self, base, tag):
        with self.lock:
            self.windows.pop((base, tag), None)


def session(ep):
    st, h, body = request(ep, "POST", "/?x-lode-session")
    if st != 200:
        raise SystemExit("session: HTTP %d %s" % (st, body[:300]))
    x = ET.fromstring(body)
    ns = ""
    srcs = [(int(s.find(ns + "Id").text), s.find(ns + "Tcp").text) for s in x.findall(ns + "Source")]
    return {"sid": bytes.fromhex(x.find("Sid").text), "expires": int(x.find("Expires").text),
            "mac": bytes.fromhex(x.find("Mac").text), "key": x.find("AccessKey").text,
            "sources": srcs}


def token(base, size, sid, tag):
    return "%016x:%016x:tcp1:%s:%08x" % (base, size, sid.hex(), tag)


def main():
    ep, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if cmd == "session":
        s = session(ep)
        print("sources", len(s["sources"]), " ".join("%d=%s" % x for x in s["sources"]))
        return
    if cmd == "badhello":
        s = session(ep)
        s["mac"] = bytes(32)
        r = Receiver(s)
        try:
            r.connect(*s["sources"][0])
            print("accepted")
        except IOError as e:
            print("refused", e)
        return
    if cmd == "get":
        bucket, key, path = args[0], args[1], args[2]
        want = open(path, "rb").read()
        rng = args[3] if len(args) > 3 and args[3] != "-" else None
        s = session(ep)
        r = Receiver(s)
        down = 0
        for sid_num, addr in s["sources"]:
            try:
                r.connect(sid_num, addr)
            except OSError:
                down += 1  # a source that is down: the gateway writes its share itself
        first, last = 0, len(want) - 1
        if rng:
            a, b = rng.split("-")
            first, last = int(a), min(int(b), len(want) - 1)
        size = int(args[4]) if len(args) > 4 else max(last - first + 1, 1)
        base = 0x7f0000000000 + secrets.randbelow(1 << 20) * 4096
        tag = secrets.randbelow(0xFFFFFFFE) + 1
        w = r.open(base, tag, size)
        hdrs = {"x-amz-rdma-token": token(base, size, s["sid"], tag)}
        if rng:
            hdrs["range"] = "bytes=" + rng
        st, h, body = request(ep, "GET", "/%s/%s" % (bucket, key), hdrs)
        reply = h.get("x-amz-rdma-reply")
        print("status", st, "reply", reply, "transferred", h.get("x-amz-rdma-bytes-transferred"),
              "body", len(body), "unreachable", down)
        if st not in (200, 206) or reply not in ("200", "206"):
            print("body-text", body[:300])
            return
        srcs = {}
        for part in filter(None, h.get("x-lode-sources", "").split(",")):
            i, n = part.split("=")
            srcs[int(i)] = int(n)
        print("sources", len(srcs), "sum", sum(srcs.values()),
              "gateway", sum(n for i, n in srcs.items() if i >= 0x80000000),
              "content-range", h.get("content-range", "-"))
        r.wait(w, srcs)
        n = int(h["x-amz-rdma-bytes-transferred"])
        r.close(base, tag)
        print("match", "yes" if bytes(w[0][:n]) == want[first:first + n] else "no", "n", n)
        return
    if cmd == "raw":
        method, bucket, key, tok = args[0], args[1], args[2], args[3]
        body = open(args[4], "rb").read() if len(args) > 4 else b""
        hdrs = {} if tok == "-" else {"x-amz-rdma-token": tok}
        st, h, data = request(ep, method, "/%s/%s" % (bucket, key) if key != "-" else "/%s" % bucket,
                              hdrs, body)
        print("status", st, "reply", h.get("x-amz-rdma-reply", "-"), "etag", h.get("etag", "-"),
              "len", len(data), "clen", h.get("content-length", "-"),
              "code", (ET.fromstring(data).findtext("Code") if data.startswith(b"<?xml") else "-"))
        return
    if cmd == "unsigned-token":
        bucket, key = args
        st, h, data = request(ep, "GET", "/%s/%s" % (bucket, key),
                              {"x-amz-rdma-token": token(0x7f0000000000, 1 << 20, bytes(16), 1)},
                              unsigned=("x-amz-rdma-token",))
        print("status", st, "code", ET.fromstring(data).findtext("Code") if data else "-")
        return
    raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main()
