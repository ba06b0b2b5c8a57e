#!/usr/bin/env bash
# Issue 13's recipe on one GPU, inside a 10-minute device slot: resume the committed run (or start
# it), train on CUDA with bf16 autocast and data-loading workers until 9 minutes have passed, then
# stop with SIGINT (the trainer saves an exact checkpoint) and copy checkpoint, logs and weights to
# $OUT for validation on the CPU machine (benchmarks/validate_default.py).
#
#   OUT=/tmp/out bash benchmarks/gpu_train.sh [--dry-run]
#
# Needs on the GPU machine: torch with CUDA, and this project's light dependencies (numpy, opencv,
# safetensors, click, pyyaml, tqdm); the recipe's data under ../shared/data (or DATA=path).
# The batch grows to 64 and the learning rate stays the recipe's (the milestones are shares of
# train.iterations, so the schedule is unchanged); say so when recording the run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu_train}
SECONDS_BUDGET=${SECONDS_BUDGET:-540}
RUN=${RUN:-runs/v2}
PY=${PY:-python3}
CMD=("$PY" -m trainer.cli trainer/configs/default_v2.toml
     --set train.device=cuda --set train.workers="$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))"
     --set train.batch=64 --set train.out="$RUN" --set train.log_every=50)
[ -f "$RUN/checkpoint.pt" ] && CMD+=(--resume)
if [ "${1:-}" = "--dry-run" ]; then
  echo "would run: timeout -s INT $SECONDS_BUDGET ${CMD[*]}"
  echo "would copy: $RUN/{checkpoint.pt,log.csv,val.csv,*.safetensors,*.card.json} -> $OUT/"
  exit 0
fi
mkdir -p "$OUT"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.__version__, torch.cuda.get_device_name(0))" | tee "$OUT/versions.txt"
set +e
timeout -s INT "$SECONDS_BUDGET" "${CMD[@]}" 2>&1 | tee "$OUT/train.log"
set -e
cp -f "$RUN"/checkpoint.pt "$RUN"/log.csv "$OUT"/ 2>/dev/null || true
cp -f "$RUN"/val.csv "$RUN"/*.safetensors "$RUN"/*.card.json "$OUT"/ 2>/dev/null || true
ls -la "$OUT"
