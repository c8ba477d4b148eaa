#!/bin/sh
# The installed unit passes `systemd-analyze verify`, scores an exposure of at
# most 2.0 with `systemd-analyze security`, does not restart after a
# configuration error, and the sysusers file creates the service user.
# Needs no running systemd, but systemd-analyze and systemd-sysusers
# (systemd), man (man-db) and /bin/kill (procps), which scripts/deps.sh
# installs: it fails without them.
#
# usage: check_unit.sh PREFIX WORK_DIR   (PREFIX as left by check_install.sh)
set -eu

prefix=$1
work=$2
max_exposure=2.0

for tool in systemd-analyze:systemd systemd-sysusers:systemd man:man-db /bin/kill:procps; do
    if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
        echo "FAIL: ${tool%%:*} not installed (Debian package ${tool#*:}: scripts/deps.sh test)"
        exit 1
    fi
done

unit=$prefix/lib/systemd/system/runsync.service
sysusers=$prefix/lib/sysusers.d/runsync.conf
fail=0
rm -rf "$work"
mkdir -p "$work"

check() {  # check DESCRIPTION COMMAND...
    what=$1
    shift
    if "$@"; then
        echo "ok:   $what"
    else
        echo "FAIL: $what"
        fail=1
    fi
}

unit_value() {  # unit_value UNIT KEY: every value of KEY=, one per line
    sed -n "s/^$2=//p" "$1"
}

# verify checks that every Exec*= binary exists: ExecStart's is the installed
# one, ExecReload's /bin/kill comes from procps.
checked=$unit

# Any complaint about our unit fails the test, even with exit status 0 (verify
# only warns about unknown or malformed settings).
# Documentation=man:runsync(8) is looked up with man, in the prefix's man pages.
if MANPATH=$prefix/share/man systemd-analyze verify --man=yes "$checked" \
    >"$work/verify.log" 2>&1; then
    verify_rc=0
else
    verify_rc=$?
fi
cat "$work/verify.log"
if [ "$verify_rc" -ne 0 ] || grep -q 'runsync\.service' "$work/verify.log"; then
    echo "FAIL: systemd-analyze verify (exit $verify_rc)"
    fail=1
else
    echo "ok:   systemd-analyze verify"
fi

if ! systemd-analyze security --offline=true "$checked" >"$work/security.log" 2>&1; then
    cat "$work/security.log"
    echo "FAIL: systemd-analyze security"
    exit 1
fi
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: *\([0-9][0-9.]*\).*/\1/p' \
    "$work/security.log")
if [ -z "$exposure" ]; then
    cat "$work/security.log"
    echo "FAIL: no 'Overall exposure level' in systemd-analyze security output"
    fail=1
elif awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
    echo "ok:   exposure $exposure <= $max_exposure"
else
    grep '✗' "$work/security.log" || true
    echo "FAIL: exposure $exposure > $max_exposure"
    fail=1
fi

# A configuration error is not retried for ever: the status the binary exits
# with on one is in RestartPreventExitStatus=, and it says why in one line,
# at error priority (<3>) when stderr is the journal.
printf '[storage]\nno_such_key = 1\n' >"$work/bad.toml"
if "$prefix/bin/runsync" serve --config "$work/bad.toml" >"$work/bad.out" 2>"$work/bad.err"; then
    config_rc=0
else
    config_rc=$?
fi
check_restart_prevented() {
    [ "$config_rc" -ne 0 ] &&
        unit_value "$unit" RestartPreventExitStatus | tr ' ' '\n' | grep -qx "$config_rc" &&
        unit_value "$unit" Restart | grep -qx on-failure
}
check "exit status $config_rc of a config error is in RestartPreventExitStatus=" \
    check_restart_prevented
check "a config error prints one line naming file:line" sh -c \
    "[ \$(wc -l <'$work/bad.err') -eq 1 ] && grep -q '^runsync: $work/bad.toml:2: ' '$work/bad.err'"
journal_stream=$(stat -c '%d:%i' "$work/bad.err")
JOURNAL_STREAM=$journal_stream "$prefix/bin/runsync" serve --config "$work/bad.toml" \
    2>"$work/bad.err" >/dev/null || true
check "under journald the config error has priority err" grep -q '^<3>runsync: ' "$work/bad.err"

# Secrets are optional: LoadCredential= must name credentials in the credential
# store (skipped when missing), never absolute paths (a missing file fails the
# unit with 243/CREDENTIALS on systemd 252).
credentials=$(sed -n 's/^LoadCredential=//p' "$unit")
if [ -n "$credentials" ] && ! echo "$credentials" | grep -q ':/'; then
    echo "ok:   LoadCredential= names store credentials: $(echo "$credentials" | tr '\n' ' ')"
else
    echo "FAIL: LoadCredential= lines: $credentials"
    fail=1
fi

# The sysusers file, applied to an empty root: a system user with its own group.
mkdir -p "$work/root/etc"
if systemd-sysusers --root="$work/root" "$sysusers" >"$work/sysusers.log" 2>&1; then
    entry=$(grep '^runsync:' "$work/root/etc/passwd" || true)
    uid=$(echo "$entry" | cut -d: -f3)
    gid=$(echo "$entry" | cut -d: -f4)
    if [ -n "$entry" ] && [ "$uid" -lt 1000 ] &&
        [ "$(echo "$entry" | cut -d: -f6-)" = "/var/lib/runsync:/usr/sbin/nologin" ] &&
        grep -q "^runsync:x:$gid:" "$work/root/etc/group"; then
        echo "ok:   sysusers creates $entry"
    else
        cat "$work/sysusers.log" "$work/root/etc/passwd" "$work/root/etc/group"
        echo "FAIL: sysusers entry '$entry'"
        fail=1
    fi
else
    cat "$work/sysusers.log"
    echo "FAIL: systemd-sysusers --root"
    fail=1
fi

exit $fail
