#!/bin/sh
# Installs what is missing, builds lode with AddressSanitizer and UBSan (and an optimised tree,
# as ops/quickstart.sh builds it), and runs the whole test suite (unit, integration, fault
# tests, the real S3 client suites). Usage:
# ops/check.sh [--no-sanitize] [--no-clients] [-jN]   (--no-clients: installs no S3 clients;
# the suites of the clients that are missing SKIP)
# The summary at the end counts individual TAP test points.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

sanitize=--enable-sanitize
clients=1
builddir=build-check
jobs=$(nproc 2>/dev/null || echo 2)
for arg in "$@"; do
    case "$arg" in
    --no-sanitize) sanitize=; builddir=build-check-plain ;;
    --no-clients) clients=0 ;;
    -j*) jobs=${arg#-j} ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check.sh: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done

echo "== dependencies"
if [ "$clients" = 1 ]; then
    # awscli, s3cmd, rclone, python3-boto3 (and npm) from Debian; then, as the calling user,
    # the AWS SDK for JavaScript v3 and a node to run it in ~/.cache/lode-test-npm. Without
    # them the client suites SKIP rather than fail.
    ops/setup-deps.sh --test-clients
    ops/setup-deps.sh --test-npm || echo "check.sh: the JavaScript SDK could not be installed; its suite will SKIP" >&2
else
    ops/setup-deps.sh
fi

echo "== configure ($builddir ${sanitize:-without sanitizers})"
[ -x configure ] && [ configure -nt configure.ac ] || ./autogen.sh
mkdir -p "$builddir"
cd "$builddir"
if [ ! -f Makefile ] || [ ../configure -nt config.status ]; then
    ../configure --enable-debug $sanitize
fi

echo "== build"
make -j"$jobs"

# ops/quickstart.sh builds optimised (-O2 -Werror), where GCC finds what it cannot at -O0
# (-Wnull-dereference, -Wmaybe-uninitialized): build that too, before any test, so a warning
# there fails the run instead of a user's quickstart.
echo "== optimised build (as ops/quickstart.sh builds)"
mkdir -p ../build-check-release
(cd ../build-check-release && { [ -f Makefile ] && [ config.status -nt ../configure ] ||
    ../configure -q; } && make -s -j"$jobs")

echo "== test"
# The fan-out suite reads objects of 1 GiB too (the size the fan-out must be shown at).
export LODE_TEST_BIG=${LODE_TEST_BIG:-1}
status=0
make -j"$jobs" check || status=$?
# Show what failed, with its log, so a CI transcript is enough to debug.
if [ "$status" -ne 0 ]; then
    for log in $(find . -name '*.log' ! -name config.log ! -name test-suite.log); do
        trs=${log%.log}.trs
        if [ -f "$trs" ] && grep -qE '^:test-result: (FAIL|ERROR)' "$trs"; then
            echo "---- $log"
            tail -n 80 "$log"
        fi
    done
fi
if [ -f test-suite.log ]; then
    sed -n '1,12p' test-suite.log | grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' || true
fi
exit "$status"
