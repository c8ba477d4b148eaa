#!/bin/sh
# `cmake --install` produces the installed tree SPEC §8 promises, with the
# unit and the config location following the prefix chosen at install time,
# the man page, licence and changelog in it, and the README's install
# command putting things where its next commands expect them.
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
for f in litestream.yml runsync-litestream.service; do
    check "Litestream example $f in <prefix>/share/doc/runsync/examples" \
        test -f "$prefix/share/doc/runsync/examples/$f"
done
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

# The doc directory: the DEP-5 copyright written from the root's LICENSE (the
# Apache License 2.0 text Debian ships) and the Debian changelog of this
# version.
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
doc=$prefix/share/doc/runsync
check "LICENSE at the source root" test -s "$source_dir/LICENSE"
if [ -f /usr/share/common-licenses/Apache-2.0 ]; then
    check "LICENSE is the Apache License 2.0" cmp -s "$source_dir/LICENSE" \
        /usr/share/common-licenses/Apache-2.0
fi
check "copyright is DEP-5" grep -qx \
    'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' "$doc/copyright"
check "copyright: Files: *" grep -qx 'Files: [*]' "$doc/copyright"
check "copyright: License: Apache-2.0" grep -qx 'License: Apache-2.0' "$doc/copyright"
check "copyright points at common-licenses" grep -q '/usr/share/common-licenses/Apache-2.0' \
    "$doc/copyright"
version=$("$prefix/bin/runsync" --version | sed -n 's/^runsync //p')
check "changelog.Debian.gz: latest entry is version $version" sh -c \
    "gzip -dc '$doc/changelog.Debian.gz' | head -n1 | grep -q '^runsync ($version-[0-9a-z.+~]*) '"

# 3. The README's install command, as written: its prefix puts the unit, the
#    sysusers file and the example config where the README's next commands
#    (systemd-sysusers, cp, check-config) and the unit expect them.
readme=$source_dir/README.md
install_line=$(grep -m1 '^cmake --install build' "$readme" | sed 's/ *#.*//')
readme_prefix=$(echo "$install_line" | sed -n 's/.*--prefix \([^ ]*\).*/\1/p')
check "README installs with an explicit --prefix ($install_line)" test -n "$readme_prefix"
copy_line=$(grep -m1 '^cp [^ ]*runsync.toml.example ' "$readme" | sed 's/ *#.*//')
example_path=$(echo "$copy_line" | cut -d' ' -f2)
config_path=$(echo "$copy_line" | cut -d' ' -f3)
if [ -n "$readme_prefix" ]; then
    stage=$work/readme
    DESTDIR=$stage "${CMAKE:-cmake}" --install "$build" --prefix "$readme_prefix" \
        >"$work/install-readme.log" 2>&1 || {
        cat "$work/install-readme.log"
        echo "FAIL: DESTDIR=$stage $install_line"
        exit 1
    }
    unit=$stage$readme_prefix/lib/systemd/system/runsync.service
    check "README: the example it copies ($example_path) is installed" test -f "$stage$example_path"
    check "README: the unit reads the config it writes ($config_path)" test \
        "$(unit_value "$unit" ExecStart)" = "$readme_prefix/bin/runsync serve --config $config_path"
    check "README: check-config names that config" grep -q \
        "^runsync check-config --config $config_path\$" "$readme"
    # systemd-sysusers NAME searches /etc, /run, /usr/local/lib and /usr/lib.
    check "README: systemd-sysusers finds runsync.conf" sh -c \
        "test -f '$stage/usr/lib/sysusers.d/runsync.conf' ||
         test -f '$stage/usr/local/lib/sysusers.d/runsync.conf'"
    check "README: runsync(8) in the man path" sh -c \
        "test -f '$stage$readme_prefix/share/man/man8/runsync.8.gz'"
    # "Replicas and recovery" copies the Litestream examples from the docs.
    for example in $(sed -n 's|^cp \(/usr/share/doc/runsync/examples/[^ ]*\) .*|\1|p' "$readme"); do
        check "README: the example it copies ($example) is installed" test -f "$stage$example"
    done
fi

exit $fail
