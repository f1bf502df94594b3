#!/usr/bin/env bash
# Every continual-learning method on the same hospitals, seeds and order, then one report per experiment.
#
#   bash benchmarks/compare_strategies.sh [OUT]        # SEEDS="0 1 2" PRESET=quick by default
#   EXPERIMENTS="replay-lwf" bash benchmarks/compare_strategies.sh OUT   # only these experiments
#
# Strategies with distinct names share the experiment "methods"; each replay policy (and replay + LwF) gets
# an experiment of its own, since a report groups runs by strategy name. Results: OUT/report-*/summary_*.csv
# and OUT/report-*/report.md, and OUT/timings.tsv (wall seconds per run).
set -euo pipefail
OUT=${1:-compare}
SEEDS=${SEEDS:-"0 1 2"}
PRESET=${PRESET:-quick}
MSCL=${MSCL:-.venv/bin/mscl}
ALL="methods replay-lesion-stratified replay-reservoir replay-lwf"
EXPERIMENTS=${EXPERIMENTS:-$ALL}
URI="sqlite:///$(realpath -m "$OUT")/mlflow.db"
mkdir -p "$OUT"
[ -d "$OUT/data" ] || $MSCL prepare --synthetic --preset "$PRESET" --out "$OUT/data" --workers 2 --quiet

run() {  # experiment, then mscl train arguments
  local experiment=$1; shift
  [[ " $EXPERIMENTS " == *" $experiment "* ]] || return 0
  for seed in $SEEDS; do
    local began=$SECONDS
    $MSCL train --data "$OUT/data" --preset "$PRESET" --seed-list "$seed" --tracking-uri "$URI" \
      --experiment "$experiment" --set "train.checkpoint_dir=$OUT/checkpoints" --quiet "$@"
    printf '%s\t%s\t%s\t%s\n' "$experiment" "$*" "$seed" "$((SECONDS - began))" >> "$OUT/timings.tsv"
  done
}

run methods --strategy finetune
run methods --strategy ewc
run methods --strategy mas
run methods --strategy lwf
run methods --strategy replay
run methods --strategy joint
run replay-lesion-stratified --strategy replay --set memory.selection=lesion_stratified
run replay-reservoir --strategy replay --set memory.selection=reservoir --set memory.capacity=40
run replay-lwf --strategy replay --set 'strategy.lwf={weight: 1.0}'
run methods --strategy cumulative

for experiment in $EXPERIMENTS; do
  $MSCL report --experiment "$experiment" --tracking-uri "$URI" --out "$OUT/report-$experiment"
done
