#!/usr/bin/env bash
# Build the JupyterLab extension into kitteh_magic/labextension and stamp its source hash.
# Needs node and jlpm (from the jupyter-builder PyPI package, in the project's venv).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ -d .venv/bin ] && export PATH="$root/.venv/bin:$PATH"
python=$(command -v python || command -v python3)
cd labextension
log=$(mktemp)
# CI must build from the committed yarn.lock; a developer may be changing dependencies.
if ! jlpm install ${CI:+--immutable} >"$log" 2>&1; then
  grep -v YN0013 "$log"
  exit 1
fi
rm -f "$log"
jlpm build:prod
cd "$root"
"$python" scripts/labextension_hash.py --write >/dev/null
echo "built kitteh_magic/labextension ($(du -sh kitteh_magic/labextension | cut -f1)), stamp $(cat kitteh_magic/labextension/source-hash.txt | cut -c1-12)"
