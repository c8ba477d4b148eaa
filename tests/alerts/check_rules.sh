#!/bin/sh
# Checks the shipped Prometheus alert rules: syntax (`promtool check rules`)
# and behaviour (`promtool test rules`). Usage: check_rules.sh ALERTS_DIR
# Exit 77 (skipped) when promtool is not installed (Debian package
# `prometheus`).
set -eu
dir=$1
if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool not found (apt install prometheus); skipping"
  exit 77
fi
promtool check rules "$dir/runsync-alerts.yml"
promtool test rules "$dir/runsync-alerts.test.yml"
