#!/bin/sh
# `cpack -G DEB` builds a package with the Debian layout, the man page,
# copyright and changelog, Debian's systemd and sysusers maintainer scripts
# and the example config as a conffile, which lintian passes without an
# error or a warning. Fails without dpkg-deb (dpkg) or lintian, which
# scripts/deps.sh installs.
#
# usage: check_deb.sh BUILD_DIR WORK_DIR
set -eu

build=$1
work=$2
fail=0

for tool in dpkg-deb:dpkg lintian:lintian; do
    if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
        echo "FAIL: ${tool%%:*} not installed (Debian package ${tool#*:}: scripts/deps.sh test)"
        exit 1
    fi
done

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

rm -rf "$work"
mkdir -p "$work"
if ! "${CPACK:-cpack}" --config "$build/CPackConfig.cmake" -G DEB -B "$work/out" >"$work/cpack.log" 2>&1; then
    cat "$work/cpack.log"
    echo "FAIL: cpack -G DEB"
    exit 1
fi
deb=$(find "$work/out" -maxdepth 1 -name 'runsync_*.deb' | head -n1)
if [ -z "$deb" ]; then
    cat "$work/cpack.log"
    echo "FAIL: no runsync_*.deb in $work/out"
    exit 1
fi
echo "built $deb"

dpkg-deb --contents "$deb" | awk '{ print $NF }' | sed 's|^\./|/|' >"$work/contents"
for f in /usr/bin/runsync /usr/lib/systemd/system/runsync.service \
    /usr/lib/sysusers.d/runsync.conf /etc/runsync/runsync.toml.example \
    /usr/share/man/man8/runsync.8.gz /usr/share/doc/runsync/copyright \
    /usr/share/doc/runsync/changelog.Debian.gz \
    /usr/share/doc/runsync/examples/litestream.yml \
    /usr/share/doc/runsync/examples/runsync-litestream.service; do
    check "package holds $f" grep -qx "$f" "$work/contents"
done
check "nothing in /usr/etc" sh -c "! grep -q '^/usr/etc' '$work/contents'"

dpkg-deb --field "$deb" >"$work/control"
check "Package: runsync" grep -qx 'Package: runsync' "$work/control"
check "Section: admin" grep -qx 'Section: admin' "$work/control"
check "Depends lists procps" grep -q '^Depends:.*procps' "$work/control"

mkdir -p "$work/control.d" "$work/root"
dpkg-deb --control "$deb" "$work/control.d"
for script in postinst prerm postrm; do
    check "$script is executable" test -x "$work/control.d/$script"
done
check "postinst applies sysusers" grep -q 'systemd-sysusers .*runsync.conf' \
    "$work/control.d/postinst"
check "postinst creates no user but with sysusers" sh -c \
    "! grep -Eq '^[^#]*(adduser|useradd)' '$work/control.d/postinst'"
check "postinst registers the unit with deb-systemd-helper" grep -q \
    "deb-systemd-helper update-state 'runsync.service'" "$work/control.d/postinst"
check "prerm stops through deb-systemd-invoke" grep -q \
    "deb-systemd-invoke stop 'runsync.service'" "$work/control.d/prerm"
check "postrm purges the unit's state" grep -q \
    "deb-systemd-helper purge 'runsync.service'" "$work/control.d/postrm"
check "Depends on a systemd-sysusers" grep -q '^Depends:.*systemd | systemd-standalone-sysusers' \
    "$work/control"
check "Maintainer is a real address" sh -c \
    "grep '^Maintainer: ' '$work/control' | grep -Eqv '@(localhost|example\\.)'"
check "example config is a conffile" grep -qx '/etc/runsync/runsync.toml.example' \
    "$work/control.d/conffiles"

dpkg-deb --extract "$deb" "$work/root"
check "packaged unit runs /usr/bin/runsync" grep -qx \
    'ExecStart=/usr/bin/runsync serve --config /etc/runsync/runsync.toml' \
    "$work/root/usr/lib/systemd/system/runsync.service"

# lintian: no error and no warning; no hardening tag either (those are
# informational: -I shows them).
lintian -I --tag-display-limit 0 "$deb" >"$work/lintian.log" 2>&1 || true
cat "$work/lintian.log"
check "lintian: no error, no warning" sh -c "! grep -Eq '^[EW]: ' '$work/lintian.log'"
check "lintian: hardening flags found" sh -c "! grep -q ' hardening-' '$work/lintian.log'"
check "lintian ran on the package" sh -c \
    "! grep -Eqi 'command not found|^(error|fatal)' '$work/lintian.log'"

exit $fail
