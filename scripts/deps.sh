#!/usr/bin/env bash
# Installs the Debian 12 packages runsync builds, tests and packages with, and
# those the README's commands use, when any is missing.
set -euo pipefail
packages=(
  # build
  build-essential cmake ninja-build ccache pkg-config
  libboost1.81-dev libssl-dev libsqlite3-dev libsqlitecpp-dev nlohmann-json3-dev
  libspdlog-dev libtomlplusplus-dev libcli11-dev googletest libgtest-dev libgmock-dev
  # the man page runsync(8), generated from `runsync --help`
  help2man
  # tests: the unit (systemd-analyze, systemd-sysusers, /bin/kill of ExecReload=)
  # and the package (cpack's DEB generator needs file and dpkg-shlibdeps)
  systemd procps file dpkg-dev lintian
  # the README: sqlite3 and curl in "Try it"
  sqlite3 curl
)
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
