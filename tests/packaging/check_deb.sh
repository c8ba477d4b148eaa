#!/bin/sh
# `cpack -G DEB` builds a package with the Debian layout, the maintainer
# scripts and the example config as a conffile. Exits 77 (skipped) without
# dpkg-deb.
#
# usage: check_deb.sh BUILD_DIR WORK_DIR
set -eu

build=$1
work=$2
fail=0

if ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "SKIP: dpkg-deb not installed"
    exit 77
fi

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
    /usr/lib/sysusers.d/runsync.conf /etc/runsync/runsync.toml.example; do
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
check "postinst applies sysusers" grep -q 'systemd-sysusers runsync.conf' \
    "$work/control.d/postinst"
check "example config is a conffile" grep -qx '/etc/runsync/runsync.toml.example' \
    "$work/control.d/conffiles"

dpkg-deb --extract "$deb" "$work/root"
check "packaged unit runs /usr/bin/runsync" grep -qx \
    'ExecStart=/usr/bin/runsync serve --config /etc/runsync/runsync.toml' \
    "$work/root/usr/lib/systemd/system/runsync.service"

exit $fail
