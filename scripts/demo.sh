#!/usr/bin/env bash
# Installs kitteh_magic and runs the demo notebook twice, headless: the first run executes every
# step, the second replays them from the store.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
export PATH="$PWD/.venv/bin:$PATH"
pip install --quiet --upgrade pip
pip install --quiet -e ".[demo]"

rm -rf notebooks/.kitteh
echo "== first run: every step executes"
kitteh-magic run notebooks/demo.ipynb -o notebooks/demo.out.ipynb
echo
echo "== second run, in a new kernel: every step replays"
kitteh-magic run notebooks/demo.ipynb -o notebooks/demo.out.ipynb
echo
kitteh-magic status notebooks/demo.ipynb
echo
echo "Open notebooks/demo.ipynb in JupyterLab (jupyter lab notebooks/demo.ipynb) to try it live."
