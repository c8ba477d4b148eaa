#!/bin/sh
# The installed unit passes `systemd-analyze verify`, scores an exposure of at
# most 2.0 with `systemd-analyze security`, and the sysusers file creates the
# service user. Needs no running systemd. Exits 77 (skipped) without
# systemd-analyze.
#
# usage: check_unit.sh PREFIX WORK_DIR   (PREFIX as left by check_install.sh)
set -eu

prefix=$1
work=$2
max_exposure=2.0

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIP: systemd-analyze not installed"
    exit 77
fi

unit=$prefix/lib/systemd/system/runsync.service
sysusers=$prefix/lib/sysusers.d/runsync.conf
fail=0
rm -rf "$work"
mkdir -p "$work"

# verify checks that every Exec*= binary exists: ExecStart's is the installed
# one; ExecReload's /bin/kill comes from procps, which minimal containers lack.
checked=$unit
if [ ! -x /bin/kill ]; then
    echo "note: /bin/kill missing (procps not installed); verifying with ExecReload=/bin/true"
    checked=$work/runsync.service
    sed 's|^ExecReload=/bin/kill |ExecReload=/bin/true |' "$unit" >"$checked"
fi

# Any complaint about our unit fails the test, even with exit status 0 (verify
# only warns about unknown or malformed settings).
if systemd-analyze verify "$checked" >"$work/verify.log" 2>&1; then
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
if command -v systemd-sysusers >/dev/null 2>&1; then
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
else
    echo "note: systemd-sysusers not installed; sysusers file not checked"
fi

exit $fail
