#!/usr/bin/env bash
# Installs everything the tests need and runs the whole suite: lint, types, unit, kernel and
# browser tests. Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
export PATH="$PWD/.venv/bin:$PATH"
pip install --quiet --upgrade pip
pip install --quiet -e ".[test,lab,browser]"

if [ -f scripts/install-chromium.sh ]; then bash scripts/install-chromium.sh; fi
if [ -f scripts/build-labextension.sh ]; then bash scripts/build-labextension.sh --check; fi

ruff check kitteh_magic tests benchmarks notebooks
mypy
pytest "$@"
