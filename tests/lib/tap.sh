#!/bin/sh
# TAP for shell tests, the counterpart of tests/tap.h. Source it:
#   . "$LODE_SRCDIR/tests/lib/tap.sh"
#   ok "$?" "lodectl exits 0"          # a status: 0 passes
#   is "$got" "$want" "name"
#   like "$text" "pattern" "name"      # grep -E pattern on text
#   unlike "$text" "pattern" "name"
#   diag "anything"
#   tap_done                           # prints the plan; exits non-zero if anything failed
# The plan comes last ("1..N"), which Automake's TAP driver accepts.

TAP_COUNT=0
TAP_FAILED=0

diag() {
    printf '%s\n' "$*" | sed 's/^/# /'
}

# ok STATUS NAME: passes when STATUS is 0 (so `cmd; ok $? "cmd works"` reads naturally).
ok() {
    TAP_COUNT=$((TAP_COUNT + 1))
    if [ "$1" = 0 ]; then
        printf 'ok %d - %s\n' "$TAP_COUNT" "$2"
        return 0
    fi
    TAP_FAILED=$((TAP_FAILED + 1))
    printf 'not ok %d - %s\n' "$TAP_COUNT" "$2"
    return 1
}

is() {
    if [ "$1" = "$2" ]; then
        ok 0 "$3"
    else
        ok 1 "$3"
        diag "  got:  '$1'"
        diag "  want: '$2'"
        return 1
    fi
}

like() {
    if printf '%s\n' "$1" | grep -Eq -- "$2"; then
        ok 0 "$3"
    else
        ok 1 "$3"
        diag "  no match for /$2/ in:"
        diag "$1"
        return 1
    fi
}

unlike() {
    if printf '%s\n' "$1" | grep -Eq -- "$2"; then
        ok 1 "$3"
        diag "  unexpected match for /$2/ in:"
        diag "$1"
        return 1
    fi
    ok 0 "$3"
}

tap_skip_all() {
    printf '1..0 # SKIP %s\n' "$*"
    exit 0
}

tap_bail() {
    printf 'Bail out! %s\n' "$*"
    exit 99
}

tap_failed() {
    [ "$TAP_FAILED" -ne 0 ]
}

tap_done() {
    printf '1..%d\n' "$TAP_COUNT"
    if [ "$TAP_FAILED" -ne 0 ]; then
        printf '# %d of %d tests failed\n' "$TAP_FAILED" "$TAP_COUNT"
        exit 1
    fi
    exit 0
}
