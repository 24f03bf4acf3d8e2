#!/usr/bin/env bash
# Installs Debian's chromium for the web chat's browser tests (Playwright drives it and downloads no browser
# of its own), or does nothing when it is already there. The first run needs root or sudo, and apt sources.
set -euo pipefail
source "$(dirname "$0")/env.sh"

if [[ -x "$SHOP_CHROMIUM" ]]; then
  exit 0
fi
if [[ $EUID -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "setup-browser: $SHOP_CHROMIUM is missing; install it as root: apt-get install chromium"
  exit 1
fi
echo "setup-browser: installing Debian's chromium for the browser tests (log: var/log/setup-browser.log)"
if ! { "${as_root[@]}" apt-get update -q && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q chromium; } > "$PROJECT_ROOT/var/log/setup-browser.log" 2>&1; then
  tail -n 20 "$PROJECT_ROOT/var/log/setup-browser.log"
  echo "setup-browser: installing chromium failed"
  exit 1
fi
echo "setup-browser: $("$SHOP_CHROMIUM" --version 2>/dev/null) ready"
