#!/bin/sh
# The installed man page runsync(8) documents what the installed binary has:
# a subsection for every subcommand `runsync --help` lists (and theirs, such
# as `run add`), every long flag of each, and the exit status, environment,
# files and configuration sections. Renders without groff warnings (man,
# from man-db, which scripts/deps.sh installs: fails without it).
#
# usage: check_man.sh PREFIX WORK_DIR   (PREFIX as left by check_install.sh)
set -eu

prefix=$1
work=$2
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

page=$prefix/share/man/man8/runsync.8.gz
if ! gzip -t "$page" 2>/dev/null; then
    echo "FAIL: no gzip'd man page at $page"
    exit 1
fi
echo "ok:   $page installed"
# The roff source with its escapes undone, so flags read as on --help.
gzip -dc "$page" | sed 's/\\-/-/g; s/\\f[BIRP]//g' >"$work/page"

for section in NAME SYNOPSIS DESCRIPTION COMMANDS CONFIGURATION '"EXIT STATUS"' \
    ENVIRONMENT FILES '"SEE ALSO"'; do
    check "section $section" grep -qx "\.SH $section" "$work/page"
done
check "NAME line" grep -qx 'runsync - keep a local SQLite mirror of TestRail test runs' "$work/page"

# Walks the subcommands breadth-first, as the binary lists them.
runsync=$prefix/bin/runsync
echo "" >"$work/queue"
subcommands=0
while [ -s "$work/queue" ]; do
    path=$(head -n1 "$work/queue")
    sed -i 1d "$work/queue"
    # shellcheck disable=SC2086 # path is words: "run add"
    if ! "$runsync" $path --help >"$work/help" 2>&1; then
        cat "$work/help"
        echo "FAIL: runsync $path --help"
        fail=1
        continue
    fi
    if [ -n "$path" ]; then
        subcommands=$((subcommands + 1))
        check "subsection for 'runsync$path'" grep -q "^\.SS \"runsync$path " "$work/page"
        for flag in $(grep -o -- '--[a-z][a-z-]*' "$work/help" | sort -u); do
            check "'runsync$path' flag $flag" grep -q -- "$flag" "$work/page"
        done
    fi
    sed -n '/^Subcommands:$/,/^$/s/^  \([^ ][^ ]*\) .*/\1/p' "$work/help" |
        while read -r sub; do echo "$path $sub"; done >>"$work/queue"
done
check "subcommands found in --help ($subcommands)" test "$subcommands" -gt 0

if command -v man >/dev/null 2>&1; then
    LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$page" \
        >/dev/null 2>"$work/warnings" || true
    check "man renders it without warnings" test ! -s "$work/warnings"
    cat "$work/warnings"
else
    echo "FAIL: man not installed (Debian package man-db: scripts/deps.sh test)"
    fail=1
fi

exit $fail
