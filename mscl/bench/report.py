"""The benchmark's result: figures, targets, projection; as a rich table and as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

# End-to-end / model-only throughput a healthy pipeline reaches, by device type.
TARGET_RATIO = {"cuda": 0.9, "cpu": 0.8}
# The (device type, preset) pairs the targets are stated for.
TARGET_SETTINGS = {"cuda": "paper", "cpu": "quick"}


@dataclass
class BenchReport:
    """Everything ``mscl bench`` measured, JSON-ready through :meth:`to_dict`.

    Attributes:
        environment: device, device name, torch and mscl versions, threads.
        settings: preset, data source, model channels, patch size, patches per step, precision, volume shape.
        training: model-only and end-to-end patches/s, cache build seconds and MB, steps and rounds.
        ratio: end-to-end / model-only patches/s.
        strategies: per strategy asked for, its end-to-end patches/s with its loss terms on and the ratio
            to the model-only step (LwF runs a second forward, EWC and MAS a penalty over the parameters).
        inference_volumes_per_s: sliding-window evaluation throughput.
        memory_mb_per_s: ``load_all`` throughput per memory backend, and ``numpy_copy`` for reference.
        projection: projected wall time of a paper-preset replay run (see :mod:`mscl.bench.projection`).
        target: the ratio target of the device type, whether the run's settings are the ones it is stated
            for, and whether the ratio meets it.
    """

    environment: dict[str, Any]
    settings: dict[str, Any]
    training: dict[str, Any]
    ratio: float
    strategies: dict[str, dict[str, float]]
    inference_volumes_per_s: float
    memory_mb_per_s: dict[str, float]
    projection: dict[str, Any]
    target: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        kind = self.environment["device"].split(":")[0]
        threshold = TARGET_RATIO.get(kind, TARGET_RATIO["cuda"])
        self.target = {
            "ratio": threshold,
            "stated_for": f"{kind} with the {TARGET_SETTINGS.get(kind, 'paper')} preset",
            "applies": self.settings["preset"] == TARGET_SETTINGS.get(kind, "paper"),
            "passed": self.ratio >= threshold,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping of every field."""
        return asdict(self)

    def write_json(self, path: Path) -> Path:
        """Write the report as indented JSON (parent folders created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    def table(self) -> Table:
        """The figures as a two-column rich table."""
        env, settings, training, projection = self.environment, self.settings, self.training, self.projection
        evaluations = projection["evaluations"]
        verdict = "pass" if self.target["passed"] else "FAIL"
        if not self.target["applies"]:
            verdict += f" (target stated for {self.target['stated_for']})"
        table = Table(title=f"mscl bench: {settings['preset']} preset on {env['device_name']}")
        run = projected_run(settings["preset"])
        table.add_column("figure")
        table.add_column("value", justify="right")
        rows = [
            ("model only", f"{training['model_only_patches_per_s']:,.1f} patches/s"),
            ("end to end", f"{training['end_to_end_patches_per_s']:,.1f} patches/s"),
            ("end to end / model only", f"{self.ratio:.3f} (target >= {self.target['ratio']}: {verdict})"),
            *(
                (
                    f"strategy {name}",
                    f"{r['end_to_end_patches_per_s']:,.1f} patches/s ({r['vs_model_only']:.3f})",
                )
                for name, r in self.strategies.items()
            ),
            (
                "stage cache build",
                f"{training['cache_build_s']:.2f} s for {training['cases']} cases, "
                f"{training['cache_mb']:,.0f} MB",
            ),
            ("evaluation", f"{self.inference_volumes_per_s:,.2f} volumes/s"),
            *((f"memory load: {name}", f"{rate:,.0f} MB/s") for name, rate in self.memory_mb_per_s.items()),
            (f"{run}: patches", f"{projection['patches']:,}"),
            (f"{run}: training", _duration(projection["train_s"])),
            (
                f"{run}: evaluation",
                f"{_duration(projection['eval_s'])} ({evaluations} x {projection['test_cases']} cases)",
            ),
            (f"{run}: total", _duration(projection["total_s"])),
        ]
        for name, value in rows:
            table.add_row(name, value)
        return table


def projected_run(preset: str) -> str:
    """What the projection rows project: always the paper run's patch and case counts, at the rates of the
    preset measured (the paper run itself only when that is the paper preset)."""
    return "paper replay run" if preset == "paper" else f"paper replay run at {preset} rates"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds / 60:,.1f} min ({seconds / 3600:,.2f} h)"
