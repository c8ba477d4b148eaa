#!/usr/bin/env bash
# Builds the runsync binary (only it, with only the packages it needs) and
# runs `runsync serve` on its embedded defaults (database ./runsync.db,
# webhooks on 127.0.0.1:8080, no polling).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh runsync
exec build/runsync serve "$@"
