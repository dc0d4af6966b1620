#!/usr/bin/env bash
# Runs one command inside a throw-away qemu guest that has two soft-RoCE (rdma_rxe) devices,
# and hands back the command's exit status, stdout and stderr. The guest's userland is this
# host's own root file system (read-only over virtio-9p, a tmpfs overlay on top), so binaries
# built here run there unchanged; the current directory is shared read-write at the same path.
#
#   tests/rdma/vm.sh [options] [--] COMMAND [ARGS...]
#   tests/rdma/vm.sh --check      exit 0 when a guest can run here; else exit 77 + the reason
#   tests/rdma/vm.sh --prepare    install, download and build what is missing; no guest
#
# Options (each also an environment variable):
#   -t SECONDS   LODE_RDMA_VM_TIMEOUT  kill the guest after this long; exit 124 (default 600)
#   -m MIB       LODE_RDMA_VM_MEM      guest memory (default 1536)
#   -p N         LODE_RDMA_VM_CPUS     guest vCPUs (default 2)
#   -v           LODE_RDMA_VM_VERBOSE=1  timings and the guest console on stderr
# Other settings:
#   LODE_RDMA_VM_CACHE       cache folder (default ~/.cache/lode-rdma-vm)
#   LODE_RDMA_VM_ACCEL       auto | kvm | tcg (auto: kvm only where /dev/kvm is real VT-x/AMD-V)
#   LODE_RDMA_VM_MTU         MTU of the guest's veth pair (default 9000: rxe then uses 4096)
#   LODE_RDMA_VM_SHARE       more host folders (colon-separated) shared read-write
#   LODE_RDMA_VM_NO_INSTALL=1  never run apt-get install; missing packages make --check say 77
#
# In the guest: rxe0 on veth0 = 10.99.0.1 and rxe1 on veth1 = 10.99.0.2 (GID index 1 is the
# RoCEv2 IPv4 GID); traffic between the two addresses crosses the veth pair, so they behave
# like two hosts. lo (127.0.0.1) works as usual. The command runs as root, in the caller's
# current directory, with the caller's environment plus LODE_RDMA_VM=1,
# LODE_RDMA_VM_DEVS="rxe0 rxe1", LODE_RDMA_VM_ADDRS="10.99.0.1 10.99.0.2" and
# LODE_RDMA_VM_GID_INDEX=1. A command may be a shell script that starts several processes in
# the background (a small cluster) and waits for them: the guest stops when the command exits.
# Guest /tmp is tmpfs; only the shared folders outlive the guest.
#
# Exit status: the command's; 124 on timeout; 125 when the guest could not be prepared or
# booted; 77 from --check when no guest can run here; 2 on a usage error.
set -euo pipefail

readonly FORMAT=1          # bump when the cached initramfs layout changes
export PATH="$PATH:/usr/sbin:/sbin"    # depmod, modprobe for a user whose PATH lacks them
PROG=tests/rdma/vm.sh
CACHE=${LODE_RDMA_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lode-rdma-vm}
TIMEOUT=${LODE_RDMA_VM_TIMEOUT:-600}
MEM=${LODE_RDMA_VM_MEM:-1536}
CPUS=${LODE_RDMA_VM_CPUS:-2}
VERBOSE=${LODE_RDMA_VM_VERBOSE:-0}
MTU=${LODE_RDMA_VM_MTU:-9000}
MODE=run
START=$(date +%s.%N)

fail()   { echo "$PROG: $*" >&2; exit 125; }
usage_error() { echo "$PROG: $*" >&2; exit 2; }
note()   { [ "$VERBOSE" = 1 ] && echo "$PROG: [$(elapsed)s] $*" >&2; return 0; }
elapsed() { awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
# --check reports "cannot run here" as 77 + reason; a real run reports it as 125.
cannot() {
    if [ "$MODE" = check ]; then echo "$*"; exit 77; fi
    fail "$*"
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case $1 in
    --check)   MODE=check; shift;;
    --prepare) MODE=prepare; shift;;
    -t) TIMEOUT=$2; shift 2;;
    -m) MEM=$2; shift 2;;
    -p) CPUS=$2; shift 2;;
    -v) VERBOSE=1; shift;;
    -h|--help) usage; exit 0;;
    --) shift; break;;
    -*) usage_error "unknown option $1 (see --help)";;
    *) break;;
    esac
done
[ "$MODE" != run ] || [ $# -gt 0 ] || usage_error "no command given (see --help)"
case $TIMEOUT$MEM$CPUS in *[!0-9]*) usage_error "-t, -m and -p take whole numbers";; esac

# ------------------------------------------------------------------ host packages
# qemu runs the guest; busybox-static and cpio make its initramfs; kmod resolves module
# dependencies; the RDMA userland is what the guest runs (it is this host's).
HOST_PKGS=(qemu-system-x86 busybox-static cpio kmod xz-utils gzip iproute2 rdma-core
           libibverbs1 ibverbs-providers ibverbs-utils rdmacm-utils)

missing_pkgs() {
    local p
    for p in "${HOST_PKGS[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
    done
}

ensure_pkgs() {
    local missing
    command -v dpkg-query >/dev/null || cannot "not a Debian-like host (no dpkg-query)"
    missing=$(missing_pkgs | tr '\n' ' ')
    [ -z "${missing// }" ] && return 0
    if [ "${LODE_RDMA_VM_NO_INSTALL:-0}" = 1 ] || [ "$(id -u)" != 0 ]; then
        cannot "missing packages: $missing(install them: apt-get install $missing)"
    fi
    note "installing $missing"
    # Lock::Timeout: a CI image may still be running its own apt at boot. The package lists
    # may be stale or absent on a fresh image: refresh them once when the install fails.
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $missing >&2 ||
        { apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 &&
          apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $missing >&2; } ||
        cannot "apt-get install $missing failed"
}

# ------------------------------------------------------------------ guest kernel
# Debian's generic kernel image, fetched with apt-get download and unpacked into the cache;
# nothing is installed on the host. Layout: $CACHE/<kver>/{vmlinux|vmlinuz, config,
# lib/modules/<kver>/, initrd.gz, format, complete}.
kernel_pkg() {
    local pkg
    if [ -s "$CACHE/kernel-package" ]; then cat "$CACHE/kernel-package"; return 0; fi
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
        apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || true
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    fi
    [ -n "$pkg" ] || return 1
    echo "$pkg" > "$CACHE/kernel-package"
    echo "$pkg"
}

prepare_kernel() {
    local pkg dir deb off
    pkg=$(kernel_pkg) || cannot "no guest kernel: apt-cache knows no linux-image-amd64 (apt-get update?)"
    KVER=${pkg#linux-image-}
    KDIR=$CACHE/$KVER
    [ -e "$KDIR/complete" ] && return 0
    note "fetching $pkg"
    rm -rf "$KDIR"; mkdir -p "$KDIR/deb"
    # apt-get download may drop to the _apt user, which then warns about the folder: harmless
    (cd "$KDIR/deb" && apt-get download "$pkg" >/dev/null 2>&1) || true
    deb=$(find "$KDIR/deb" -name '*.deb' | head -n 1)
    [ -n "$deb" ] || { rm -rf "$KDIR"; cannot "apt-get download $pkg failed (offline?)"; }
    dpkg-deb -x "$deb" "$KDIR/root"
    mkdir -p "$KDIR/lib"
    if [ -d "$KDIR/root/lib/modules" ]; then mv "$KDIR/root/lib/modules" "$KDIR/lib/"
    else mv "$KDIR/root/usr/lib/modules" "$KDIR/lib/"; fi
    mv "$KDIR/root/boot/vmlinuz-$KVER" "$KDIR/vmlinuz"
    cp "$KDIR/root/boot/config-$KVER" "$KDIR/config"
    # qemu can enter an uncompressed ELF vmlinux directly (PVH); under emulation that saves
    # the seconds the bzImage would spend decompressing itself on every boot.
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$KDIR/vmlinuz" | head -n 1 | cut -d: -f1 || true)
    if [ -n "$off" ]; then
        # (no pipe: xz stops reading early and tail's SIGPIPE would trip pipefail)
        tail -c +$((off + 1)) "$KDIR/vmlinuz" > "$KDIR/vmlinuz.xz"
        xz -dc --single-stream "$KDIR/vmlinuz.xz" > "$KDIR/vmlinux" 2>/dev/null || rm -f "$KDIR/vmlinux"
        rm -f "$KDIR/vmlinuz.xz"
        if [ -e "$KDIR/vmlinux" ] && [ "$(head -c 4 "$KDIR/vmlinux" | od -An -tx1 | tr -d ' \n')" != 7f454c46 ]; then
            rm -f "$KDIR/vmlinux"
        fi
    fi
    rm -rf "$KDIR/root" "$KDIR/deb"
    # A guest has none of this hardware; dropping it keeps the cache small.
    (cd "$KDIR/lib/modules/$KVER/kernel" && rm -rf sound drivers/gpu drivers/media drivers/usb \
        drivers/net/wireless drivers/net/ethernet drivers/infiniband/hw drivers/bluetooth \
        drivers/staging drivers/iio drivers/hid drivers/input drivers/scsi drivers/ata)
    # The package's postinst would run depmod; without modules.dep modprobe finds nothing.
    depmod -b "$KDIR" "$KVER"
    touch "$KDIR/complete"
}

# ------------------------------------------------------------------ initramfs
# Static busybox plus just the modules that reach the host's root file system over 9p.
prepare_initrd() {
    local tmp mod
    [ -e "$KDIR/initrd.gz" ] && [ "$(cat "$KDIR/format" 2>/dev/null)" = "$FORMAT" ] && return 0
    note "building the initramfs"
    tmp=$(mktemp -d "$CACHE/initrd.XXXXXX")
    mkdir -p "$tmp/bin" "$tmp/dev" "$tmp/proc" "$tmp/sys" "$tmp/ro" "$tmp/rw" "$tmp/root" "$tmp/ko"
    cp /bin/busybox "$tmp/bin/busybox"
    : > "$tmp/ko/list"
    for mod in virtio_pci 9pnet_virtio 9p overlay; do
        modprobe -d "$KDIR" -S "$KVER" --show-depends "$mod"
    done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' > "$tmp/ko/paths"
    while read -r mod; do
        local base=${mod##*/}
        base=${base%.xz}; base=${base%.zst}     # busybox insmod wants the plain object
        case $mod in
        *.xz) xz -dc "$mod" > "$tmp/ko/$base";;
        *.zst) zstd -qdc "$mod" > "$tmp/ko/$base";;
        *) cp "$mod" "$tmp/ko/$base";;
        esac
        echo "$base" >> "$tmp/ko/list"
    done < "$tmp/ko/paths"
    rm -f "$tmp/ko/paths"
    cat > "$tmp/init" <<'EOF'
#!/bin/busybox sh
# Stage 1: mount the host's / read-only over 9p, put a tmpfs overlay on it, switch into it
# and run stage 2 (bash, from the per-run folder) as PID 1.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t devtmpfs dev /dev
die() { echo "lode-vm stage 1: $*"; echo o > /proc/sysrq-trigger; sleep 30; }
for m in $(cat /ko/list); do insmod /ko/$m || die "insmod $m"; done
# msize 512000 is the largest virtio-9p accepts; loose caching suits a read-only root
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /ro || die "9p root"
mount -t tmpfs -o mode=0755 tmpfs /rw || die tmpfs
mkdir -p /rw/up /rw/work
mount -t overlay -o lowerdir=/ro,upperdir=/rw/up,workdir=/rw/work overlay /root || die overlay
mkdir -p /root/.lodevm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 lodevmrun /root/.lodevm || die "9p run folder"
umount /proc
mount --move /dev /root/dev
exec switch_root /root /bin/bash /.lodevm/stage2.sh
EOF
    chmod 755 "$tmp/init"
    (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) > "$KDIR/initrd.gz.new"
    mv "$KDIR/initrd.gz.new" "$KDIR/initrd.gz"
    echo "$FORMAT" > "$KDIR/format"
    rm -rf "$tmp"
}

# ------------------------------------------------------------------ stage 2 (guest PID 1)
write_stage2() {
    cat > "$1/stage2.sh" <<'EOF'
#!/bin/bash
# Stage 2, PID 1 in the guest: file systems, soft-RoCE, then the command.
main() {
RUN=/.lodevm
. $RUN/settings
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
console() { echo "lode-vm: $*" > /dev/ttyS0; }
# After the power-off request the 9p folders vanish under us: only builtins from then on.
halt_with() { echo "$1" > $RUN/status; sync; echo o > /proc/sysrq-trigger; while :; do :; done; }
broken() { echo "$*" > $RUN/broken; console "$*"; halt_with 125; }
mount -t proc proc /proc; mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run; mkdir -p /run/lock        # the host's /run means nothing here
# the guest kernel's modules come from the cache, not from the host's /lib/modules (bound
# before /tmp is replaced: the cache may live under the host's /tmp)
mkdir -p /lib/modules && mount --bind "$MODULES" /lib/modules || broken "cannot bind $MODULES"
mount -t tmpfs tmpfs /tmp; chmod 1777 /tmp
n=0
while IFS= read -r dir; do
    # cache=mmap: shared writable mappings (LMDB) fail with EINVAL on an uncached 9p mount
    mkdir -p "$dir" && mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=mmap \
        "lodevmshare$n" "$dir" || broken "cannot mount $dir"
    n=$((n + 1))
done < $RUN/shares
hostname lode-vm
ip link set lo up
modprobe -a veth rdma_rxe ib_uverbs rdma_ucm || broken "cannot load the soft-RoCE modules"
# rxe sends many small UDP packets; the default backlog of 1000 drops some under load and the
# retransmissions ruin READ throughput
echo 50000 > /proc/sys/net/core/netdev_max_backlog
ip link add veth0 type veth peer name veth1
for i in 0 1; do
    ip link set veth$i mtu "$MTU"
    ip addr add 10.99.0.$((i + 1))/24 dev veth$i
    ip link set veth$i up
done
# Both addresses are local, so by default the kernel would carry 10.99.0.2 -> 10.99.0.1 over
# lo, where no rxe device listens, and rxe drops it. Locally sent packets to the other end
# therefore take the veth pair (rules 10/11 before the local table, moved to 1000), and the
# receiving side must accept a packet whose source address is its own host's.
for c in all veth0 veth1; do
    echo 1 > /proc/sys/net/ipv4/conf/$c/accept_local
    echo 0 > /proc/sys/net/ipv4/conf/$c/rp_filter
done
ip route add 10.99.0.1 dev veth1 src 10.99.0.2 table 201
ip route add 10.99.0.2 dev veth0 src 10.99.0.1 table 202
ip rule add pref 10 iif lo to 10.99.0.1 lookup 201
ip rule add pref 11 iif lo to 10.99.0.2 lookup 202
ip rule add pref 1000 lookup local
ip rule del pref 0 lookup local
rdma link add rxe0 type rxe netdev veth0 || broken "rdma link add rxe0 failed"
rdma link add rxe1 type rxe netdev veth1 || broken "rdma link add rxe1 failed"
ulimit -l unlimited; ulimit -n 65536; ulimit -c 0
(
    . $RUN/environment
    export LODE_RDMA_VM=1 LODE_RDMA_VM_DEVS="rxe0 rxe1" LODE_RDMA_VM_ADDRS="10.99.0.1 10.99.0.2"
    export LODE_RDMA_VM_GID_INDEX=1 TMPDIR=/tmp
    cd "$WORKDIR" || exit 125
    . $RUN/command
) < /dev/null > $RUN/stdout 2> $RUN/stderr
halt_with $?
}
main
EOF
}

# ------------------------------------------------------------------ prepare
mkdir -p "$CACHE" || cannot "cannot create the cache folder $CACHE"
CACHE=$(cd "$CACHE" && pwd -P)
ensure_pkgs
exec 8> "$CACHE/lock"
flock 8               # parallel runs share one cache; only one fills it
prepare_kernel
prepare_initrd
flock -u 8; exec 8>&-
note "cache ready: $KDIR"

# ------------------------------------------------------------------ accelerator
ACCEL=${LODE_RDMA_VM_ACCEL:-auto}
if [ "$ACCEL" = auto ]; then
    ACCEL=tcg
    # Hardware virtualisation shows as vmx/svm. Some sandboxes offer a /dev/kvm backed by
    # PVM (kvm_pvm), which runs only PVM-patched guest kernels: a stock one crawls there,
    # far slower than emulation, so it counts as no KVM.
    if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo && [ ! -d /sys/module/kvm_pvm ]; then
        ACCEL=kvm
    fi
fi
case $ACCEL in
kvm) QACCEL=(-accel kvm -cpu host);;
tcg) QACCEL=(-accel tcg,thread=multi -cpu max);;
*) fail "LODE_RDMA_VM_ACCEL must be auto, kvm or tcg";;
esac

avail_mib=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
[ "${avail_mib:-0}" -ge $((MEM + 256)) ] ||
    cannot "not enough memory: ${avail_mib:-?} MiB available, the guest needs $MEM MiB + 256 MiB for qemu"
command -v qemu-system-x86_64 >/dev/null || cannot "qemu-system-x86_64 not found"

if [ "$MODE" = check ]; then
    echo "ok: qemu $(qemu-system-x86_64 --version | awk 'NR == 1 { print $4 }'), $ACCEL, kernel $KVER"
    exit 0
fi
[ "$MODE" = prepare ] && exit 0

# ------------------------------------------------------------------ per-run folder
WORKDIR=$(pwd -P)
[ "$WORKDIR" != / ] || fail "run it from a project folder, not / (the current folder is shared read-write)"
mkdir -p "$CACHE/runs"
RUN=$(mktemp -d "$CACHE/runs/XXXXXX")
QPID=
TAILS=()
cleanup() {
    [ -n "$QPID" ] && kill "$QPID" 2>/dev/null || true
    for t in ${TAILS[@]+"${TAILS[@]}"}; do kill "$t" 2>/dev/null || true; done
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
write_stage2 "$RUN"
{
    printf 'MODULES=%q\nWORKDIR=%q\nMTU=%q\n' "$KDIR/lib/modules" "$WORKDIR" "$MTU"
} > "$RUN/settings"
# The caller's environment, without what describes this shell or terminal.
export -p | grep -vE '^declare -x (PWD|OLDPWD|SHLVL|_|HOSTNAME|TERM|COLUMNS|LINES|DISPLAY|SSH_[A-Z_]*|XDG_RUNTIME_DIR|DBUS_[A-Z_]*|TMPDIR)(=|$)' \
    > "$RUN/environment" || true
printf '%q ' "$@" > "$RUN/command"; echo >> "$RUN/command"
SHARES=("$WORKDIR")
IFS=: read -r -a more <<< "${LODE_RDMA_VM_SHARE:-}"
for d in ${more[@]+"${more[@]}"}; do
    [ -n "$d" ] && SHARES+=("$(cd "$d" && pwd -P)")
done
# Parents before children, each once: a folder mounted after one inside it would hide it
# (the source tree shared alongside its build tree, for one).
mapfile -t SHARES < <(printf '%s\n' "${SHARES[@]}" | awk '!seen[$0]++ { print length($0) "\t" $0 }' |
    sort -n -k1,1 | cut -f2-)
printf '%s\n' "${SHARES[@]}" > "$RUN/shares"
QSHARES=()
for i in "${!SHARES[@]}"; do
    QSHARES+=(-fsdev "local,id=share$i,path=${SHARES[$i]//,/,,},security_model=none,multidevs=remap"
              -device "virtio-9p-pci,fsdev=share$i,mount_tag=lodevmshare$i")
done
: > "$RUN/stdout"; : > "$RUN/stderr"

# ------------------------------------------------------------------ boot
KERNEL=$KDIR/vmlinux
[ -e "$KERNEL" ] || KERNEL=$KDIR/vmlinuz
APPEND="console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off"
# Under emulation the guest reads the host's TSC; where that is constant it is a good clock,
# but the guest would distrust it and fall back to HPET (slow emulated MMIO).
if [ "$ACCEL" = tcg ] && grep -qw constant_tsc /proc/cpuinfo; then APPEND+=" tsc=reliable"; fi
QEMU=(qemu-system-x86_64 "${QACCEL[@]}" -M q35 -smp "$CPUS" -m "$MEM"
      -nodefaults -no-user-config -display none -no-reboot
      -kernel "$KERNEL" -initrd "$KDIR/initrd.gz" -append "$APPEND"
      -serial "file:$RUN/console"
      -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap
      -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
      -fsdev "local,id=run,path=${RUN//,/,,},security_model=none"
      -device virtio-9p-pci,fsdev=run,mount_tag=lodevmrun
      "${QSHARES[@]}")
note "booting ($ACCEL, $CPUS vCPU, $MEM MiB)"
timeout -k 5 "$TIMEOUT" "${QEMU[@]}" < /dev/null > "$RUN/qemu.out" 2>&1 &
QPID=$!
# The guest writes the command's output into the run folder; follow it live.
tail -n +1 -f --pid="$QPID" "$RUN/stdout" & TAILS+=($!)
tail -n +1 -f --pid="$QPID" "$RUN/stderr" >&2 & TAILS+=($!)
set +e
wait "$QPID"; qrc=$?
QPID=
wait "${TAILS[@]}"
set -e
TAILS=()
note "guest gone (qemu status $qrc)"
if [ "$VERBOSE" = 1 ]; then
    { echo "---- guest console"; cat "$RUN/console"; echo "---- qemu"; cat "$RUN/qemu.out"; echo "----"; } >&2
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    echo "$PROG: the guest ran past ${TIMEOUT}s and was stopped; console tail:" >&2
    tail -n 20 "$RUN/console" >&2
    exit 124
fi
if [ -s "$RUN/broken" ]; then
    echo "$PROG: guest setup failed: $(cat "$RUN/broken")" >&2
    tail -n 20 "$RUN/console" >&2
    exit 125
fi
if [ ! -s "$RUN/status" ]; then
    echo "$PROG: the guest stopped without a status (qemu status $qrc); console and qemu tail:" >&2
    tail -n 20 "$RUN/console" "$RUN/qemu.out" >&2
    exit 125
fi
exit "$(cat "$RUN/status")"
