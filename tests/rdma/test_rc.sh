#!/bin/sh
# The rc data plane for real: boots a qemu guest with two soft-RoCE devices (tests/rdma/vm.sh)
# and runs tests/rdma/test_rc_transport inside it; its TAP output is this test's. SKIPs, with
# the reason, only where no guest can run here (no qemu and no way to install it, too little
# memory, no guest kernel to download).
srcdir=${LODE_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${LODE_BUILDDIR:-.}
. "$srcdir/tests/lib/tap.sh"

bin="$builddir/tests/rdma/test_rc_transport"
[ -x "$bin" ] || tap_bail "$bin not built"
reason=$("$srcdir/tests/rdma/vm.sh" --check 2>&1)
case $? in
0) ;;
77) tap_skip_all "no qemu guest here: $(printf '%s' "$reason" | tail -n 1)" ;;
*) tap_bail "tests/rdma/vm.sh --check failed: $reason" ;;
esac
# The guest shares the current folder read-write at the same path, so run from the build tree.
cd "$builddir" || tap_bail "cd $builddir"
exec "$srcdir/tests/rdma/vm.sh" -t "${LODE_RDMA_VM_TIMEOUT:-300}" ./tests/rdma/test_rc_transport
