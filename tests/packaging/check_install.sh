#!/bin/sh
# `cmake --install` produces the installed tree SPEC §8 promises, with the
# unit and the config location following the prefix chosen at install time.
#
# usage: check_install.sh BUILD_DIR WORK_DIR
# Leaves WORK_DIR/prefix installed (check_unit.sh runs on it).
set -eu

build=$1
work=$2
fail=0

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

rm -rf "$work"
mkdir -p "$work"

# 1. An arbitrary prefix: everything under it, config in <prefix>/etc.
prefix=$work/prefix
"${CMAKE:-cmake}" --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || {
    cat "$work/install.log"
    echo "FAIL: cmake --install --prefix $prefix"
    exit 1
}
unit=$prefix/lib/systemd/system/runsync.service
check "bin/runsync is executable" test -x "$prefix/bin/runsync"
check "unit installed" test -f "$unit"
check "sysusers installed" test -f "$prefix/lib/sysusers.d/runsync.conf"
check "example config in <prefix>/etc/runsync" test -f "$prefix/etc/runsync/runsync.toml.example"
check "no @VAR@ left in the unit" sh -c "! grep -q '@[A-Z_]*@' '$unit'"
check "ExecStart runs the prefix's binary with the prefix's config" test \
    "$(unit_value "$unit" ExecStart)" = \
    "$prefix/bin/runsync serve --config $prefix/etc/runsync/runsync.toml"

# The example config is valid as shipped, and documents every key the
# effective config has (commented out or not).
example=$prefix/etc/runsync/runsync.toml.example
if "$prefix/bin/runsync" check-config --config "$example" >"$work/check-config.out" 2>&1; then
    echo "ok:   runsync check-config accepts the example"
    # shellcheck disable=SC2013 # keys are single words
    for key in $(sed -n 's/^\([a-z_]*\) = .*/\1/p' "$work/check-config.out" | sort -u); do
        check "example documents '$key'" grep -Eq "^(# ?)?$key = " "$example"
    done
else
    cat "$work/check-config.out"
    echo "FAIL: runsync check-config --config $example"
    fail=1
fi

# 2. Prefix /usr, staged with DESTDIR as a package build does: Debian layout,
#    configuration in /etc rather than /usr/etc.
stage=$work/destdir
DESTDIR=$stage "${CMAKE:-cmake}" --install "$build" --prefix /usr >"$work/install-usr.log" 2>&1 || {
    cat "$work/install-usr.log"
    echo "FAIL: DESTDIR=$stage cmake --install --prefix /usr"
    exit 1
}
unit=$stage/usr/lib/systemd/system/runsync.service
check "prefix /usr: bin/runsync" test -x "$stage/usr/bin/runsync"
check "prefix /usr: unit in /usr/lib/systemd/system" test -f "$unit"
check "prefix /usr: sysusers in /usr/lib/sysusers.d" test -f "$stage/usr/lib/sysusers.d/runsync.conf"
check "prefix /usr: example config in /etc/runsync" \
    test -f "$stage/etc/runsync/runsync.toml.example"
check "prefix /usr: nothing in /usr/etc" test ! -e "$stage/usr/etc"
check "prefix /usr: ExecStart" test "$(unit_value "$unit" ExecStart)" = \
    "/usr/bin/runsync serve --config /etc/runsync/runsync.toml"

exit $fail
