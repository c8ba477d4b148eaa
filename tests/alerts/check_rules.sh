#!/bin/sh
# Checks the shipped Prometheus alert rules: syntax (`promtool check rules`)
# and behaviour (`promtool test rules`). Usage: check_rules.sh ALERTS_DIR
# Fails when promtool is missing: it comes with Debian's `prometheus`
# package, which scripts/deps.sh installs.
set -eu
dir=$1
if ! command -v promtool >/dev/null 2>&1; then
  echo "FAIL: promtool not installed (Debian package prometheus: scripts/deps.sh test)"
  exit 1
fi
promtool check rules "$dir/runsync-alerts.yml"
promtool test rules "$dir/runsync-alerts.test.yml"
