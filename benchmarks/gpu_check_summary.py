"""Summary of ``benchmarks/gpu_check.sh``: bench figures, the short replay run against them, seed scaling.

    python benchmarks/gpu_check_summary.py OUT_DIR TRACKING_URI

Reads ``OUT_DIR/bench.json``, ``OUT_DIR/parallel.tsv`` and the MLflow runs the check logged, prints the
figures and writes them to ``OUT_DIR/summary.json``. The short replay run backs the paper projection: its
training patches/s and evaluation volumes/s are measured inside a real study (every stage, memory included)
and set beside the rates ``mscl bench`` measured in isolation; its stage time is set beside the time the
projection formula gives for the same run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from mscl.tracking.checkpoints import per_case_scores

PARTS = ("load", "cache", "train", "evaluate", "memory")


def experiment_runs(client: MlflowClient, experiment: str) -> list[Run]:
    """Every run of an experiment."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"experiment {experiment!r} not found in the tracking store")
    return client.search_runs([found.experiment_id], max_results=1000)


def stage_runs(client: MlflowClient, experiment: str) -> list[Run]:
    """The nested stage runs of an experiment's study runs."""
    return [run for run in experiment_runs(client, experiment) if "mlflow.parentRunId" in run.data.tags]


def epoch_spans(client: MlflowClient, run_id: str) -> list[tuple[float, float, float]]:
    """``(start, end, patches)`` of every epoch of a stage run, in seconds since the epoch of time.

    An epoch ends when its metrics were logged; it started ``train/seconds`` before.
    """
    seconds = {m.step: m for m in client.get_metric_history(run_id, "train/seconds")}
    rates = {m.step: m.value for m in client.get_metric_history(run_id, "train/patches_per_s")}
    spans = []
    for step, metric in sorted(seconds.items()):
        end = metric.timestamp / 1000
        spans.append((end - metric.value, end, metric.value * rates[step]))
    return spans


def replay_figures(client: MlflowClient, bench: dict) -> dict:
    """Where the short replay run's time went, and how it compares with the bench and the projection."""
    runs = experiment_runs(client, "gpu-check-replay")
    stages = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    parent = next(run for run in runs if "mlflow.parentRunId" not in run.data.tags)
    parts = {part: sum(run.data.metrics.get(f"time/{part}_s", 0.0) for run in stages) for part in PARTS}
    spans = [epoch_spans(client, run.info.run_id) for run in stages]
    warm = [span for run in spans for span in run[1:]]  # each stage's first epoch carries cuDNN autotuning
    train_rate = sum(patches for _, _, patches in warm) / sum(end - start for start, end, _ in warm)
    per_case = per_case_scores(client, stages[0])
    test_cases = sum(len(cases) for cases in next(iter(per_case.values())).values())
    eval_rate = len(stages) * test_cases / parts["evaluate"]
    all_patches = sum(patches for run in spans for _, _, patches in run)
    training = bench["training"]
    projected = all_patches / training["end_to_end_patches_per_s"]
    projected += len(stages) * test_cases / bench["inference_volumes_per_s"]
    measured = sum(parts.values())
    return {
        "stages": len(stages),
        "wall_s": parent.data.metrics["wall_time_s"],
        "seconds_by_part": parts,
        "train_patches_per_s_after_warmup": train_rate,
        "train_vs_bench": train_rate / training["end_to_end_patches_per_s"],
        "evaluation_volumes_per_s": eval_rate,
        "evaluation_vs_bench": eval_rate / bench["inference_volumes_per_s"],
        "stage_seconds": measured,
        "projected_stage_seconds": projected,
        "measured_over_projected": measured / projected,
    }


def concurrent_rate(runs: list[list[tuple[float, float, float]]]) -> tuple[float, float]:
    """Patches/s of all seeds together while every one of them trains, and that window's length in s.

    The window runs from the latest first warm epoch (cuDNN autotuning done) to the earliest last epoch
    end; only epochs wholly inside it count, over the time they span.
    """
    begin = max(spans[1][0] for spans in runs)
    end = min(spans[-1][1] for spans in runs)
    inside = [span for spans in runs for span in spans if span[0] >= begin and span[1] <= end]
    if not inside:
        return float("nan"), max(0.0, end - begin)
    return sum(patches for _, _, patches in inside) / (end - begin), end - begin


def parallel_figures(client: MlflowClient, table: Path) -> list[dict]:
    """Aggregate training patches/s of ``--parallel N`` while its N seeds train at the same time."""
    rows = []
    for line in table.read_text().splitlines():
        workers, wall = line.split("\t")
        stages = stage_runs(client, f"gpu-check-parallel{workers}")
        rate, window = concurrent_rate([epoch_spans(client, run.info.run_id) for run in stages])
        rows.append(
            {
                "workers": int(workers),
                "seeds": len(stages),
                "aggregate_patches_per_s": rate,
                "concurrent_window_s": window,
                "wall_s": float(wall),
            }
        )
    return rows


def main(out: Path, uri: str) -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    bench = json.loads((out / "bench.json").read_text())
    client = MlflowClient(uri)
    replay = replay_figures(client, bench)
    parallel = parallel_figures(client, out / "parallel.tsv")
    training, projection = bench["training"], bench["projection"]
    target, environment = bench["target"], bench["environment"]
    lines = [
        f"device                        {environment['device_name']} (torch {environment['torch']})",
        f"model only                    {training['model_only_patches_per_s']:10.1f} patches/s",
        f"end to end                    {training['end_to_end_patches_per_s']:10.1f} patches/s",
        f"ratio                         {bench['ratio']:10.3f}  (target >= {target['ratio']}: "
        f"{'pass' if target['passed'] else 'FAIL'})",
        f"inference                     {bench['inference_volumes_per_s']:10.2f} volumes/s",
        f"projected paper replay run    {projection['total_s'] / 60:10.1f} min  ({projection['patches']:,} "
        f"patches, {projection['evaluations']} x {projection['test_cases']} test volumes)",
        f"short replay run, {replay['stages']} stages   {replay['stage_seconds']:10.1f} s in stages, "
        f"{replay['projected_stage_seconds']:.1f} s projected (x{replay['measured_over_projected']:.2f})",
        f"  study run wall time         {replay['wall_s']:10.1f} s  (stages, baseline evaluation, tracking)",
        "  seconds by part             "
        + ", ".join(f"{part} {seconds:.1f}" for part, seconds in replay["seconds_by_part"].items()),
        f"  training in the study       {replay['train_patches_per_s_after_warmup']:10.1f} patches/s "
        f"(x{replay['train_vs_bench']:.2f} of bench)",
        f"  evaluation in the study     {replay['evaluation_volumes_per_s']:10.2f} volumes/s "
        f"(x{replay['evaluation_vs_bench']:.2f} of bench)",
    ]
    single = next((row["aggregate_patches_per_s"] for row in parallel if row["workers"] == 1), None)
    for row in parallel:
        speedup = f", x{row['aggregate_patches_per_s'] / single:.2f} of 1 worker" if single else ""
        lines.append(
            f"--parallel {row['workers']}: aggregate      {row['aggregate_patches_per_s']:10.1f} patches/s "
            f"({row['seeds']} seeds together for {row['concurrent_window_s']:.0f} s, "
            f"{row['wall_s']:.0f} s wall{speedup})"
        )
    print("\n".join(lines))
    summary = {"bench": bench, "replay": replay, "parallel": parallel}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
