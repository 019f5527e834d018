#!/usr/bin/env bash
# Set up .venv if needed (CPU torch first, so pip never pulls the CUDA build) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  # torch==2.13.0 resolves to a local CPU wheel on the project's machines; elsewhere use the CPU index.
  .venv/bin/python -m pip install -q torch==2.13.0 2>/dev/null \
    || .venv/bin/python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
# The cluster extra (dask.distributed) runs the --cluster tests; without it they are skipped, not failed.
.venv/bin/python -m pip install -q -e ".[test,cluster]" \
  || { echo "run-tests.sh: could not install the [cluster] extra; its tests will be skipped" >&2
       .venv/bin/python -m pip install -q -e ".[test]"; }
# ./run-tests.sh -x -q runs the suite; ./run-tests.sh tests/test_flow.py -q runs just that file.
for a in "$@"; do [[ $a != -* ]] && exec .venv/bin/python -m pytest "$@"; done
exec .venv/bin/python -m pytest tests "$@"
