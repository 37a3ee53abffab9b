#!/usr/bin/env bash
# The console's development tooling from console/package-lock.json: axe-core for the browser
# tests' accessibility check (tests/browser) and prettier for formatting console/. `npm ci`
# installs exactly the locked versions, checked against the lockfile's integrity hashes; the
# console itself loads nothing from node_modules. Does nothing when that install is newer than
# the lockfile.
set -euo pipefail
cd "$(dirname "$0")/../../console"

if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ] &&
  [ -f node_modules/axe-core/axe.min.js ]; then
  exit 0
fi
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
