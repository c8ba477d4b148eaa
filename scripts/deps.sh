#!/usr/bin/env bash
# Installs the Debian 12 packages runsync builds with, when any is missing.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config
  libboost1.81-dev libssl-dev libsqlite3-dev libsqlitecpp-dev nlohmann-json3-dev libsimdjson-dev
  libspdlog-dev libtomlplusplus-dev libcli11-dev googletest libgtest-dev libgmock-dev
  libbenchmark-dev sqlite3 systemd
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
