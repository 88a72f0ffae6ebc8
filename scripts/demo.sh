#!/usr/bin/env bash
# Installs kitteh_magic and shows what it does, headless:
#   1. a notebook's first run executes every step;
#   2. a second run, in a new kernel, replays every step from the store;
#   3. a cell whose kernel dies after 3 of 5 slow "API calls" is resumed by the runner, and the
#      3 finished calls come from the journal instead of being made again.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
export PATH="$PWD/.venv/bin:$PATH"
pip install --quiet --upgrade pip
SKIP_JUPYTER_BUILDER=1 pip install --quiet -e ".[demo]"  # uses the committed extension build

rm -rf notebooks/.kitteh
echo "== 1. first run of notebooks/demo.ipynb: every step executes"
kitteh-magic run notebooks/demo.ipynb -o notebooks/demo.out.ipynb
echo
echo "== 2. second run, in a new kernel: every step replays"
kitteh-magic run notebooks/demo.ipynb -o notebooks/demo.out.ipynb
echo
kitteh-magic status notebooks/demo.ipynb
echo
echo "== 3. notebooks/resume_demo.ipynb: the kernel dies after 3 of 5 slow calls; the run resumes"
kitteh-magic run notebooks/resume_demo.ipynb -o notebooks/resume_demo.out.ipynb --max-restarts 1
python - <<'PY'
import nbformat
cells = nbformat.read("notebooks/resume_demo.out.ipynb", as_version=4).cells
for output in cells[2].outputs + cells[3].outputs:
    print((output.get("text") or output.get("data", {}).get("text/plain", "")).rstrip())
PY
echo
echo "Open the notebooks in JupyterLab to try it live: .venv/bin/jupyter lab notebooks/"
