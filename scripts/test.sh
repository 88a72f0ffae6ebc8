#!/usr/bin/env bash
# Installs everything the tests need and runs the whole suite: lint, types, unit, kernel and
# browser tests. Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
export PATH="$PWD/.venv/bin:$PATH"
pip install --quiet --upgrade pip
# The committed extension build is used; scripts/build-labextension.sh rebuilds it.
SKIP_JUPYTER_BUILDER=1 pip install --quiet -e ".[test,lab,browser]"

bash scripts/install-chromium.sh
bash scripts/install-postgresql.sh
if [ -n "${CI:-}" ]; then
  # Prove the TypeScript still compiles, and that the committed build matches its sources.
  bash scripts/build-labextension.sh
  git diff --quiet -- kitteh_magic/labextension/source-hash.txt || {
    echo "the committed JupyterLab extension is stale: run scripts/build-labextension.sh"; exit 1; }
fi

ruff check .
mypy
# Two pytest-xdist workers (this machine's cores), each test file whole on one worker: module
# fixtures (a JupyterLab server, an executed notebook) are built once and a file's tests run in
# order. About 11 minutes instead of 20 in one process (KITTEH_MAGIC_TEST_WORKERS=0).
pytest -n "${KITTEH_MAGIC_TEST_WORKERS:-2}" --dist loadfile "$@"
