#!/usr/bin/env bash
# Install Debian's PostgreSQL for the team-store tests (tests/pgserver.py starts a throwaway
# server from its binaries; no service is enabled or used). Idempotent and quiet: does nothing
# when an initdb exists in /usr/lib/postgresql/*/bin.
set -euo pipefail
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
initdb=$(compgen -G "/usr/lib/postgresql/*/bin/initdb" | sort -V | tail -n 1) || {
  echo "apt-get installed postgresql, but no /usr/lib/postgresql/*/bin/initdb exists" >&2; exit 1; }
echo "installed PostgreSQL $("$initdb" --version | awk '{print $NF}')"
