"""The boto3 suite's client half, run by test_s3c_boto3.sh with the system's /usr/bin/python3.

Reports to the shell (s3c_bridge in s3c_lib.sh) one line per test point:
"R\t0|1\tname", "D\ttext" for diagnostics.
Arguments: ENDPOINT BIGFILE WORKDIR. Credentials come from the environment.
Expected values are computed here with hashlib, zlib and base64 from the bytes sent.
"""
import base64
import concurrent.futures
import hashlib
import os
import sys
import zlib

import boto3
import botocore.config
import botocore.exceptions
from boto3.s3.transfer import TransferConfig

endpoint, bigfile, work = sys.argv[1:4]
MIB = 1 << 20


def say(*fields):
    print("\t".join(str(f).replace("\n", " ") for f in fields), flush=True)


def ok(cond, name):
    say("R", 0 if cond else 1, name)
    return bool(cond)


def is_(got, want, name):
    if not ok(got == want, name):
        say("D", "  got:  %r" % (got,))
        say("D", "  want: %r" % (want,))


def diag(text):
    say("D", text)


def attempt(name, fn):
    """Runs fn; a point that fails (with the exception shown) when it raises."""
    try:
        return True, fn()
    except Exception as e:  # the report must go on whatever the gateway answers
        ok(False, name)
        diag("  %s: %s" % (type(e).__name__, e))
        return False, None


def md5(b):
    return hashlib.md5(b).hexdigest()


def mp_etag(data, size):
    parts = [data[i:i + size] for i in range(0, len(data), size)]
    return '"%s-%d"' % (hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest(), len(parts))


def error_of(fn):
    """(code, status) of the ClientError fn raises, or (None, None)."""
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        return e.response.get("Error", {}).get("Code"), e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None, None


cfg = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                             max_pool_connections=32)
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=cfg)
B = "lode-boto3"

# ---- buckets ----
good, _ = attempt("create_bucket", lambda: s3.create_bucket(Bucket=B))
ok(good, "create_bucket")
s3.create_bucket(Bucket=B + "-two")
names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
ok(B in names and B + "-two" in names, "list_buckets shows both buckets")
ok(s3.head_bucket(Bucket=B)["ResponseMetadata"]["HTTPStatusCode"] == 200, "head_bucket answers 200")
loc = s3.get_bucket_location(Bucket=B).get("LocationConstraint")
ok(loc in (None, "", "us-east-1"), "get_bucket_location answers us-east-1")
is_(error_of(lambda: s3.create_bucket(Bucket=B))[0], "BucketAlreadyOwnedByYou",
    "creating it again: BucketAlreadyOwnedByYou")
s3.delete_bucket(Bucket=B + "-two")
is_(error_of(lambda: s3.head_bucket(Bucket=B + "-two"))[1], 404, "delete_bucket: head_bucket then answers 404")

# ---- small object ----
small = b"hello from boto3\n"
r = s3.put_object(Bucket=B, Key="dir/small.txt", Body=small, ContentType="text/plain",
                  Metadata={"color": "blue"}, CacheControl="max-age=60")
is_(r["ETag"], '"%s"' % md5(small), "put_object answers the MD5 ETag")
g = s3.get_object(Bucket=B, Key="dir/small.txt")
is_(g["Body"].read(), small, "get_object returns the bytes")
is_(g["ContentType"], "text/plain", "the content type is kept")
is_(g["Metadata"], {"color": "blue"}, "user metadata is kept")
is_(g.get("CacheControl"), "max-age=60", "Cache-Control is kept")
h = s3.head_object(Bucket=B, Key="dir/small.txt")
is_(h["ContentLength"], len(small), "head_object gives the length")
is_(error_of(lambda: s3.head_object(Bucket=B, Key="nothing"))[1], 404, "head_object of a missing key: 404")
is_(error_of(lambda: s3.get_object(Bucket=B, Key="nothing"))[0], "NoSuchKey", "get_object of a missing key: NoSuchKey")
g = s3.get_object(Bucket=B, Key="dir/small.txt", ResponseContentType="application/x-lode",
                  ResponseContentDisposition="attachment")
ok(g["ContentType"] == "application/x-lode" and g.get("ContentDisposition") == "attachment",
   "response-content-type and response-content-disposition overrides")
is_(error_of(lambda: s3.get_object(Bucket=B, Key="dir/small.txt", IfNoneMatch=r["ETag"]))[1], 304,
    "get_object with If-None-Match of its ETag: 304")
is_(error_of(lambda: s3.get_object(Bucket=B, Key="dir/small.txt", IfMatch='"0000"'))[1], 412,
    "get_object with a wrong If-Match: 412")

# Checksums: boto3 computes them and sends them as headers; the gateway checks and keeps them.
crc = base64.b64encode(zlib.crc32(small).to_bytes(4, "big")).decode()
r = s3.put_object(Bucket=B, Key="sum/crc32.txt", Body=small, ChecksumAlgorithm="CRC32")
is_(r.get("ChecksumCRC32"), crc, "put_object with a CRC32 checksum answers the CRC32 zlib computes")
g = s3.get_object(Bucket=B, Key="sum/crc32.txt", ChecksumMode="ENABLED")
is_(g.get("ChecksumCRC32"), crc, "get_object in checksum mode returns it")
g["Body"].read()
sha = base64.b64encode(hashlib.sha256(small).digest()).decode()
r = s3.put_object(Bucket=B, Key="sum/sha256.txt", Body=small, ChecksumAlgorithm="SHA256")
is_(r.get("ChecksumSHA256"), sha, "put_object with a SHA-256 checksum answers the SHA-256 hashlib computes")
is_(error_of(lambda: s3.put_object(Bucket=B, Key="sum/bad.txt", Body=small, ChecksumCRC32="AAAAAA=="))[0],
    "BadDigest", "a wrong CRC32 checksum: BadDigest")
is_(error_of(lambda: s3.head_object(Bucket=B, Key="sum/bad.txt"))[1], 404, "... and nothing is stored")

# ---- 100 MiB: managed multipart upload and download (8 MiB parts, 10 threads) ----
data = open(bigfile, "rb").read()
tc = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=8)
good, _ = attempt("upload_file", lambda: s3.upload_file(bigfile, B, "big.bin", Config=tc))
ok(good, "upload_file of 100 MiB (multipart)")
is_(s3.head_object(Bucket=B, Key="big.bin")["ETag"], mp_etag(data, 8 * MIB),
    "its ETag is the multipart ETag of 13 parts of 8 MiB")
out = os.path.join(work, "big.out")
s3.download_file(B, "big.bin", out, Config=tc)
ok(hashlib.sha256(open(out, "rb").read()).digest() == hashlib.sha256(data).digest(),
   "download_file (parallel ranged GETs) returns the 100 MiB byte for byte")
os.unlink(out)
r = s3.put_object(Bucket=B, Key="big-single.bin", Body=data[:20 * MIB])
is_(r["ETag"], '"%s"' % md5(data[:20 * MIB]), "a single 20 MiB put_object answers the MD5 ETag")

# ---- ranged reads ----
for lo, hi in ((0, 0), (8 * MIB - 10, 8 * MIB + 10), (33 * MIB + 7, 61 * MIB + 3)):
    g = s3.get_object(Bucket=B, Key="big.bin", Range="bytes=%d-%d" % (lo, hi))
    ok(g["Body"].read() == data[lo:hi + 1] and g["ContentRange"] == "bytes %d-%d/%d" % (lo, hi, len(data)),
       "get_object Range bytes=%d-%d" % (lo, hi))
g = s3.get_object(Bucket=B, Key="big.bin", Range="bytes=-4096")
ok(g["Body"].read() == data[-4096:], "get_object Range bytes=-4096 (a suffix)")
g = s3.get_object(Bucket=B, Key="big.bin", Range="bytes=%d-" % (len(data) - 100))
ok(g["Body"].read() == data[-100:], "get_object Range with an open end")
is_(error_of(lambda: s3.get_object(Bucket=B, Key="big.bin", Range="bytes=%d-" % len(data)))[1], 416,
    "a range past the end: 416")

# ---- listing over 2000 keys, written by 16 threads ----
keys = ["list/d%02d/k%03d" % (d, k) for d in range(20) for k in range(100)]


def put(k):
    s3.put_object(Bucket=B, Key=k, Body=k.encode())


with concurrent.futures.ThreadPoolExecutor(16) as ex:
    errors = [f.exception() for f in [ex.submit(put, k) for k in keys] if f.exception()]
ok(not errors, "2000 put_object calls from 16 threads succeed")
for e in errors[:3]:
    diag("  %s" % e)
pag = s3.get_paginator("list_objects_v2")
got = [o["Key"] for p in pag.paginate(Bucket=B, Prefix="list/", PaginationConfig={"PageSize": 333}) for o in p.get("Contents", [])]
is_(got, keys, "list_objects_v2 in pages of 333 returns the 2000 keys in order")
pages = list(pag.paginate(Bucket=B, Prefix="list/", Delimiter="/"))
cps = [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
is_(cps, ["list/d%02d/" % d for d in range(20)], "list_objects_v2 with a delimiter: the 20 common prefixes")
got = [o["Key"] for p in pag.paginate(Bucket=B, Prefix="list/d1", Delimiter="/") for o in p.get("Contents", [])]
is_(got, [], "... and no keys at that level")
pv1 = s3.get_paginator("list_objects")
got = [o["Key"] for p in pv1.paginate(Bucket=B, Prefix="list/", PaginationConfig={"PageSize": 450}) for o in p.get("Contents", [])]
is_(got, keys, "list_objects v1 in pages of 450 (markers) returns the 2000 keys")
r = s3.list_objects_v2(Bucket=B, Prefix="list/d03/", StartAfter="list/d03/k095")
is_([o["Key"] for o in r.get("Contents", [])], ["list/d03/k%03d" % k for k in range(96, 100)], "StartAfter")
r = s3.list_objects(Bucket=B, Prefix="list/d04/", Marker="list/d04/k097")
is_([o["Key"] for o in r.get("Contents", [])], ["list/d04/k098", "list/d04/k099"], "v1 Marker")
r = s3.list_objects_v2(Bucket=B, Prefix="list/", Delimiter="/", MaxKeys=5)
ok(r.get("IsTruncated") and len(r.get("CommonPrefixes", [])) == 5, "MaxKeys counts common prefixes (5 of 20, truncated)")
r = s3.list_objects_v2(Bucket=B, Prefix="list/d00/k00", FetchOwner=True)
ok(r.get("KeyCount") == 10 and all("Owner" in o for o in r["Contents"]), "FetchOwner gives owners")
is_(s3.get_object(Bucket=B, Key="list/d17/k071")["Body"].read(), b"list/d17/k071", "a listed key holds its own content")

# ---- explicit multipart, with a part copied from another object ----
mp = s3.create_multipart_upload(Bucket=B, Key="mp.bin", ContentType="application/x-mp")
uid = mp["UploadId"]
p1, p2 = data[:5 * MIB], data[5 * MIB:7 * MIB]
e1 = s3.upload_part(Bucket=B, Key="mp.bin", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
e2 = s3.upload_part_copy(Bucket=B, Key="mp.bin", UploadId=uid, PartNumber=2, CopySource={"Bucket": B, "Key": "big.bin"},
                         CopySourceRange="bytes=%d-%d" % (5 * MIB, 7 * MIB - 1))["CopyPartResult"]["ETag"]
is_((e1, e2), ('"%s"' % md5(p1), '"%s"' % md5(p2)), "upload_part and upload_part_copy answer the parts' MD5s")
parts = s3.list_parts(Bucket=B, Key="mp.bin", UploadId=uid)["Parts"]
is_([(p["PartNumber"], p["Size"]) for p in parts], [(1, 5 * MIB), (2, 2 * MIB)], "list_parts shows both parts")
ups = s3.list_multipart_uploads(Bucket=B).get("Uploads", [])
ok(any(u["UploadId"] == uid for u in ups), "list_multipart_uploads shows the upload")
r = s3.complete_multipart_upload(Bucket=B, Key="mp.bin", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
is_(r["ETag"], mp_etag(p1 + p2, 5 * MIB), "complete_multipart_upload answers the multipart ETag")
g = s3.get_object(Bucket=B, Key="mp.bin")
ok(g["Body"].read() == p1 + p2 and g["ContentType"] == "application/x-mp", "the assembled object reads back, with its content type")
g = s3.get_object(Bucket=B, Key="mp.bin", PartNumber=1)
ok(g["Body"].read() == p1 and g.get("PartsCount") == 2, "get_object PartNumber=1 returns the first part (PartsCount 2)")
uid = s3.create_multipart_upload(Bucket=B, Key="small-part.bin")["UploadId"]
ea = s3.upload_part(Bucket=B, Key="small-part.bin", UploadId=uid, PartNumber=1, Body=b"x" * 1000)["ETag"]
eb = s3.upload_part(Bucket=B, Key="small-part.bin", UploadId=uid, PartNumber=2, Body=b"y" * 1000)["ETag"]
is_(error_of(lambda: s3.complete_multipart_upload(
    Bucket=B, Key="small-part.bin", UploadId=uid,
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": ea}, {"PartNumber": 2, "ETag": eb}]}))[0],
    "EntityTooSmall", "completing with a first part under 5 MiB: EntityTooSmall")
s3.abort_multipart_upload(Bucket=B, Key="small-part.bin", UploadId=uid)
is_(error_of(lambda: s3.list_parts(Bucket=B, Key="small-part.bin", UploadId=uid))[0], "NoSuchUpload",
    "abort_multipart_upload: the upload is gone (NoSuchUpload)")

# ---- server-side copies ----
r = s3.copy_object(Bucket=B, Key="copy/small.txt", CopySource={"Bucket": B, "Key": "dir/small.txt"})
is_(r["CopyObjectResult"]["ETag"], '"%s"' % md5(small), "copy_object answers the source's MD5")
g = s3.get_object(Bucket=B, Key="copy/small.txt")
ok(g["Body"].read() == small and g["Metadata"] == {"color": "blue"}, "the copy has the bytes and the metadata")
s3.copy_object(Bucket=B, Key="copy/replaced.txt", CopySource={"Bucket": B, "Key": "dir/small.txt"},
               MetadataDirective="REPLACE", Metadata={"color": "red"}, ContentType="text/x-lode")
h = s3.head_object(Bucket=B, Key="copy/replaced.txt")
ok(h["Metadata"] == {"color": "red"} and h["ContentType"] == "text/x-lode", "copy_object with REPLACE")
is_(error_of(lambda: s3.copy_object(Bucket=B, Key="copy/x", CopySource={"Bucket": B, "Key": "dir/small.txt"},
                                    CopySourceIfMatch='"0000"'))[1], 412, "copy_object with a failing CopySourceIfMatch: 412")
good, _ = attempt("managed copy", lambda: s3.copy({"Bucket": B, "Key": "big.bin"}, B, "copy/big.bin", Config=tc))
ok(good, "the managed copy of 100 MiB (UploadPartCopy) succeeds")
g = s3.get_object(Bucket=B, Key="copy/big.bin")
ok(hashlib.sha256(g["Body"].read()).digest() == hashlib.sha256(data).digest(), "the 100 MiB copy reads back byte for byte")

# ---- a wrong secret ----
bad = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=cfg,
                   aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                   aws_secret_access_key="wrong-wrong-wrong-wrong-wrong-wrong0000")
is_(error_of(lambda: bad.list_buckets()), ("SignatureDoesNotMatch", 403), "a wrong secret: SignatureDoesNotMatch, 403")
is_(error_of(lambda: bad.put_object(Bucket=B, Key="wrong.txt", Body=b"x"))[0], "SignatureDoesNotMatch",
    "a put_object with a wrong secret is refused")
is_(error_of(lambda: s3.head_object(Bucket=B, Key="wrong.txt"))[1], 404, "... and stores nothing")

# ---- deletes ----
is_(error_of(lambda: s3.delete_bucket(Bucket=B))[0], "BucketNotEmpty", "delete_bucket with objects: BucketNotEmpty")
failed = 0
for i in range(0, len(keys), 1000):
    r = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})
    failed += len(r.get("Errors", []))
    ok(len(r.get("Deleted", [])) == len(keys[i:i + 1000]), "delete_objects of 1000 keys reports each deleted")
is_(s3.list_objects_v2(Bucket=B, Prefix="list/")["KeyCount"], 0, "... and none is left")
r = s3.delete_object(Bucket=B, Key="big.bin")
is_(r["ResponseMetadata"]["HTTPStatusCode"], 204, "delete_object answers 204")
is_(error_of(lambda: s3.head_object(Bucket=B, Key="big.bin"))[1], 404, "the deleted object is gone")
rest = [o["Key"] for p in pag.paginate(Bucket=B) for o in p.get("Contents", [])]
if rest:
    s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": k} for k in rest], "Quiet": True})
r = s3.delete_bucket(Bucket=B)
is_(r["ResponseMetadata"]["HTTPStatusCode"], 204, "delete_bucket of the emptied bucket answers 204")
ok(B not in [b["Name"] for b in s3.list_buckets()["Buckets"]], "... and it is no longer listed")
