#!/usr/bin/env bash
# Installs missing packages and builds into ./build.
# usage: build.sh [all|runsync]
#   all (default)  everything: runsync, the tests, the benchmarks, the man page
#   runsync        the runsync binary only, with only the packages it needs;
#                  a fresh build tree is configured without tests and
#                  benchmarks (an existing one keeps its choice)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
options=()
targets=()
case $what in
  all)
    scripts/deps.sh test
    options=(-DRUNSYNC_BUILD_TESTS=ON -DRUNSYNC_BUILD_BENCH=ON)
    ;;
  runsync)
    scripts/deps.sh serve
    if [ ! -f build/CMakeCache.txt ]; then
      options=(-DRUNSYNC_BUILD_TESTS=OFF -DRUNSYNC_BUILD_BENCH=OFF)
    fi
    targets=(--target runsync)
    ;;
  *)
    echo "runsync: build.sh: unknown target '$what' (all or runsync)" >&2
    exit 2
    ;;
esac
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" \
  ${options[@]+"${options[@]}"} >/dev/null
cmake --build build -j "${JOBS:-2}" ${targets[@]+"${targets[@]}"}
