#!/usr/bin/env bash
# Issue 19's first run on a GPU machine, under 10 minutes on one GPU: versions and providers, the
# gpu/tensorrt tests, FP32 parity with TF32 off and on, FP16/INT8 engine builds at 1x3x256x256,
# the CUDA bench rows at 480x640, a short video through derain-run per GPU backend. Every step
# writes JSON to one folder; steps whose packages (or GPU) are missing are skipped, saying so.
#
#   OUT=/tmp/out bash benchmarks/gpu_smoke.sh            # or: --out DIR
#   bash benchmarks/gpu_smoke.sh --out DIR --install     # pip install -e '.[gpu,trt]' first (PyPI needed)
#   bash benchmarks/gpu_smoke.sh --out DIR --dry-run     # print the plan, run nothing
#
# Needs torch with CUDA; this project runs from the checkout (PYTHONPATH), not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
[ -x .venv/bin/python ] && [ -z "${PY_SET:-}" ] && PY=.venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" benchmarks/gpu_smoke.py "$@"
