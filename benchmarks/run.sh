#!/usr/bin/env bash
# Runs the kitteh_magic benchmarks: prints the table and writes benchmarks/RESULTS.md.
#   bash benchmarks/run.sh            # full run: 1 GB objects, ~6-8 min on 2 cores
#   bash benchmarks/run.sh --quick    # 128 MB objects, ~1 min
#   bash benchmarks/run.sh --only cells,fingerprint
# Installs nothing but kitteh_magic itself with its `bench` extra into .venv, and only if missing,
# and Debian's postgresql when it is missing (group team).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
if ! .venv/bin/python -c "import kitteh_magic, numpy, pandas, joblib, dill, marimo, distributed, psycopg, psycopg_pool" 2>/dev/null; then
    .venv/bin/pip install --quiet -e ".[bench]"
fi
bash scripts/install-postgresql.sh  # group team's server: a no-op when PostgreSQL is there
exec .venv/bin/python -m benchmarks "$@"
