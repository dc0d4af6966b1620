#!/bin/sh
# lodectl against a real 3-replica lode-meta cluster: status (table and JSON), users,
# buckets, and the exit codes scripts rely on (0 ok, 1 refused, 2 usage, 3 unreachable).
srcdir=${LODE_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${LODE_BUILDDIR:-.}
# shellcheck source=tests/lib/tap.sh
. "$srcdir/tests/lib/tap.sh"
# shellcheck source=tests/lib/lodectl.sh
. "$srcdir/tests/lib/lodectl.sh"

lc_start test_lodectl 3

have_python=0
command -v python3 >/dev/null 2>&1 && have_python=1

# ---- meta status ----
run meta status
is "$rc" 0 "meta status exits 0"
rows=$(printf '%s\n' "$out" | grep -Ec '^ *[0-9]+ +127\.0\.0\.1:[0-9]+ +127\.0\.0\.1:[0-9]+ +(leader|follower) ')
is "$rows" 3 "meta status shows 3 replica rows"
leaders=$(printf '%s\n' "$out" | grep -Ec ' leader +[0-9]+')
is "$leaders" 1 "exactly one row is the leader"
like "$out" '^ID +RAFT-ADDRESS +RPC-ADDRESS +ROLE +TERM +COMMIT +APPLIED' "the table has its header"
like "$out" '^leader: [0-9]+ at 127\.0\.0\.1:[0-9]+$' "a summary line names the leader"

run --json meta status
is "$rc" 0 "meta status --json exits 0"
if [ $have_python = 1 ]; then
    printf '%s' "$out" | python3 -c 'import json,sys; json.load(sys.stdin)'
    ok $? "--json output parses as JSON"
    is "$(json_get 'len(d["voters"])')" 3 "the JSON lists 3 voters"
    is "$(json_get 'sum(1 for r in d["replicas"] if r["role"] == "leader")')" 1 \
        "the JSON has one leader among the replicas"
    is "$(json_get 'd["leader"]["id"] in [v["id"] for v in d["voters"]]')" True \
        "the JSON leader is one of the voters"
else
    diag "python3 not found: JSON checks skipped"
fi

# Only one address given: the others are found through the leader's voter list.
first=${LODE_META%%,*}
run --meta "$first" meta status
rows=$(printf '%s\n' "$out" | grep -Ec ' (leader|follower) ')
is "$rows" 3 "meta status finds all 3 replicas from one address"

# ---- users ----
run user create alice
is "$rc" 0 "user create alice exits 0"
secret=$(printf '%s\n' "$out" | sed -n 's/^ *secret key: *//p')
access=$(printf '%s\n' "$out" | sed -n 's/^ *access key: *//p')
ok "$([ -n "$secret" ] && [ -n "$access" ]; echo $?)" "the access key and secret are printed"
like "$out" 'shown only this once' "with a note to store the secret"

run user list
is "$rc" 0 "user list exits 0"
like "$out" "^NAME +ACCESS-KEYS +CREATED" "user list has its header"
like "$out" "^alice +$access +[0-9]{4}-" "alice is listed with her access key"
if [ -n "$secret" ]; then
    case "$out" in *"$secret"*) ok 1 "user list never shows a secret" ;;
                   *) ok 0 "user list never shows a secret" ;; esac
fi
run --json user list
case "$out" in *"$secret"*) ok 1 "user list --json never shows a secret" ;;
               *) ok 0 "user list --json never shows a secret" ;; esac
[ $have_python = 1 ] && is "$(json_get '[u["name"] for u in d["users"]]')" "['alice']" \
    "user list --json has alice"

run user create alice
is "$rc" 1 "creating alice again exits 1"
like "$err" "^lodectl: .*alice.*already exists" "... saying the user exists"

run user delete alice
is "$rc" 0 "user delete alice exits 0"
run user list
unlike "$out" "^alice " "alice is gone"
run user delete alice
is "$rc" 1 "deleting a missing user exits 1"
like "$err" "^lodectl: user 'alice'.*(does not exist|no such user)" "... with the cluster's reason"

# ---- buckets ----
run bucket list
is "$rc" 0 "bucket list exits 0"
is "$out" "NAME  OWNER  ERASURE  CREATED" "bucket list of an empty cluster is just the header"
run --json bucket list
[ $have_python = 1 ] && is "$(json_get 'd["buckets"]')" "[]" "bucket list --json: no buckets"

# ---- errors and exit codes ----
secret_file=$LODE_SECRET_FILE
LODE_SECRET_FILE=
LODE_CLUSTER_SECRET=not-the-cluster-secret-at-all
export LODE_CLUSTER_SECRET
run --timeout 2s meta status
ok "$([ "$rc" = 1 ] || [ "$rc" = 3 ]; echo $?)" "a wrong secret exits 1 or 3 (got $rc)"
like "$err" "authentication failed" "... and says authentication failed"
run --timeout 2s user list
ok "$([ "$rc" = 1 ] || [ "$rc" = 3 ]; echo $?)" "user list with a wrong secret exits 1 or 3 (got $rc)"
like "$err" "authentication failed" "... and says authentication failed"
printf 'not-the-cluster-secret-at-all\n' >"$tmp/wrong.secret"
run --secret-file "$tmp/wrong.secret" --timeout 2s bucket list
ok "$([ "$rc" = 1 ] || [ "$rc" = 3 ]; echo $?)" "--secret-file with a wrong secret exits 1 or 3"
like "$err" "authentication failed" "... and says authentication failed"
unset LODE_CLUSTER_SECRET
LODE_SECRET_FILE=$secret_file

run frobnicate
is "$rc" 2 "an unknown command exits 2"
like "$err" "unknown command 'frobnicate'" "... and names it"
run user
is "$rc" 2 "a noun without a verb exits 2"
like "$err" "usage: lodectl .*user VERB" "... and prints the usage of that noun"
run user explode
is "$rc" 2 "an unknown verb exits 2"
run user create
is "$rc" 2 "a missing argument exits 2"
like "$err" "expects NAME" "... and says what is missing"
run --bogus-flag meta status
is "$rc" 2 "an unknown option exits 2"
meta=$LODE_META
LODE_META=
run meta status
is "$rc" 2 "no --meta and no LODE_META exits 2"
like "$err" "--meta.*LODE_META" "... naming the flag and the variable"
LODE_META=$meta
LODE_SECRET_FILE=
run meta status
is "$rc" 2 "no secret exits 2"
like "$err" "--secret-file.*LODE_SECRET_FILE" "... naming the flag and the variable"
LODE_SECRET_FILE=$secret_file
run --meta "$LODE_META" --secret-file "$secret_file" bucket list
is "$rc" 0 "--meta and --secret-file work without the environment"
run --timeout soon meta status
is "$rc" 2 "a bad --timeout exits 2"

run --help
is "$rc" 0 "--help exits 0"
like "$out" "^usage: lodectl" "--help prints the usage on stdout"
run help
is "$rc" 0 "help exits 0"
run meta --help
is "$rc" 0 "meta --help exits 0"
like "$out" "add-voter ID RAFT-ADDR RPC-ADDR" "meta --help lists the meta verbs"

# Nothing listens on a freshly closed port.
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print("127.0.0.1:%d" % s.getsockname()[1]); s.close()' 2>/dev/null || echo 127.0.0.1:1)
run --meta "$dead" --timeout 1s meta status
is "$rc" 3 "meta status against an unreachable address exits 3"
like "$out" "unreachable" "... and shows the replica as unreachable"
run --meta "$dead" --timeout 1s user list
is "$rc" 3 "user list against an unreachable address exits 3"

# A follower frozen: status still works and shows it unreachable.
run meta status
follower=$(printf '%s\n' "$out" | awk '$4 == "follower" { print $1; exit }')
set -- $MC_PIDS
eval "victim=\${${follower:-3}}"
kill -STOP "$victim" 2>/dev/null
run --timeout 1s meta status
kill -CONT "$victim" 2>/dev/null
like "$out" "unreachable" "a stopped replica shows as unreachable"
ok "$([ "$rc" = 0 ]; echo $?)" "meta status still exits 0 while a leader answers (got $rc)"

# Two of three frozen: the last one answers but cannot lead; status says so with exit 1.
set -- $MC_PIDS
kill -STOP "$1" "$2" 2>/dev/null
sleep 3
run --timeout 1s meta status
kill -CONT "$1" "$2" 2>/dev/null
is "$rc" 1 "meta status with a replica reachable but no leader exits 1"
like "$out" "^leader: none" "... and says there is no leader"
like "$err" "no leader" "... on stderr too"

tap_done
