#!/bin/bash
# rclone (the Debian package, /usr/bin/rclone) against a running lode cluster, as a generic
# S3 provider with path-style addressing: buckets, small and 100 MiB objects (multipart
# forced with 16 MiB parts) byte-compared and checked with `rclone check`, ranged reads
# (`rclone cat --offset --count`), 2000 keys copied with 16 transfers and listed with both
# list versions in small pages, server-side copies (single and multipart UploadPartCopy),
# moves, deletes and a refused wrong secret. Expected bytes come from the files sent, MD5s
# from md5sum.
# shellcheck source=tests/integration/s3c_lib.sh
. "$(dirname "$0")/s3c_lib.sh"

RCLONE=/usr/bin/rclone
s3c_need "$RCLONE" rclone
s3c_start test_s3c_rclone

cat >"$tmp/rclone.conf" <<CFG
[lode]
type = s3
provider = Other
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
endpoint = $S3C_EP
region = us-east-1
force_path_style = true

[bad]
type = s3
provider = Other
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = wrong-wrong-wrong-wrong-wrong-wrong0000
endpoint = $S3C_EP
region = us-east-1
force_path_style = true
CFG
# Failures must show at once, not after rclone's retries.
rclone() { "$RCLONE" --config "$tmp/rclone.conf" --retries 1 --low-level-retries 1 "$@"; }
# Multipart above 16 MiB, in 16 MiB parts, for uploads and server-side copies alike.
MP="--s3-upload-cutoff 16M --s3-chunk-size 16M --s3-copy-cutoff 16M"
B=lode-rclone
diag "$("$RCLONE" version 2>/dev/null | head -n 1)"

# ---- buckets ----
rclone mkdir "lode:$B" 2>"$tmp/err"
ok $? "rclone mkdir creates a bucket"
s3c_diag_file "$tmp/err"
rclone mkdir "lode:$B-two" 2>/dev/null
like "$(rclone lsd lode: 2>&1)" " $B\$" "rclone lsd lists it"
rclone rmdir "lode:$B-two" 2>"$tmp/err"
ok $? "rclone rmdir removes an empty bucket"
unlike "$(rclone lsd lode: 2>&1)" " $B-two\$" "... and it is no longer listed"

# ---- small object ----
printf 'hello from rclone\n' >"$tmp/small"
rclone copyto "$tmp/small" "lode:$B/dir/small.txt" 2>"$tmp/err"
ok $? "rclone copyto uploads a small object"
rclone cat "lode:$B/dir/small.txt" >"$tmp/small.out" 2>"$tmp/err"
s3c_same "$tmp/small" "$tmp/small.out" "rclone cat returns it byte for byte"
rclone copyto "lode:$B/dir/small.txt" "$tmp/small.out2" 2>"$tmp/err"
s3c_same "$tmp/small" "$tmp/small.out2" "rclone copyto downloads it byte for byte"
like "$(rclone md5sum "lode:$B/dir/small.txt" 2>&1)" "^$(s3c_md5 "$tmp/small")  small.txt\$" \
    "rclone md5sum gives the MD5 (its ETag)"
like "$(rclone lsjson "lode:$B/dir/small.txt" 2>&1)" "\"Size\":18," "rclone lsjson gives the size"
like "$(rclone lsjson "lode:$B/dir/small.txt" 2>&1)" "\"MimeType\":\"text/plain" "... and a content type from the extension"

# ---- 100 MiB: multipart in 16 MiB parts ----
s3c_gen "$tmp/big" $((100 << 20)) 1004
mkdir -p "$tmp/bigdir"
ln "$tmp/big" "$tmp/bigdir/big.bin"
# shellcheck disable=SC2086
rclone copy $MP --transfers 4 "$tmp/bigdir" "lode:$B" 2>"$tmp/err"
ok $? "rclone copy uploads 100 MiB (multipart, 16 MiB parts)"
s3c_diag_file "$tmp/err"
rclone check --one-way "$tmp/bigdir" "lode:$B" --include big.bin >"$tmp/out" 2>&1
ok $? "rclone check finds it identical (size, MD5 kept by rclone)"
s3c_diag_file "$tmp/out"
rclone cat "lode:$B/big.bin" >"$tmp/big.out" 2>"$tmp/err"
is "$(s3c_sha "$tmp/big.out")" "$(s3c_sha "$tmp/big")" "rclone cat returns the 100 MiB byte for byte"
rm -f "$tmp/big.out"
rclone copyto --multi-thread-streams 4 --multi-thread-cutoff 16M "lode:$B/big.bin" "$tmp/big.out" 2>"$tmp/err"
is "$(s3c_sha "$tmp/big.out")" "$(s3c_sha "$tmp/big")" "a download in 4 ranged streams is byte for byte the object"
rm -f "$tmp/big.out"

# ---- ranged reads ----
rclone cat --offset $((16 << 20)) --count 1000 "lode:$B/big.bin" >"$tmp/r1" 2>"$tmp/err"
s3c_slice "$tmp/big" $((16 << 20)) 1000 "$tmp/r1.want"
s3c_same "$tmp/r1" "$tmp/r1.want" "rclone cat --offset --count at a part boundary"
rclone cat --offset $((99 << 20)) "lode:$B/big.bin" >"$tmp/r2" 2>"$tmp/err"
s3c_slice "$tmp/big" $((99 << 20)) $((1 << 20)) "$tmp/r2.want"
s3c_same "$tmp/r2" "$tmp/r2.want" "rclone cat --offset to the end"
rclone cat --offset 6 --count 4 "lode:$B/dir/small.txt" >"$tmp/r3" 2>"$tmp/err"
is "$(cat "$tmp/r3")" "from" "rclone cat of a range inside a small object"

# ---- listing over 2000 keys ----
s3c_tree "$tmp/tree"
rclone copy --transfers 16 --checkers 16 "$tmp/tree" "lode:$B/list" 2>"$tmp/err"
ok $? "rclone copy uploads 2000 small files (16 transfers)"
s3c_diag_file "$tmp/err"
n=$(rclone lsf -R --files-only --s3-list-version 2 --s3-list-chunk 300 "lode:$B/list" 2>/dev/null | wc -l)
is "$n" 2000 "ListObjectsV2 in pages of 300: 2000 keys"
n=$(rclone lsf -R --files-only --s3-list-version 1 --s3-list-chunk 700 "lode:$B/list" 2>/dev/null | wc -l)
is "$n" 2000 "ListObjects v1 in pages of 700: 2000 keys"
rclone lsf --s3-list-chunk 7 "lode:$B/list" >"$tmp/out" 2>&1
is "$(grep -c '^d[0-9][0-9]/$' "$tmp/out")" 20 "a delimited listing in pages of 7: the 20 folders"
is "$(rclone lsf "lode:$B/list/d07" 2>/dev/null | grep -c '^k[0-9][0-9][0-9]$')" 100 "the folder list/d07: 100 keys"
rclone check "$tmp/tree" "lode:$B/list" >"$tmp/out" 2>&1
ok $? "rclone check: the 2000 keys match the local files (sizes and MD5s)"
s3c_diag_file "$tmp/out" 5
like "$(rclone size --json "lode:$B/list" 2>&1)" "\"count\":2000," "rclone size counts 2000 objects"
rclone copy "lode:$B/list/d05" "$tmp/back" 2>"$tmp/err"
diff -r "$tmp/tree/d05" "$tmp/back" >/dev/null 2>&1
ok $? "rclone copy downloads a folder identical to the source"

# ---- server-side copies and moves ----
rclone copyto "lode:$B/dir/small.txt" "lode:$B/copy/small.txt" 2>"$tmp/err"
ok $? "rclone copyto between keys (CopyObject)"
rclone cat "lode:$B/copy/small.txt" >"$tmp/copy.out" 2>"$tmp/err"
s3c_same "$tmp/small" "$tmp/copy.out" "the copy reads back byte for byte"
# shellcheck disable=SC2086
rclone copyto $MP "lode:$B/big.bin" "lode:$B/copy/big.bin" 2>"$tmp/err"
ok $? "rclone copyto of 100 MiB between keys (multipart copy, UploadPartCopy)"
s3c_diag_file "$tmp/err"
rclone cat "lode:$B/copy/big.bin" >"$tmp/big.out" 2>"$tmp/err"
is "$(s3c_sha "$tmp/big.out")" "$(s3c_sha "$tmp/big")" "the 100 MiB copy reads back byte for byte"
rm -f "$tmp/big.out"
rclone moveto "lode:$B/copy/small.txt" "lode:$B/moved/small.txt" 2>"$tmp/err"
ok $? "rclone moveto (server-side copy and delete)"
is "$(rclone lsf "lode:$B/copy" 2>/dev/null | grep -c small.txt)" 0 "... the source is gone"
rclone cat "lode:$B/moved/small.txt" >"$tmp/moved.out" 2>"$tmp/err"
s3c_same "$tmp/small" "$tmp/moved.out" "... and the target has the bytes"

# ---- a wrong secret ----
rclone lsd bad: >/dev/null 2>"$tmp/err"
like "$(cat "$tmp/err")" "SignatureDoesNotMatch" "a wrong secret: SignatureDoesNotMatch"
like "$(cat "$tmp/err")" "403" "... with status 403"
rclone copyto "$tmp/small" "bad:$B/wrong.txt" >/dev/null 2>&1
is "$(rclone lsf "lode:$B" 2>/dev/null | grep -c wrong.txt)" 0 "... and the refused upload stored nothing"

# ---- deletes ----
rclone delete "lode:$B/list" 2>"$tmp/err"
ok $? "rclone delete removes the 2000 keys"
is "$(rclone lsf -R "lode:$B/list" 2>/dev/null | wc -l)" 0 "... and none is left"
rclone deletefile "lode:$B/big.bin" 2>"$tmp/err"
ok $? "rclone deletefile removes one object"
is "$(rclone lsf "lode:$B" 2>/dev/null | grep -c '^big.bin$')" 0 "... which is then no longer listed"
rclone purge "lode:$B" 2>"$tmp/err"
ok $? "rclone purge empties and removes the bucket"
s3c_diag_file "$tmp/err"
unlike "$(rclone lsd lode: 2>&1)" " $B\$" "... and it is no longer listed"

s3c_finish
