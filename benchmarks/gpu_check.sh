#!/usr/bin/env bash
# GPU check of the mscl training pipeline: about 5 minutes on one H100 (307 s measured), installs nothing.
#
#   make install && benchmarks/gpu_check.sh [OUT_DIR]          (default OUT_DIR: ./gpu-check)
#
# Steps: a reduced paper-preset synthetic dataset; `mscl bench --preset paper` on it; a 2-epoch replay run
# over all 8 centers (timed, part by part); aggregate training patches/s of `mscl train --parallel N` for
# N = 1, 2, 4 (joint training on every center, measured while all N seeds train at once).
# Prints a summary (benchmarks/gpu_check_summary.py) and writes everything (JSON, logs, MLflow store,
# summary.txt, summary.json) to OUT_DIR.
#
# Environment (defaults in brackets), e.g. to check the plumbing on a CPU:
#   MSCL_CHECK_PRESET=tiny MSCL_CHECK_DEVICE=cpu MSCL_CHECK_PARALLEL="1 2" benchmarks/gpu_check.sh /tmp/check
#   MSCL_CHECK_PRESET  [paper]    preset of data, model and training
#   MSCL_CHECK_SCALE   [0.1]      share of the paper's subjects in the synthetic dataset
#   MSCL_CHECK_DEVICE  [auto]     training device
#   MSCL_CHECK_PARALLEL ["1 2 4"] worker counts of the parallel measurement
#   MSCL_CHECK_EPOCHS  [2]        epochs per stage of the timed replay run
#   MSCL_CHECK_STEPS   [200]      timed training steps of each bench figure
#   MSCL_CHECK_PARALLEL_EPOCHS [100] epochs of each seed of the parallel measurement
#   MSCL               [.venv/bin/mscl, else mscl on PATH]
set -euo pipefail

OUT="${1:-./gpu-check}"
PRESET="${MSCL_CHECK_PRESET:-paper}"
SCALE="${MSCL_CHECK_SCALE:-0.1}"
DEVICE="${MSCL_CHECK_DEVICE:-auto}"
PARALLEL="${MSCL_CHECK_PARALLEL:-1 2 4}"
EPOCHS="${MSCL_CHECK_EPOCHS:-2}"
STEPS="${MSCL_CHECK_STEPS:-200}"
PARALLEL_EPOCHS="${MSCL_CHECK_PARALLEL_EPOCHS:-100}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${MSCL:-}" ]]; then
  if [[ -x "$HERE/.venv/bin/mscl" ]]; then MSCL="$HERE/.venv/bin/mscl"; else MSCL="mscl"; fi
fi
PYTHON="$(dirname "$(command -v "$MSCL")")/python"
[[ -x "$PYTHON" ]] || PYTHON=python3

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
DATA="$OUT/data"
URI="sqlite:///$OUT/mlflow.db"
COMMON=(--preset "$PRESET" --set "synthetic.count_scale=$SCALE")
echo "mscl GPU check: preset $PRESET, subjects x$SCALE, device $DEVICE -> $OUT"
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")' | tee "$OUT/environment.txt"

seconds() { "$PYTHON" -c 'import time; print(f"{time.time():.3f}")'; }

step() { echo; echo "== $*"; }

step "1/4 synthetic dataset"
if [[ ! -f "$DATA/dataset.json" ]]; then
  t0=$(seconds)
  "$MSCL" prepare --synthetic "${COMMON[@]}" --out "$DATA" --workers "$(nproc)" --quiet 2>&1 | tee "$OUT/prepare.log"
  echo "prepared in $("$PYTHON" -c "print(round($(seconds) - $t0, 1))") s"
else
  echo "reusing $DATA"
fi

step "2/4 mscl bench"
"$MSCL" bench "${COMMON[@]}" --data "$DATA" --device "$DEVICE" --steps "$STEPS" --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log"

step "3/4 replay run, $EPOCHS epochs per stage"
t0=$(seconds)
"$MSCL" train --data "$DATA" "${COMMON[@]}" --strategy replay --seed-list 0 --max-epochs "$EPOCHS" \
  --device "$DEVICE" --tracking-uri "$URI" --experiment gpu-check-replay --quiet 2>&1 | tee "$OUT/replay.log"
echo "replay run: $("$PYTHON" -c "print(round($(seconds) - $t0, 1))") s wall"

step "4/4 parallel seeds: ${PARALLEL}"
: > "$OUT/parallel.tsv"
for n in $PARALLEL; do
  t0=$(seconds)
  "$MSCL" train --data "$DATA" "${COMMON[@]}" --strategy joint --seeds "$n" --parallel "$n" \
    --epochs "$PARALLEL_EPOCHS" --device "$DEVICE" --tracking-uri "$URI" --experiment "gpu-check-parallel$n" \
    --quiet 2>&1 | tee "$OUT/parallel$n.log"
  printf '%s\t%s\n' "$n" "$("$PYTHON" -c "print(round($(seconds) - $t0, 1))")" >> "$OUT/parallel.tsv"
done

step "summary"
"$PYTHON" "$HERE/benchmarks/gpu_check_summary.py" "$OUT" "$URI" | tee "$OUT/summary.txt"
