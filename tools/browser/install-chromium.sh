#!/usr/bin/env bash
# Debian's Chromium for the console's browser tests (tests/browser, docs/console.md): Playwright
# drives it as it is (no `playwright install`, whose browser downloads this machine cannot
# reach). Does nothing when /usr/bin/chromium exists.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium
/usr/bin/chromium --version
