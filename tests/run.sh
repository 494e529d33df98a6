#!/usr/bin/env bash
# Install mrideblur and its test dependencies into ./.venv, then run the whole test suite,
# slow end-to-end checks included.  Extra arguments go to pytest.
#   bash tests/run.sh                 # everything
#   bash tests/run.sh -m "not slow"   # the quick suite only
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch is pinned to the CPU build first: an unpinned torch pulls a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0 -e ".[dev]"
if [ "$#" -eq 0 ]; then
  set -- -m "slow or not slow"
fi
exec .venv/bin/python -m pytest "$@"
