#!/usr/bin/env bash
# GPU check of the mscl training pipeline: about 5-8 minutes on one recent GPU, installs nothing.
#
#   make install && benchmarks/gpu_check.sh [OUT_DIR]          (default OUT_DIR: ./gpu-check)
#
# Steps: a reduced paper-preset synthetic dataset; `mscl bench --preset paper` on it; a 2-epoch replay run
# over all 8 centers (timed); aggregate training patches/s of `mscl train --parallel N` for N = 1, 2, 4.
# Prints a summary and writes everything (JSON, logs, MLflow store, summary.txt) to OUT_DIR.
#
# Environment (defaults in brackets), e.g. to check the plumbing on a CPU:
#   MSCL_CHECK_PRESET=tiny MSCL_CHECK_DEVICE=cpu MSCL_CHECK_PARALLEL="1 2" benchmarks/gpu_check.sh /tmp/check
#   MSCL_CHECK_PRESET  [paper]    preset of data, model and training
#   MSCL_CHECK_SCALE   [0.1]      share of the paper's subjects in the synthetic dataset
#   MSCL_CHECK_DEVICE  [auto]     training device
#   MSCL_CHECK_PARALLEL ["1 2 4"] worker counts of the parallel measurement
#   MSCL_CHECK_EPOCHS  [2]        epochs per stage of the timed replay run
#   MSCL               [.venv/bin/mscl, else mscl on PATH]
set -euo pipefail

OUT="${1:-./gpu-check}"
PRESET="${MSCL_CHECK_PRESET:-paper}"
SCALE="${MSCL_CHECK_SCALE:-0.1}"
DEVICE="${MSCL_CHECK_DEVICE:-auto}"
PARALLEL="${MSCL_CHECK_PARALLEL:-1 2 4}"
EPOCHS="${MSCL_CHECK_EPOCHS:-2}"
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
"$MSCL" bench "${COMMON[@]}" --data "$DATA" --device "$DEVICE" --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log"

step "3/4 replay run, $EPOCHS epochs per stage"
t0=$(seconds)
"$MSCL" train --data "$DATA" "${COMMON[@]}" --strategy replay --seed-list 0 --max-epochs "$EPOCHS" \
  --device "$DEVICE" --tracking-uri "$URI" --experiment gpu-check-replay --quiet 2>&1 | tee "$OUT/replay.log"
REPLAY_S=$("$PYTHON" -c "print(round($(seconds) - $t0, 1))")
echo "replay run: $REPLAY_S s"

step "4/4 parallel seeds: ${PARALLEL}"
: > "$OUT/parallel.tsv"
for n in $PARALLEL; do
  t0=$(seconds)
  "$MSCL" train --data "$DATA" "${COMMON[@]}" --strategy single --seeds "$n" --parallel "$n" --max-epochs 3 \
    --set 'protocol.centers=[BWH]' --device "$DEVICE" --tracking-uri "$URI" --experiment "gpu-check-parallel$n" \
    --quiet 2>&1 | tee "$OUT/parallel$n.log"
  printf '%s\t%s\n' "$n" "$("$PYTHON" -c "print(round($(seconds) - $t0, 1))")" >> "$OUT/parallel.tsv"
done

step "summary"
"$PYTHON" - "$OUT" "$URI" "$REPLAY_S" <<'PY' | tee "$OUT/summary.txt"
import json
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

out, uri, replay_s = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
bench = json.loads((out / "bench.json").read_text())
training, projection = bench["training"], bench["projection"]
print(f"device                       {bench['environment']['device_name']} (torch {bench['environment']['torch']})")
print(f"model only                   {training['model_only_patches_per_s']:10.1f} patches/s")
print(f"end to end                   {training['end_to_end_patches_per_s']:10.1f} patches/s")
print(f"ratio                        {bench['ratio']:10.3f}  (target >= {bench['target']['ratio']}: "
      f"{'pass' if bench['target']['passed'] else 'FAIL'})")
print(f"inference                    {bench['inference_volumes_per_s']:10.2f} volumes/s")
print(f"projected paper replay run   {projection['total_s'] / 60:10.1f} min  ({projection['patches']:,} patches)")
print(f"replay run, short            {replay_s:10.1f} s  (see replay.log)")
client = MlflowClient(uri)
for line in (out / "parallel.tsv").read_text().split("\n"):
    if not line:
        continue
    n, wall = line.split("\t")
    experiment = client.get_experiment_by_name(f"gpu-check-parallel{n}")
    stages = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    # epochs run concurrently across the seeds: their rates add up (epoch 0 is the warm-up)
    rates = [
        sum(m.value for m in client.get_metric_history(r.info.run_id, "train/patches_per_s") if m.step > 0)
        / max(1, sum(1 for m in client.get_metric_history(r.info.run_id, "train/patches_per_s") if m.step > 0))
        for r in stages
    ]
    print(f"--parallel {n}: aggregate     {sum(rates):10.1f} patches/s  ({len(stages)} seeds, {float(wall):.0f} s wall)")
PY
