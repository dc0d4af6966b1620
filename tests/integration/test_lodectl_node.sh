#!/bin/sh
# lodectl node list|status against a real lode-meta and two lode-node processes, and
# lodectl inspect node-dir on their data directories: a running node's (read-only, the node
# undisturbed), a stopped node's (consistent, then a flipped data byte found with its volume
# and offset), and paths that do not exist. Exit codes: 0 ok, 1 refused/inconsistent,
# 3 unreachable/unreadable.
srcdir=${LODE_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${LODE_BUILDDIR:-.}
# shellcheck source=tests/lib/tap.sh
. "$srcdir/tests/lib/tap.sh"
# shellcheck source=tests/lib/lodectl.sh
. "$srcdir/tests/lib/lodectl.sh"

[ -x "$builddir/lode-node" ] || tap_bail "$builddir/lode-node not built"
command -v python3 >/dev/null 2>&1 || tap_skip_all "python3 is needed (JSON, byte offsets)"
# One meta replica is enough here (the cluster map is what is tested), and two nodes.
lc_start test_lodectl_node 1 2

set -- $NODE_ADDRS
addr1=$1 addr2=$2
set -- $NODE_PIDS
pid1=$1 pid2=$2
set -- $NODE_DIRS
dir1=$1 dir2=$2

# ---- node list: both nodes register and come up ----
up=0
i=0
while [ $i -lt 200 ]; do
    run --json --timeout 2s node list
    if [ "$rc" = 0 ]; then
        up=$(json_get 'sum(1 for n in d["nodes"] if n["state"] == "up")' 2>/dev/null)
        [ "$up" = 2 ] && break
    fi
    sleep 0.1
    i=$((i + 1))
done
is "$up" 2 "both nodes register and are up within 20 s" ||
    tap_bail "the nodes did not come up (their logs follow)"

run node list
is "$rc" 0 "node list exits 0"
like "$out" '^NID +UUID +ADDRESS +FAILURE-DOMAIN +STATE +CAPACITY +USED +STATE-CHANGED$' \
    "node list has its header"
like "$out" "^ *[0-9]+ +[0-9a-f]{8} +$addr1 +rack1 +up +" "node 1 is listed up in rack1"
like "$out" "^ *[0-9]+ +[0-9a-f]{8} +$addr2 +rack2 +up +" "node 2 is listed up in rack2"
like "$out" '^epoch: [0-9]+, 2 nodes$' "an epoch line ends the list"

run --json node list
is "$rc" 0 "node list --json exits 0"
is "$(json_get 'sorted(n["failure_domain"] for n in d["nodes"])')" "['rack1', 'rack2']" \
    "the JSON lists both failure domains"
is "$(json_get 'all(len(n["uuid"]) == 32 and n["capacity_bytes"] > 0 for n in d["nodes"])')" \
    True "the JSON has full uuids and capacities"
nid1=$(json_get '[n["nid"] for n in d["nodes"] if n["address"] == "'"$addr1"'"][0]')
nid2=$(json_get '[n["nid"] for n in d["nodes"] if n["address"] == "'"$addr2"'"][0]')
uuid1=$(json_get '[n["uuid"] for n in d["nodes"] if n["address"] == "'"$addr1"'"][0]')

# ---- node status, by nid and by address ----
run node status "$nid1"
is "$rc" 0 "node status NID exits 0"
like "$out" "^node $nid1 \\(uuid $uuid1\\)$" "it names the node and its uuid"
like "$out" '^  cluster: +test$' "... its cluster"
like "$out" "^  address: +$addr1$" "... its address"
like "$out" '^  failure domain: +rack1$' "... its failure domain"
like "$out" '^  state in meta: +up$' "... its state in the cluster map"
like "$out" '^DISK +PATH +IO +CAPACITY +USED +VOLUMES +CHUNKS +NOTE' "... and a disk table"
like "$out" "^ +0 +$dir1 +(io_uring|threads) " "the disk shows its io backend"

run --json node status "$addr2"
is "$rc" 0 "node status HOST:PORT --json exits 0"
is "$(json_get 'd["nid"]')" "$nid2" "the JSON names the node's nid"
is "$(json_get 'd["failure_domain"] + " " + d["cluster"] + " " + d["state"]')" "rack2 test up" \
    "... its failure domain, cluster and state"
is "$(json_get 'd["disks"][0]["path"]')" "$dir2" "... and its disk"
is "$(json_get 'd["disks"][0]["io_backend"] in ("io_uring", "threads") and d["disks"][0]["capacity_bytes"] > 0')" \
    True "... with a backend and a capacity"

# By address, meta is not needed.
meta=$LODE_META
LODE_META=
run node status "$addr1"
is "$rc" 0 "node status HOST:PORT works without --meta"
run node list
is "$rc" 2 "node list without --meta exits 2"
like "$err" "--meta.*LODE_META" "... naming the flag and the variable"
run node status "$nid1"
is "$rc" 2 "node status NID without --meta exits 2"
LODE_META=$meta

run node status 999999
is "$rc" 1 "node status of an unknown nid exits 1"
like "$err" "node 999999: no such node" "... saying there is no such node"
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print("127.0.0.1:%d" % s.getsockname()[1]); s.close()')
run --timeout 1s node status "$dead"
is "$rc" 3 "node status of an unreachable address exits 3"
run node status not-an-address
is "$rc" 2 "node status of neither a nid nor an address exits 2"

# ---- data on node 2, then inspect ----
"$HELPER" put "$addr2" 6 100000 >"$tmp/ids" 2>"$tmp/put.err"
ok $? "six chunks put on node 2"
[ -s "$tmp/put.err" ] && diag "$(cat "$tmp/put.err")"
"$HELPER" put "$addr1" 2 3000 >/dev/null 2>"$tmp/put.err"
ok $? "two chunks put on node 1"

# A running node's directory: read without disturbing it (the LOCK is only looked at).
run inspect node-dir "$dir1" --verify
is "$rc" 0 "inspect of a running node's directory exits 0"
like "$out" "^lock: held by process $pid1 " "... and says the node holds the lock"
run node status "$nid1"
is "$rc" 0 "the node still answers after being inspected"

kill -TERM "$pid2"
i=0
while kill -0 "$pid2" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
ok "$(kill -0 "$pid2" 2>/dev/null && echo 1 || echo 0)" "node 2 stopped"

run inspect node-dir "$dir2" --verify
is "$rc" 0 "inspect --verify of the stopped node's directory exits 0"
like "$out" '^superblock: ok$' "the superblock is ok"
like "$out" '^lock: not held$' "nobody holds the lock"
like "$out" '6 live chunks \(600000 bytes\), 6 chunks verified \(0 corrupt\); 0 errors' \
    "six live chunks, all verified"

run --json inspect node-dir "$dir2" --records
is "$rc" 0 "inspect --json --records exits 0"
is "$(json_get 'd["consistent"] and d["superblock"]["cluster"] == "test"')" True \
    "the JSON says consistent, cluster test"
is "$(json_get 'sorted(r["chunk_id"] for r in d["records"] if r["type"] == "chunk" and r["state"] == "live")')" \
    "$(python3 -c 'import sys; print(sorted(l.strip() for l in open(sys.argv[1]) if l.strip()))' "$tmp/ids")" \
    "the live chunk records are exactly the chunks put"

# Flip one byte in the middle of the third chunk's data.
vol=$(json_get '[r for r in d["records"] if r["type"] == "chunk"][2]["volume"]')
off=$(json_get '[r for r in d["records"] if r["type"] == "chunk"][2]["offset"]')
python3 - "$dir2" "$vol" "$off" <<'EOF'
import sys
d, vol, off = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n_sums = (100000 + 65535) // 65536
pos = off + 64 + 8 * n_sums + 50000
with open("%s/volumes/%08d.vol" % (d, vol), "r+b") as f:
    f.seek(pos)
    b = f.read(1)
    f.seek(pos)
    f.write(bytes([b[0] ^ 0x01]))
EOF
ok $? "flipped a data byte of the chunk record at volume $vol offset $off"

run inspect node-dir "$dir2"
is "$rc" 0 "without --verify the flip is not seen (headers intact): exit 0"
run inspect node-dir "$dir2" --verify
is "$rc" 1 "inspect --verify after the flip exits 1"
vol8=$(printf '%08d' "$vol")
like "$out" "error: volume $vol8 offset $off: chunk [0-9a-f]{32}: 1 of 2 data blocks fail" \
    "... naming the volume, the offset and the damage"
like "$out" "INCONSISTENT" "... and the summary says inconsistent"
like "$err" "1 error found" "... and stderr says so"
run --json inspect node-dir "$dir2" --verify
is "$(json_get 'd["consistent"], d["summary"]["corrupt_chunks"], [(p["volume"], p["offset"]) for p in d["problems"] if p["severity"] == "error"]')" \
    "False 1 [($vol, $off)]" "the JSON has the one error at its volume and offset"

# ---- paths that cannot be read ----
run inspect node-dir "$tmp/does-not-exist"
is "$rc" 3 "inspect of a nonexistent path exits 3"
like "$err" "does-not-exist: No such file or directory" "... and says so"
run inspect node-dir "$tmp/env"
is "$rc" 3 "inspect of a file that is not a directory exits 3"
mkdir "$tmp/empty"
run inspect node-dir "$tmp/empty"
is "$rc" 1 "inspect of a directory without a superblock exits 1"
like "$out" "no superblock" "... saying there is no superblock"
run inspect node-dir
is "$rc" 2 "inspect without a path exits 2"
run inspect node-dir "$dir2" --frobnicate
is "$rc" 2 "an unknown inspect option exits 2"
# Offline: no address, no secret needed.
LODE_META=
LODE_SECRET_FILE=
run inspect node-dir "$dir1"
is "$rc" 0 "inspect needs neither --meta nor a secret"

tap_done
