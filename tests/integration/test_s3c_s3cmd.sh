#!/bin/bash
# s3cmd (the Debian package, /usr/bin/s3cmd) against a running lode cluster, SigV4 and
# path-style: buckets, small and 100 MiB objects (s3cmd's multipart, 15 MiB parts)
# byte-compared, a ranged read (a resumed download asks for the rest with Range), 2000 keys
# uploaded by `s3cmd sync` and listed by folder and recursively, multipart uploads with
# chosen part sizes, server-side copies and moves, metadata changes, batch deletes and a
# refused wrong secret. Expected ETags come from md5sum and from the multipart rule computed
# by Python's hashlib; expected bytes from the files sent.
# shellcheck source=tests/integration/s3c_lib.sh
. "$(dirname "$0")/s3c_lib.sh"

S3CMD=/usr/bin/s3cmd
s3c_need "$S3CMD" s3cmd
s3c_start test_s3c_s3cmd

mkcfg() {
    cat >"$1" <<CFG
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $2
host_base = $S3C_HOSTPORT
host_bucket = $S3C_HOSTPORT
use_https = False
signature_v2 = False
bucket_location = us-east-1
check_ssl_certificate = False
progress_meter = False
CFG
}
mkcfg "$tmp/s3cfg" "$AWS_SECRET_ACCESS_KEY"
mkcfg "$tmp/s3cfg.bad" "wrong-wrong-wrong-wrong-wrong-wrong0000"
s3cmd() { "$S3CMD" -c "$tmp/s3cfg" "$@"; }
# etag URL: the ETag the gateway answers for URL, from s3cmd's debug trace of a HEAD.
etag() { s3cmd --debug info "$1" 2>&1 | sed -n "s/.*'etag': '\"\([^\"]*\)\"'.*/\1/p" | head -n 1; }
B=lode-s3cmd
# s3cmd reports a 404 on the HEAD it sends before a GET as a missing source.
NOTFOUND="404|does not exist"
diag "$("$S3CMD" --version)"

# ---- buckets ----
s3cmd mb "s3://$B" >"$tmp/out" 2>&1
ok $? "s3cmd mb creates a bucket"
s3cmd mb "s3://$B-two" >/dev/null 2>&1
like "$(s3cmd ls 2>&1)" "s3://$B\$" "s3cmd ls lists it"
like "$(s3cmd info "s3://$B" 2>&1)" "Location: +(us-east-1|any)" "s3cmd info gives the bucket's location"
s3cmd rb "s3://$B-two" >/dev/null 2>&1
ok $? "s3cmd rb removes an empty bucket"
unlike "$(s3cmd ls 2>&1)" "s3://$B-two\$" "... and it is no longer listed"
s3cmd mb "s3://$B" >/dev/null 2>"$tmp/err"
like "$(cat "$tmp/err")" "BucketAlreadyOwnedByYou|409" "creating it again is refused (BucketAlreadyOwnedByYou)"

# ---- small object ----
printf 'hello from s3cmd\n' >"$tmp/small"
s3cmd put -q --mime-type=text/plain --add-header=x-amz-meta-color:blue "$tmp/small" "s3://$B/dir/small.txt" 2>"$tmp/err"
ok $? "s3cmd put uploads a small object"
s3cmd get -q "s3://$B/dir/small.txt" "$tmp/small.out" 2>"$tmp/err"
s3c_same "$tmp/small" "$tmp/small.out" "s3cmd get downloads it byte for byte"
s3cmd info "s3://$B/dir/small.txt" >"$tmp/info" 2>&1
like "$(cat "$tmp/info")" "File size: +17\$" "s3cmd info gives the size"
like "$(cat "$tmp/info")" "MIME type: +text/plain" "... the content type"
like "$(cat "$tmp/info")" "x-amz-meta-color: +blue" "... and the user metadata"
is "$(etag "s3://$B/dir/small.txt")" "$(s3c_md5 "$tmp/small")" "its ETag is the MD5 of the bytes"
s3cmd get -q "s3://$B/dir/small.txt" - >"$tmp/stdout.out" 2>"$tmp/err"
s3c_same "$tmp/small" "$tmp/stdout.out" "s3cmd get to stdout"
s3cmd get -q "s3://$B/nothing-here" "$tmp/none" 2>"$tmp/err"
like "$(cat "$tmp/err")" "$NOTFOUND" "s3cmd get of a missing key: 404"

# ---- 100 MiB: s3cmd's multipart upload (15 MiB parts) ----
s3c_gen "$tmp/big" $((100 << 20)) 1003
s3cmd put -q "$tmp/big" "s3://$B/big.bin" 2>"$tmp/err"
ok $? "s3cmd put uploads 100 MiB (multipart)"
s3c_diag_file "$tmp/err"
is "$(etag "s3://$B/big.bin")" "$(s3c_mp_etag $((15 << 20)) "$tmp/big")" "its ETag is the multipart ETag of 7 parts of 15 MiB"
s3cmd get -q "s3://$B/big.bin" "$tmp/big.out" 2>"$tmp/err"
ok $? "s3cmd get downloads 100 MiB"
is "$(s3c_sha "$tmp/big.out")" "$(s3c_sha "$tmp/big")" "... byte for byte (SHA-256)"
rm -f "$tmp/big.out"

# ---- a ranged read: a resumed download asks for the missing tail with Range ----
s3c_slice "$tmp/big" 0 $((37 << 20)) "$tmp/partial"
s3cmd --debug get --continue "s3://$B/big.bin" "$tmp/partial" >"$tmp/out" 2>&1
like "$(cat "$tmp/out")" "Requesting Range: $((37 << 20)) \.\. end" "s3cmd get --continue asks for a range"
is "$(s3c_sha "$tmp/partial")" "$(s3c_sha "$tmp/big")" "... and the resumed file is byte for byte the object"
rm -f "$tmp/partial"

# ---- multipart with a chosen part size ----
s3c_slice "$tmp/big" 0 12000000 "$tmp/m12"
s3cmd put -q --multipart-chunk-size-mb=5 "$tmp/m12" "s3://$B/m12.bin" 2>"$tmp/err"
ok $? "s3cmd put of 12 MB in 5 MiB parts"
is "$(etag "s3://$B/m12.bin")" "$(s3c_mp_etag $((5 << 20)) "$tmp/m12")" "its ETag is the multipart ETag of 3 parts"
s3cmd get -q "s3://$B/m12.bin" "$tmp/m12.out" 2>"$tmp/err"
s3c_same "$tmp/m12" "$tmp/m12.out" "... and it reads back byte for byte"
s3cmd put -q --disable-multipart "$tmp/m12" "s3://$B/m12-single.bin" 2>"$tmp/err"
is "$(etag "s3://$B/m12-single.bin")" "$(s3c_md5 "$tmp/m12")" "s3cmd put --disable-multipart: the MD5 ETag"
s3cmd multipart "s3://$B" >"$tmp/out" 2>&1
ok $? "s3cmd multipart lists the bucket's uploads"

# ---- listing over 2000 keys ----
s3c_tree "$tmp/tree"
s3cmd sync -q --no-preserve "$tmp/tree/" "s3://$B/list/" 2>"$tmp/err"
ok $? "s3cmd sync uploads 2000 small files"
s3c_diag_file "$tmp/err"
n=$(s3cmd ls -r "s3://$B/list/" 2>/dev/null | grep -c "s3://$B/list/d[0-9][0-9]/k[0-9][0-9][0-9]\$")
is "$n" 2000 "s3cmd ls -r lists the 2000 keys (paged)"
s3cmd ls "s3://$B/list/" >"$tmp/out" 2>&1
is "$(grep -Ec "DIR +s3://$B/list/d[0-9][0-9]/\$" "$tmp/out")" 20 "s3cmd ls of the top shows 20 folders (delimiter)"
n=$(s3cmd ls "s3://$B/list/d07/" 2>/dev/null | grep -c "s3://$B/list/d07/k")
is "$n" 100 "s3cmd ls of a folder (prefix) shows its 100 keys"
n=$(s3cmd ls "s3://$B/list/d1" 2>/dev/null | grep -Ec "DIR +s3://$B/list/d1[0-9]/\$")
is "$n" 10 "s3cmd ls of a partial prefix shows the 10 matching folders"
s3cmd sync -q "s3://$B/list/d05/" "$tmp/back/" 2>"$tmp/err"
diff -r "$tmp/tree/d05" "$tmp/back" >/dev/null 2>&1
ok $? "s3cmd sync downloads a folder identical to the source"
s3cmd sync --dry-run "$tmp/tree/" "s3://$B/list/" >"$tmp/out" 2>&1
unlike "$(cat "$tmp/out")" "^upload:" "a second s3cmd sync finds nothing to upload (sizes and MD5s match)"

# ---- server-side copies, moves, metadata changes ----
s3cmd cp -q "s3://$B/dir/small.txt" "s3://$B/copy/small.txt" 2>"$tmp/err"
ok $? "s3cmd cp between keys (CopyObject)"
s3cmd get -q "s3://$B/copy/small.txt" "$tmp/copy.out" 2>"$tmp/err"
s3c_same "$tmp/small" "$tmp/copy.out" "the copy reads back byte for byte"
s3cmd cp -q "s3://$B/big.bin" "s3://$B/copy/big.bin" 2>"$tmp/err"
ok $? "s3cmd cp of the 100 MiB object"
s3c_diag_file "$tmp/err"
s3cmd get -q "s3://$B/copy/big.bin" "$tmp/big.out" 2>"$tmp/err"
is "$(s3c_sha "$tmp/big.out")" "$(s3c_sha "$tmp/big")" "the 100 MiB copy reads back byte for byte"
rm -f "$tmp/big.out"
s3cmd mv -q "s3://$B/copy/small.txt" "s3://$B/moved/small.txt" 2>"$tmp/err"
ok $? "s3cmd mv (copy, then delete)"
s3cmd get -q "s3://$B/copy/small.txt" "$tmp/none" 2>"$tmp/err"
like "$(cat "$tmp/err")" "$NOTFOUND" "... the source is gone"
s3cmd get -q "s3://$B/moved/small.txt" "$tmp/moved.out" 2>"$tmp/err"
s3c_same "$tmp/small" "$tmp/moved.out" "... and the target has the bytes"
s3cmd modify -q --add-header=x-amz-meta-color:red "s3://$B/moved/small.txt" 2>"$tmp/err"
ok $? "s3cmd modify (a copy onto itself with REPLACE)"
like "$(s3cmd info "s3://$B/moved/small.txt" 2>&1)" "x-amz-meta-color: +red" "... changes the metadata"

# ---- a wrong secret ----
"$S3CMD" -c "$tmp/s3cfg.bad" ls >/dev/null 2>"$tmp/err"
like "$(cat "$tmp/err")" "403" "a wrong secret is refused with 403"
like "$(cat "$tmp/err")" "SignatureDoesNotMatch" "... as SignatureDoesNotMatch"
"$S3CMD" -c "$tmp/s3cfg.bad" put -q "$tmp/small" "s3://$B/wrong.txt" >/dev/null 2>&1
s3cmd get -q "s3://$B/wrong.txt" "$tmp/none" 2>"$tmp/err"
like "$(cat "$tmp/err")" "$NOTFOUND" "... and the refused upload stored nothing"

# ---- deletes ----
s3cmd rb "s3://$B" >/dev/null 2>"$tmp/err"
like "$(cat "$tmp/err")" "BucketNotEmpty" "s3cmd rb of a bucket with objects: BucketNotEmpty"
s3cmd del -q --recursive --force "s3://$B/list/" 2>"$tmp/err"
ok $? "s3cmd del --recursive deletes the 2000 keys (DeleteObjects)"
n=$(s3cmd ls -r "s3://$B/list/" 2>/dev/null | wc -l)
is "$n" 0 "... and none is left"
s3cmd del -q "s3://$B/big.bin" 2>"$tmp/err"
ok $? "s3cmd del deletes one object"
s3cmd get -q "s3://$B/big.bin" "$tmp/none" 2>"$tmp/err"
like "$(cat "$tmp/err")" "$NOTFOUND" "... which then answers 404"
s3cmd rb -q --recursive --force "s3://$B" >/dev/null 2>"$tmp/err"
ok $? "s3cmd rb --recursive empties and removes the bucket"
s3c_diag_file "$tmp/err"
unlike "$(s3cmd ls 2>&1)" "s3://$B\$" "... and it is no longer listed"

s3c_finish
