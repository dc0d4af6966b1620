#!/bin/bash
# awscli (the Debian package, /usr/bin/aws) against a running lode cluster: buckets, small
# and 100 MiB objects (the CLI's own multipart above 8 MiB) byte-compared, ranged reads,
# listings over 2000 keys (uploaded by `aws s3 sync`) with prefixes, delimiters and paging,
# an explicit multipart upload through s3api, server-side copies (single and multipart),
# batch deletes and a refused wrong secret. Expected ETags come from md5sum and from the
# multipart rule computed by Python's hashlib; expected bytes from the files sent.
# shellcheck source=tests/integration/s3c_lib.sh
. "$(dirname "$0")/s3c_lib.sh"

AWS=/usr/bin/aws
s3c_need "$AWS" awscli
s3c_start test_s3c_awscli

aws() { "$AWS" --endpoint-url "$S3C_EP" --no-cli-pager --output json "$@"; }
# awsq QUERY ARGS...: one value out of a JSON answer (text output of a JMESPath query).
awsq() { q=$1; shift; "$AWS" --endpoint-url "$S3C_EP" --no-cli-pager --output text --query "$q" "$@"; }
# awsn QUERY ARGS...: a number out of an answer the CLI merged over all its pages (a text
# query would be applied page by page).
awsn() { q=$1; shift; "$AWS" --endpoint-url "$S3C_EP" --no-cli-pager --output json --query "$q" "$@"; }
cp_() { aws s3 cp --only-show-errors "$@" 2>"$tmp/err"; }
B=lode-awscli

# ---- buckets ----
aws s3 mb "s3://$B" >"$tmp/out" 2>&1
ok $? "s3 mb creates a bucket"
aws s3 mb "s3://$B-two" >/dev/null 2>&1
like "$(aws s3 ls 2>&1)" " $B\$" "s3 ls lists it"
aws s3api head-bucket --bucket "$B" >/dev/null 2>&1
ok $? "s3api head-bucket answers for it"
loc=$(awsq LocationConstraint s3api get-bucket-location --bucket "$B" 2>&1)
like "$loc" "^(None|us-east-1|)$" "s3api get-bucket-location answers (us-east-1)"
aws s3 rb "s3://$B-two" >/dev/null 2>&1
ok $? "s3 rb removes an empty bucket"
unlike "$(aws s3 ls 2>&1)" " $B-two\$" "... and it is no longer listed"
aws s3api head-bucket --bucket "$B-two" >/dev/null 2>"$tmp/err"
like "$(cat "$tmp/err")" "\(404\)" "head-bucket of the removed bucket: 404"

# ---- small object ----
printf 'hello from awscli\n' >"$tmp/small"
cp_ "$tmp/small" "s3://$B/dir/small.txt" --content-type text/plain --metadata color=blue
ok $? "s3 cp uploads a small object"
cp_ "s3://$B/dir/small.txt" "$tmp/small.out"
s3c_same "$tmp/small" "$tmp/small.out" "s3 cp downloads it byte for byte"
aws s3api head-object --bucket "$B" --key dir/small.txt >"$tmp/head" 2>&1
head=$(cat "$tmp/head")
like "$head" "\"ContentLength\": 18," "head-object gives the length"
like "$head" "\"ETag\": \"\\\\\"$(s3c_md5 "$tmp/small")\\\\\"\"" "head-object gives the MD5 ETag"
like "$head" "\"ContentType\": \"text/plain\"" "the content type is kept"
like "$head" "\"color\": \"blue\"" "user metadata is kept"
aws s3 cp --only-show-errors "s3://$B/dir/small.txt" - >"$tmp/stdout.out" 2>"$tmp/err"
s3c_same "$tmp/small" "$tmp/stdout.out" "s3 cp to stdout streams the bytes"

# ---- 100 MiB object: the CLI's multipart upload (8 MiB parts) and parallel ranged GETs ----
s3c_gen "$tmp/big" $((100 << 20)) 1001
cp_ "$tmp/big" "s3://$B/big.bin"
ok $? "s3 cp uploads 100 MiB (multipart)"
s3c_diag_file "$tmp/err"
etag=$(awsq ETag s3api head-object --bucket "$B" --key big.bin 2>&1)
is "$etag" "\"$(s3c_mp_etag $((8 << 20)) "$tmp/big")\"" "its ETag is the multipart ETag of 13 parts of 8 MiB"
cp_ "s3://$B/big.bin" "$tmp/big.out"
ok $? "s3 cp downloads 100 MiB"
is "$(s3c_sha "$tmp/big.out")" "$(s3c_sha "$tmp/big")" "... byte for byte (SHA-256)"
rm -f "$tmp/big.out"

# ---- ranged reads ----
aws s3api get-object --bucket "$B" --key big.bin --range bytes=8388000-8389999 "$tmp/r1" >"$tmp/out" 2>&1
s3c_slice "$tmp/big" 8388000 2000 "$tmp/r1.want"
s3c_same "$tmp/r1" "$tmp/r1.want" "get-object --range across a part boundary"
like "$(cat "$tmp/out")" "\"ContentRange\": \"bytes 8388000-8389999/104857600\"" "... with its Content-Range"
aws s3api get-object --bucket "$B" --key big.bin --range bytes=-1000 "$tmp/r2" >/dev/null 2>&1
s3c_slice "$tmp/big" $(((100 << 20) - 1000)) 1000 "$tmp/r2.want"
s3c_same "$tmp/r2" "$tmp/r2.want" "get-object --range of the last 1000 bytes"
aws s3api get-object --bucket "$B" --key dir/small.txt --range bytes=6-9 "$tmp/r3" >/dev/null 2>&1
is "$(cat "$tmp/r3")" "from" "get-object --range inside a small object"

# ---- listing over 2000 keys ----
s3c_tree "$tmp/tree"
aws s3 sync --only-show-errors "$tmp/tree" "s3://$B/list/" 2>"$tmp/err"
ok $? "s3 sync uploads 2000 small files"
s3c_diag_file "$tmp/err"
n=$(awsn 'length(Contents[])' s3api list-objects-v2 --bucket "$B" --prefix list/ 2>&1)
is "$n" 2000 "list-objects-v2 (paged by the CLI, 1000 a page) returns 2000 keys"
n=$(awsn 'length(Contents[])' s3api list-objects-v2 --bucket "$B" --prefix list/ --page-size 300 2>&1)
is "$n" 2000 "list-objects-v2 in pages of 300 (continuation tokens) returns 2000 keys"
n=$(awsn 'length(Contents[])' s3api list-objects --bucket "$B" --prefix list/ --page-size 700 2>&1)
is "$n" 2000 "list-objects v1 in pages of 700 (markers) returns 2000 keys"
aws s3api list-objects-v2 --bucket "$B" --prefix list/ --delimiter / >"$tmp/out" 2>&1
is "$(grep -c '"Prefix": "list/d[0-9][0-9]/"' "$tmp/out")" 20 "list-objects-v2 with a delimiter: 20 common prefixes"
n=$(awsn 'length(Contents[])' s3api list-objects-v2 --bucket "$B" --prefix list/d07/ 2>&1)
is "$n" 100 "list-objects-v2 with the prefix list/d07/: 100 keys"
aws s3 ls "s3://$B/list/d13/" >"$tmp/out" 2>&1
is "$(grep -c ' k[0-9][0-9][0-9]$' "$tmp/out")" 100 "s3 ls of a folder shows its 100 keys"
aws s3 ls "s3://$B/list/" >"$tmp/out" 2>&1
is "$(grep -c 'PRE d[0-9][0-9]/' "$tmp/out")" 20 "s3 ls of the top shows 20 folders"
n=$(aws s3 ls --recursive "s3://$B/list/" 2>/dev/null | wc -l)
is "$n" 2000 "s3 ls --recursive shows all 2000"
awsq 'Contents[].Key' s3api list-objects-v2 --bucket "$B" --prefix list/d19/k09 --start-after list/d19/k094 \
    >"$tmp/out" 2>&1
is "$(tr '\t' '\n' <"$tmp/out" | tr -d '\r' | paste -sd,)" "list/d19/k095,list/d19/k096,list/d19/k097,list/d19/k098,list/d19/k099" \
    "list-objects-v2 --start-after"
cp_ "s3://$B/list/d11/k042" "$tmp/k.out"
is "$(cat "$tmp/k.out")" "d11/k042" "a listed key holds its own content"
aws s3 sync --only-show-errors "s3://$B/list/d05/" "$tmp/back" 2>"$tmp/err"
diff -r "$tmp/tree/d05" "$tmp/back" >/dev/null 2>&1
ok $? "s3 sync downloads a folder identical to the source"

# ---- explicit multipart upload through s3api ----
s3c_slice "$tmp/big" 0 $((5 << 20)) "$tmp/p1"
s3c_slice "$tmp/big" $((5 << 20)) $((3 << 20)) "$tmp/p2"
uid=$(awsq UploadId s3api create-multipart-upload --bucket "$B" --key mp.bin 2>&1)
like "$uid" "^[^ ]+$" "create-multipart-upload gives an upload id"
e1=$(awsq ETag s3api upload-part --bucket "$B" --key mp.bin --upload-id "$uid" --part-number 1 --body "$tmp/p1" 2>&1)
is "$e1" "\"$(s3c_md5 "$tmp/p1")\"" "upload-part 1 answers the part's MD5"
e2=$(awsq ETag s3api upload-part --bucket "$B" --key mp.bin --upload-id "$uid" --part-number 2 --body "$tmp/p2" 2>&1)
is "$e2" "\"$(s3c_md5 "$tmp/p2")\"" "upload-part 2 answers the part's MD5"
n=$(awsq 'length(Parts[])' s3api list-parts --bucket "$B" --key mp.bin --upload-id "$uid" 2>&1)
is "$n" 2 "list-parts shows two parts"
like "$(awsq 'Uploads[].UploadId' s3api list-multipart-uploads --bucket "$B" 2>&1)" "$uid" \
    "list-multipart-uploads shows the upload"
printf '{"Parts":[{"PartNumber":1,"ETag":%s},{"PartNumber":2,"ETag":%s}]}' \
    "$(printf '%s' "$e1" | sed 's/"/\\"/g; s/.*/"&"/')" "$(printf '%s' "$e2" | sed 's/"/\\"/g; s/.*/"&"/')" >"$tmp/parts.json"
cat "$tmp/p1" "$tmp/p2" >"$tmp/mp"
etag=$(awsq ETag s3api complete-multipart-upload --bucket "$B" --key mp.bin --upload-id "$uid" \
    --multipart-upload "file://$tmp/parts.json" 2>&1)
# Parts of 5 MiB: the first part is the full 5 MiB, the second the remaining 3 MiB.
is "$etag" "\"$(s3c_mp_etag $((5 << 20)) "$tmp/mp")\"" "complete-multipart-upload answers the multipart ETag"
cp_ "s3://$B/mp.bin" "$tmp/mp.out"
s3c_same "$tmp/mp" "$tmp/mp.out" "the assembled object reads back byte for byte"
aws s3api get-object --bucket "$B" --key mp.bin --part-number 2 "$tmp/part2.out" >/dev/null 2>&1
s3c_same "$tmp/p2" "$tmp/part2.out" "get-object --part-number 2 returns the second part"
uid2=$(awsq UploadId s3api create-multipart-upload --bucket "$B" --key aborted.bin 2>&1)
aws s3api abort-multipart-upload --bucket "$B" --key aborted.bin --upload-id "$uid2" >/dev/null 2>&1
ok $? "abort-multipart-upload succeeds"
unlike "$(awsq 'Uploads[].UploadId' s3api list-multipart-uploads --bucket "$B" 2>&1)" "$uid2" \
    "... and the upload is gone"
# upload-part-copy: a part taken from the big object by range.
uid3=$(awsq UploadId s3api create-multipart-upload --bucket "$B" --key mpc.bin 2>&1)
c1=$(awsq CopyPartResult.ETag s3api upload-part-copy --bucket "$B" --key mpc.bin --upload-id "$uid3" \
    --part-number 1 --copy-source "$B/big.bin" --copy-source-range bytes=1000-5243879 2>&1)
s3c_slice "$tmp/big" 1000 $((5 << 20)) "$tmp/c1"
is "$c1" "\"$(s3c_md5 "$tmp/c1")\"" "upload-part-copy of a 5 MiB range answers its MD5"
c2=$(awsq ETag s3api upload-part --bucket "$B" --key mpc.bin --upload-id "$uid3" --part-number 2 --body "$tmp/small" 2>&1)
printf '{"Parts":[{"PartNumber":1,"ETag":%s},{"PartNumber":2,"ETag":%s}]}' \
    "$(printf '%s' "$c1" | sed 's/"/\\"/g; s/.*/"&"/')" "$(printf '%s' "$c2" | sed 's/"/\\"/g; s/.*/"&"/')" >"$tmp/parts.json"
aws s3api complete-multipart-upload --bucket "$B" --key mpc.bin --upload-id "$uid3" \
    --multipart-upload "file://$tmp/parts.json" >/dev/null 2>&1
ok $? "completing the upload with a copied part succeeds"
cat "$tmp/c1" "$tmp/small" >"$tmp/mpc"
cp_ "s3://$B/mpc.bin" "$tmp/mpc.out"
s3c_same "$tmp/mpc" "$tmp/mpc.out" "the object with a copied part reads back byte for byte"

# ---- server-side copies ----
cp_ "s3://$B/dir/small.txt" "s3://$B/copy/small.txt"
ok $? "s3 cp between keys (CopyObject)"
cp_ "s3://$B/copy/small.txt" "$tmp/copy.out"
s3c_same "$tmp/small" "$tmp/copy.out" "the copy reads back byte for byte"
like "$(aws s3api head-object --bucket "$B" --key copy/small.txt 2>&1)" "\"color\": \"blue\"" \
    "the copy keeps the metadata (COPY directive)"
aws s3api copy-object --bucket "$B" --key copy/replaced.txt --copy-source "$B/dir/small.txt" \
    --metadata-directive REPLACE --metadata color=red --content-type text/x-lode >/dev/null 2>&1
aws s3api head-object --bucket "$B" --key copy/replaced.txt >"$tmp/head" 2>&1
like "$(cat "$tmp/head")" "\"color\": \"red\"" "copy-object with REPLACE takes the new metadata"
like "$(cat "$tmp/head")" "\"ContentType\": \"text/x-lode\"" "... and the new content type"
cp_ "s3://$B/big.bin" "s3://$B/copy/big.bin"
ok $? "s3 cp of 100 MiB between keys (multipart copy, UploadPartCopy)"
s3c_diag_file "$tmp/err"
cp_ "s3://$B/copy/big.bin" "$tmp/big.out"
is "$(s3c_sha "$tmp/big.out")" "$(s3c_sha "$tmp/big")" "the 100 MiB copy reads back byte for byte"
rm -f "$tmp/big.out"

# ---- a wrong secret ----
AWS_SECRET_ACCESS_KEY=wrong-wrong-wrong-wrong-wrong-wrong0000 "$AWS" --endpoint-url "$S3C_EP" \
    s3api list-buckets >/dev/null 2>"$tmp/err"
like "$(cat "$tmp/err")" "SignatureDoesNotMatch" "a wrong secret: SignatureDoesNotMatch"
AWS_SECRET_ACCESS_KEY=wrong-wrong-wrong-wrong-wrong-wrong0000 "$AWS" --endpoint-url "$S3C_EP" \
    s3api head-bucket --bucket "$B" >/dev/null 2>"$tmp/err"
like "$(cat "$tmp/err")" "\(403\)" "... with status 403"
AWS_SECRET_ACCESS_KEY=wrong-wrong-wrong-wrong-wrong-wrong0000 "$AWS" --endpoint-url "$S3C_EP" \
    s3 cp --only-show-errors "$tmp/small" "s3://$B/wrong.txt" >/dev/null 2>&1
aws s3api head-object --bucket "$B" --key wrong.txt >/dev/null 2>"$tmp/err"
like "$(cat "$tmp/err")" "\(404\)" "... and the refused upload stored nothing"

# ---- deletes ----
aws s3 rb "s3://$B" >/dev/null 2>"$tmp/err"
like "$(cat "$tmp/err")" "BucketNotEmpty" "s3 rb of a bucket with objects: BucketNotEmpty"
aws s3 rm --only-show-errors --recursive "s3://$B/list/" 2>"$tmp/err"
ok $? "s3 rm --recursive deletes 2000 keys (DeleteObjects)"
n=$(awsq 'KeyCount' s3api list-objects-v2 --no-paginate --bucket "$B" --prefix list/ 2>&1)
is "$n" 0 "... and none is left"
aws s3 rm --only-show-errors "s3://$B/big.bin" 2>"$tmp/err"
ok $? "s3 rm deletes one object"
aws s3api head-object --bucket "$B" --key big.bin >/dev/null 2>"$tmp/err"
like "$(cat "$tmp/err")" "\(404\)" "head-object of the deleted object: 404"
aws s3api delete-object --bucket "$B" --key never-existed >/dev/null 2>&1
ok $? "delete-object of a missing key succeeds (204)"
aws s3 rb --force "s3://$B" >/dev/null 2>"$tmp/err"
ok $? "s3 rb --force empties and removes the bucket"
s3c_diag_file "$tmp/err"
unlike "$(aws s3 ls 2>&1)" " $B\$" "... and it is no longer listed"

s3c_finish
