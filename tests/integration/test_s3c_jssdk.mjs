// The JavaScript SDK v3 suite's client half, run by test_s3c_jssdk.sh with the node from
// the npm cache. Reports to the shell (s3c_bridge in s3c_lib.sh) one line per test point:
// "R\t0|1\tname", "D\ttext" for diagnostics.
// Arguments: NPMDIR ENDPOINT BIGFILE WORKDIR; credentials come from the environment.
// The SDK runs with its defaults, so that streaming bodies go out aws-chunked with checksum
// trailers (STREAMING-UNSIGNED-PAYLOAD-TRAILER). Expected values are computed here from the
// bytes sent: MD5 and SHA-256 with node:crypto, CRC32 with node:zlib, CRC64NVME with the
// bitwise definition below (checked against the catalogue's check value first).
import { createRequire } from "node:module";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import zlib from "node:zlib";

const [npmdir, endpoint, bigfile, work] = process.argv.slice(2);
const require = createRequire(path.join(npmdir, "node_modules", "x.js"));
const S3 = require("@aws-sdk/client-s3");
const { Upload } = require("@aws-sdk/lib-storage");
const sdkVersion = require("@aws-sdk/client-s3/package.json").version;
const MIB = 1 << 20;

const say = (...f) => process.stdout.write(f.map((x) => String(x).replace(/\n/g, " ")).join("\t") + "\n");
const ok = (cond, name) => { say("R", cond ? 0 : 1, name); return !!cond; };
const diag = (t) => say("D", t);
const is = (got, want, name) => {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (!ok(g === w, name)) { diag("  got:  " + g); diag("  want: " + w); }
};
const md5 = (b) => crypto.createHash("md5").update(b).digest("hex");
const sha256 = (b) => crypto.createHash("sha256").update(b).digest("hex");
const crc32b64 = (b) => { const x = Buffer.alloc(4); x.writeUInt32BE(zlib.crc32(b) >>> 0); return x.toString("base64"); };
const mpEtag = (buf, size) => {
  const ds = [];
  for (let i = 0; i < buf.length; i += size) ds.push(crypto.createHash("md5").update(buf.subarray(i, i + size)).digest());
  return `"${md5(Buffer.concat(ds))}-${ds.length}"`;
};

// CRC-64/NVME: reflected polynomial 0x9a6c9329ac4bc9b5, initial value and final xor all ones.
const CRC64_TABLE = (() => {
  const poly = 0x9a6c9329ac4bc9b5n, t = new Array(256);
  for (let i = 0; i < 256; i++) {
    let c = BigInt(i);
    for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ poly : c >> 1n;
    t[i] = c;
  }
  return t;
})();
const crc64nvme = (b) => {
  let c = 0xffffffffffffffffn;
  for (const byte of b) c = CRC64_TABLE[Number((c ^ BigInt(byte)) & 0xffn)] ^ (c >> 8n);
  return c ^ 0xffffffffffffffffn;
};
const crc64b64 = (b) => { const x = Buffer.alloc(8); x.writeBigUInt64BE(crc64nvme(b)); return x.toString("base64"); };

const errorOf = async (p) => {
  try { await p; } catch (e) { return [e.name || e.Code, e.$metadata && e.$metadata.httpStatusCode]; }
  return [null, null];
};
const readAll = async (body) => Buffer.from(await body.transformToByteArray());

const creds = { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY };
const mk = (c) => new S3.S3Client({ endpoint, region: "us-east-1", forcePathStyle: true, credentials: c, maxAttempts: 2 });
const s3 = mk(creds);
// The headers of the last request sent, to show which body encoding the SDK chose.
let lastHeaders = {};
s3.middlewareStack.add((next) => async (args) => { lastHeaders = { ...args.request.headers }; return next(args); },
  { step: "finalizeRequest", priority: "low", name: "s3cRecordHeaders" });
const send = (name, input) => s3.send(new S3[name + "Command"](input));

const B = "lode-jssdk";
diag(`@aws-sdk/client-s3 ${sdkVersion}, node ${process.version}`);

async function main() {
  // ---- the independent checksum references check themselves ----
  is(crc64nvme(Buffer.from("123456789")).toString(16), "ae8b14860a799888", "the test's CRC-64/NVME gives the catalogue check value");

  // ---- buckets ----
  await send("CreateBucket", { Bucket: B });
  await send("CreateBucket", { Bucket: B + "-two" });
  const names = (await send("ListBuckets", {})).Buckets.map((b) => b.Name);
  ok(names.includes(B) && names.includes(B + "-two"), "CreateBucket and ListBuckets");
  is((await send("HeadBucket", { Bucket: B })).$metadata.httpStatusCode, 200, "HeadBucket answers 200");
  const loc = (await send("GetBucketLocation", { Bucket: B })).LocationConstraint;
  ok(loc === undefined || loc === "" || loc === "us-east-1", "GetBucketLocation answers us-east-1");
  await send("DeleteBucket", { Bucket: B + "-two" });
  is((await errorOf(send("HeadBucket", { Bucket: B + "-two" })))[1], 404, "DeleteBucket: HeadBucket then answers 404");

  // ---- small objects and the SDK's default checksums ----
  const small = Buffer.from("hello from the JavaScript SDK\n");
  let r = await send("PutObject", { Bucket: B, Key: "dir/small.txt", Body: small, ContentType: "text/plain", Metadata: { color: "blue" } });
  is(r.ETag, `"${md5(small)}"`, "PutObject answers the MD5 ETag");
  is(r.ChecksumCRC32, crc32b64(small), "PutObject of a buffer: the default CRC32 (header) is answered");
  let g = await send("GetObject", { Bucket: B, Key: "dir/small.txt" });
  ok((await readAll(g.Body)).equals(small) && g.ContentType === "text/plain" && g.Metadata.color === "blue",
    "GetObject returns the bytes, content type and metadata");
  is((await send("HeadObject", { Bucket: B, Key: "dir/small.txt" })).ContentLength, small.length, "HeadObject gives the length");
  is(await errorOf(send("GetObject", { Bucket: B, Key: "nothing" })), ["NoSuchKey", 404], "GetObject of a missing key: NoSuchKey");

  // A stream body with no checksum asked for: the SDK sends aws-chunked with a CRC32 trailer.
  const streamed = crypto.randomBytes(300000);
  r = await send("PutObject", { Bucket: B, Key: "sum/default-stream.bin", Body: Readable.from([streamed.subarray(0, 70000), streamed.subarray(70000)]), ContentLength: streamed.length });
  ok(lastHeaders["x-amz-content-sha256"] === "STREAMING-UNSIGNED-PAYLOAD-TRAILER" && lastHeaders["content-encoding"] === "aws-chunked" &&
     lastHeaders["x-amz-trailer"] === "x-amz-checksum-crc32", "a stream body goes out aws-chunked with a CRC32 trailer by default");
  is(r.ChecksumCRC32, crc32b64(streamed), "... and the gateway answers the CRC32 zlib computes");
  g = await send("GetObject", { Bucket: B, Key: "sum/default-stream.bin", ChecksumMode: "ENABLED" });
  const back = await readAll(g.Body); // the SDK validates the returned checksum as it reads
  ok(back.equals(streamed) && g.ChecksumCRC32 === crc32b64(streamed), "GetObject in checksum mode: bytes and CRC32 (validated by the SDK)");

  // CRC64NVME in a trailer.
  const c64 = crypto.randomBytes(200000);
  r = await send("PutObject", { Bucket: B, Key: "sum/crc64.bin", Body: Readable.from([c64.subarray(0, 65536), c64.subarray(65536)]), ContentLength: c64.length, ChecksumAlgorithm: "CRC64NVME" });
  is(lastHeaders["x-amz-trailer"], "x-amz-checksum-crc64nvme", "a CRC64NVME upload of a stream goes out with a trailer");
  is(r.ChecksumCRC64NVME, crc64b64(c64), "... and the gateway answers the CRC-64/NVME of the bytes");
  g = await send("GetObject", { Bucket: B, Key: "sum/crc64.bin", ChecksumMode: "ENABLED" });
  ok((await readAll(g.Body)).equals(c64) && g.ChecksumCRC64NVME === crc64b64(c64), "GetObject in checksum mode returns the CRC64NVME");
  r = await send("PutObject", { Bucket: B, Key: "sum/sha256.bin", Body: Readable.from([c64]), ContentLength: c64.length, ChecksumAlgorithm: "SHA256" });
  is(r.ChecksumSHA256, crypto.createHash("sha256").update(c64).digest("base64"), "a SHA-256 trailer is checked and answered");
  r = await send("PutObject", { Bucket: B, Key: "sum/crc32c.bin", Body: c64, ChecksumAlgorithm: "CRC32C" });
  ok(typeof r.ChecksumCRC32C === "string" && r.ChecksumCRC32C.length === 8, "a CRC32C header is accepted and answered");
  is(await errorOf(send("PutObject", { Bucket: B, Key: "sum/bad.bin", Body: small, ChecksumCRC32: "AAAAAA==" })), ["BadDigest", 400],
    "a wrong CRC32: BadDigest (400)");
  is((await errorOf(send("HeadObject", { Bucket: B, Key: "sum/bad.bin" })))[1], 404, "... and nothing is stored");
  is((await errorOf(send("PutObject", { Bucket: B, Key: "dir/small.txt", Body: small, IfNoneMatch: "*" })))[1], 412,
    "PutObject with If-None-Match: * over an existing key: 412");

  // ---- 100 MiB through lib-storage (multipart, 8 MiB parts, 4 at a time, from a file stream) ----
  const data = fs.readFileSync(bigfile);
  const up = new Upload({ client: s3, params: { Bucket: B, Key: "big.bin", Body: fs.createReadStream(bigfile) }, partSize: 8 * MIB, queueSize: 4 });
  r = await up.done();
  ok(r.$metadata.httpStatusCode === 200, "lib-storage Upload of 100 MiB (multipart)");
  is((await send("HeadObject", { Bucket: B, Key: "big.bin" })).ETag, mpEtag(data, 8 * MIB), "its ETag is the multipart ETag of 13 parts");
  g = await send("GetObject", { Bucket: B, Key: "big.bin" });
  const h = crypto.createHash("sha256");
  for await (const chunk of g.Body) h.update(chunk);
  is(h.digest("hex"), sha256(data), "GetObject streams the 100 MiB back byte for byte");

  // ---- ranged reads ----
  for (const [lo, hi] of [[0, 0], [8 * MIB - 5, 8 * MIB + 5], [50 * MIB + 3, 77 * MIB]]) {
    g = await send("GetObject", { Bucket: B, Key: "big.bin", Range: `bytes=${lo}-${hi}` });
    ok((await readAll(g.Body)).equals(data.subarray(lo, hi + 1)) && g.ContentRange === `bytes ${lo}-${hi}/${data.length}`,
      `GetObject Range bytes=${lo}-${hi}`);
  }
  g = await send("GetObject", { Bucket: B, Key: "big.bin", Range: "bytes=-777" });
  ok((await readAll(g.Body)).equals(data.subarray(data.length - 777)), "GetObject Range bytes=-777 (a suffix)");

  // ---- listing over 2000 keys, 16 requests in flight ----
  const keys = [];
  for (let d = 0; d < 20; d++) for (let k = 0; k < 100; k++) keys.push(`list/d${String(d).padStart(2, "0")}/k${String(k).padStart(3, "0")}`);
  let next = 0, failures = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < keys.length) {
      const k = keys[next++];
      try { await send("PutObject", { Bucket: B, Key: k, Body: k }); } catch (e) { if (failures++ < 3) diag(`  ${k}: ${e}`); }
    }
  }));
  is(failures, 0, "2000 PutObject calls, 16 in flight");
  let got = [];
  for await (const p of S3.paginateListObjectsV2({ client: s3, pageSize: 400 }, { Bucket: B, Prefix: "list/" })) got.push(...(p.Contents || []).map((o) => o.Key));
  is(got.length === keys.length && got.every((k, i) => k === keys[i]), true, "ListObjectsV2 in pages of 400 returns the 2000 keys in order");
  const cps = [];
  for await (const p of S3.paginateListObjectsV2({ client: s3, pageSize: 6 }, { Bucket: B, Prefix: "list/", Delimiter: "/" })) cps.push(...(p.CommonPrefixes || []).map((c) => c.Prefix));
  is(cps, keys.filter((k, i) => i % 100 === 0).map((k) => k.slice(0, 9)), "ListObjectsV2 with a delimiter in pages of 6: the 20 common prefixes");
  got = [];
  let marker;
  for (let pages = 0; pages < 20; pages++) {
    const p = await send("ListObjects", { Bucket: B, Prefix: "list/", MaxKeys: 650, Marker: marker });
    got.push(...(p.Contents || []).map((o) => o.Key));
    if (!p.IsTruncated) break;
    marker = p.NextMarker || got[got.length - 1];
  }
  is(got.length === keys.length && got.every((k, i) => k === keys[i]), true, "ListObjects v1 with markers in pages of 650 returns the 2000 keys");
  r = await send("ListObjectsV2", { Bucket: B, Prefix: "list/d09/" });
  is(r.KeyCount, 100, "ListObjectsV2 with the prefix list/d09/: 100 keys");
  r = await send("ListObjectsV2", { Bucket: B, Prefix: "list/d02/k0", StartAfter: "list/d02/k097" });
  is((r.Contents || []).map((o) => o.Key), ["list/d02/k098", "list/d02/k099"], "StartAfter");

  // ---- explicit multipart, with a copied part ----
  const mp = await send("CreateMultipartUpload", { Bucket: B, Key: "mp.bin" });
  const p1 = data.subarray(0, 5 * MIB), p2 = data.subarray(5 * MIB, 6 * MIB + 123);
  const e1 = (await send("UploadPart", { Bucket: B, Key: "mp.bin", UploadId: mp.UploadId, PartNumber: 1, Body: p1 })).ETag;
  const e2 = (await send("UploadPartCopy", { Bucket: B, Key: "mp.bin", UploadId: mp.UploadId, PartNumber: 2, CopySource: `${B}/big.bin`,
    CopySourceRange: `bytes=${5 * MIB}-${6 * MIB + 122}` })).CopyPartResult.ETag;
  is([e1, e2], [`"${md5(p1)}"`, `"${md5(p2)}"`], "UploadPart and UploadPartCopy answer the parts' MD5s");
  r = await send("ListParts", { Bucket: B, Key: "mp.bin", UploadId: mp.UploadId });
  is((r.Parts || []).map((p) => [p.PartNumber, p.Size]), [[1, 5 * MIB], [2, MIB + 123]], "ListParts shows both parts");
  r = await send("ListMultipartUploads", { Bucket: B });
  ok((r.Uploads || []).some((u) => u.UploadId === mp.UploadId), "ListMultipartUploads shows the upload");
  r = await send("CompleteMultipartUpload", { Bucket: B, Key: "mp.bin", UploadId: mp.UploadId,
    MultipartUpload: { Parts: [{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }] } });
  is(r.ETag, mpEtag(Buffer.concat([p1, p2]), 5 * MIB), "CompleteMultipartUpload answers the multipart ETag");
  g = await send("GetObject", { Bucket: B, Key: "mp.bin" });
  ok((await readAll(g.Body)).equals(Buffer.concat([p1, p2])), "the assembled object reads back byte for byte");
  const ab = await send("CreateMultipartUpload", { Bucket: B, Key: "aborted.bin" });
  await send("AbortMultipartUpload", { Bucket: B, Key: "aborted.bin", UploadId: ab.UploadId });
  is((await errorOf(send("ListParts", { Bucket: B, Key: "aborted.bin", UploadId: ab.UploadId })))[0], "NoSuchUpload",
    "AbortMultipartUpload: the upload is gone");

  // ---- server-side copies ----
  r = await send("CopyObject", { Bucket: B, Key: "copy/small.txt", CopySource: `${B}/dir/small.txt` });
  is(r.CopyObjectResult.ETag, `"${md5(small)}"`, "CopyObject answers the source's MD5");
  g = await send("GetObject", { Bucket: B, Key: "copy/small.txt" });
  ok((await readAll(g.Body)).equals(small) && g.Metadata.color === "blue", "the copy has the bytes and the metadata");
  await send("CopyObject", { Bucket: B, Key: "copy/replaced.txt", CopySource: `${B}/dir/small.txt`, MetadataDirective: "REPLACE",
    Metadata: { color: "red" }, ContentType: "text/x-lode" });
  const hd = await send("HeadObject", { Bucket: B, Key: "copy/replaced.txt" });
  ok(hd.Metadata.color === "red" && hd.ContentType === "text/x-lode", "CopyObject with REPLACE");
  r = await send("CopyObject", { Bucket: B, Key: "copy/big.bin", CopySource: `${B}/big.bin` });
  // A single CopyObject makes a single-part object: its ETag is the MD5 of all the bytes.
  is(r.CopyObjectResult.ETag, `"${md5(data)}"`, "CopyObject of the 100 MiB multipart object answers the MD5 of its bytes");
  g = await send("GetObject", { Bucket: B, Key: "copy/big.bin", Range: `bytes=${33 * MIB}-${34 * MIB}` });
  ok((await readAll(g.Body)).equals(data.subarray(33 * MIB, 34 * MIB + 1)), "the 100 MiB copy holds the same bytes");

  // ---- a wrong secret ----
  const bad = mk({ accessKeyId: creds.accessKeyId, secretAccessKey: "wrong-wrong-wrong-wrong-wrong-wrong0000" });
  is(await errorOf(bad.send(new S3.ListBucketsCommand({}))), ["SignatureDoesNotMatch", 403], "a wrong secret: SignatureDoesNotMatch, 403");
  is((await errorOf(bad.send(new S3.PutObjectCommand({ Bucket: B, Key: "wrong.bin", Body: Readable.from([small]), ContentLength: small.length }))))[1], 403,
    "a streamed PutObject with a wrong secret: 403");
  is((await errorOf(send("HeadObject", { Bucket: B, Key: "wrong.bin" })))[1], 404, "... and nothing is stored");

  // ---- deletes ----
  is((await errorOf(send("DeleteBucket", { Bucket: B })))[0], "BucketNotEmpty", "DeleteBucket with objects: BucketNotEmpty");
  let deleted = 0;
  for (let i = 0; i < keys.length; i += 1000) {
    r = await send("DeleteObjects", { Bucket: B, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })) } });
    deleted += (r.Deleted || []).length;
  }
  is(deleted, 2000, "DeleteObjects (2 x 1000) reports each key deleted");
  is((await send("ListObjectsV2", { Bucket: B, Prefix: "list/" })).KeyCount, 0, "... and none is left");
  is((await send("DeleteObject", { Bucket: B, Key: "big.bin" })).$metadata.httpStatusCode, 204, "DeleteObject answers 204");
  is((await errorOf(send("HeadObject", { Bucket: B, Key: "big.bin" })))[1], 404, "the deleted object is gone");
  for (;;) {
    r = await send("ListObjectsV2", { Bucket: B });
    if (!r.Contents || r.Contents.length === 0) break;
    await send("DeleteObjects", { Bucket: B, Delete: { Objects: r.Contents.map((o) => ({ Key: o.Key })), Quiet: true } });
  }
  is((await send("DeleteBucket", { Bucket: B })).$metadata.httpStatusCode, 204, "DeleteBucket of the emptied bucket answers 204");
}

main().then(() => process.exit(0), (e) => {
  diag(`stopped by an exception: ${e && e.stack ? e.stack.split("\n").slice(0, 4).join(" | ") : e}`);
  if (e && e.$metadata) diag(`  status ${e.$metadata.httpStatusCode}, code ${e.name}`);
  process.exit(1);
});
