#!/bin/bash
# python3-boto3 (the Debian package, run by /usr/bin/python3) against a running lode cluster:
# the client half is test_s3c_boto3.py beside this file; its report becomes TAP points here.
# Buckets, small objects with metadata, checksums and conditions, a 100 MiB managed
# multipart upload and download, ranged reads, 2000 keys written by a thread pool and listed
# with prefixes, delimiters and paging (v1 and v2), explicit multipart with UploadPartCopy,
# server-side copies, batch deletes and a refused wrong secret.
# shellcheck source=tests/integration/s3c_lib.sh
. "$(dirname "$0")/s3c_lib.sh"

s3c_need /usr/bin/python3 python3
/usr/bin/python3 -c 'import boto3' 2>/dev/null || tap_skip_all "python3-boto3 is not installed (ops/setup-deps.sh --test-clients installs it)"
s3c_start test_s3c_boto3

s3c_gen "$tmp/big" $((100 << 20)) 1002
diag "boto3 $(/usr/bin/python3 -c 'import boto3; print(boto3.__version__)')"
/usr/bin/python3 "$srcdir/tests/integration/test_s3c_boto3.py" "$S3C_EP" "$tmp/big" "$tmp" \
    >"$tmp/report" 2>"$tmp/py.err"
rc=$?
s3c_bridge <"$tmp/report"
ok "$rc" "the boto3 script ran to its end"
[ "$rc" = 0 ] || s3c_diag_file "$tmp/py.err" 20

s3c_finish
