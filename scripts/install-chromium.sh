#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (Playwright cannot download browsers here).
# Idempotent and quiet: does nothing when /usr/bin/chromium exists.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
export DEBIAN_FRONTEND=noninteractive
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
[ -x /usr/bin/chromium ] && echo "installed $(/usr/bin/chromium --version 2>/dev/null)"
