#!/usr/bin/env bash
# Builds everything (installing what the tests need) and runs every test
# through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh all
cd build
ctest --output-on-failure -j "${JOBS:-2}" "$@"
