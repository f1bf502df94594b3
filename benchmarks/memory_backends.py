"""Put/get throughput of every registered memory backend, with and without compression (not a test).

Volumes mimic prepared cases: float16, a z-scored noisy brain ellipsoid in a zero background, a sparse soft
lesion label. Throughput counts uncompressed image + label bytes; ``get`` includes the sha256 check.
A plain numpy copy (and sha256 alone) in the same run gives the ceiling. Codec variants other than each
backend's default are tried by swapping the backend module's codec constant for the run.

    .venv/bin/python benchmarks/memory_backends.py                # quick preset sizes, ~20 cases
    .venv/bin/python benchmarks/memory_backends.py --large        # plus 1 mm sizes, a few cases
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from zarr.codecs import BloscCodec

from mscl.data.store import array_sha256
from mscl.memory_backends import hdf5 as hdf5_module
from mscl.memory_backends import zarr as zarr_module
from mscl.memory_backends.base import SampleMeta
from mscl.memory_backends.registry import MEMORY_BACKENDS, open_backend

Case = tuple[np.ndarray, np.ndarray]
SIZES = {"quick": ((60, 72, 60), 20), "1mm": ((160, 190, 160), 3)}
# name -> (backend, module, constant, value); "default" keeps the shipped codec
CODECS: dict[str, tuple[str, Any, str, Any]] = {
    "zarr blosc-lz4 shuffle": (
        "zarr",
        zarr_module,
        "CODEC",
        BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
    ),
    "zarr blosc-zstd-1 bitshuffle": (
        "zarr",
        zarr_module,
        "CODEC",
        BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle"),
    ),
    "zarr blosc-zstd-3 bitshuffle": (
        "zarr",
        zarr_module,
        "CODEC",
        BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
    ),
    "hdf5 lzf shuffle": ("hdf5", hdf5_module, "COMPRESSION", {"compression": "lzf", "shuffle": True}),
    "hdf5 gzip-4 shuffle": (
        "hdf5",
        hdf5_module,
        "COMPRESSION",
        {"compression": "gzip", "compression_opts": 4, "shuffle": True},
    ),
}


@dataclass
class Row:
    """One measured configuration."""

    size: str
    backend: str
    variant: str
    put_mb_s: float
    get_mb_s: float
    ratio: float


def make_cases(shape: tuple[int, int, int], count: int, seed: int = 0) -> list[Case]:
    """MRI-like float16 cases: noisy smooth brain in a zero background, a few soft lesions."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij"))
    radius = np.sqrt((grid**2).sum(0))
    brain = radius < 0.95
    cases = []
    for _ in range(count):
        tissue = np.sin(3 * grid[0] + rng.uniform(0, 6)) * np.cos(2 * grid[1]) + rng.normal(0, 0.3, shape)
        image = np.where(brain, tissue, 0).astype(np.float16)
        label = np.zeros(shape, np.float32)
        for center in rng.uniform(-0.5, 0.5, (6, 3)):
            distance = np.sqrt(((grid - center[:, None, None, None]) ** 2).sum(0))
            label = np.maximum(label, np.clip(1.5 - distance / 0.05, 0, 1))
        cases.append((image, label.astype(np.float16)))
    return cases


def disk_bytes(path: Path) -> int:
    """Bytes a store occupies (file or directory)."""
    return (
        path.stat().st_size
        if path.is_file()
        else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    )


@contextmanager
def swapped(module: Any, name: str, value: Any) -> Iterator[None]:
    """Temporarily replace a backend module's codec constant."""
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def time_backend(
    name: str, cases: list[Case], compression: bool, workdir: Path
) -> tuple[float, float, float]:
    """Seconds to put all cases (incl. close), seconds to reopen and get them all, compression ratio."""
    suffix = getattr(MEMORY_BACKENDS.get(name), "suffix", "")
    path = workdir / f"bench{suffix}"
    meta = SampleMeta(center="bench", subject="s", contrast="FLAIR", lesion_voxels=0)
    start = time.perf_counter()
    store = open_backend(name, path if suffix else None, compression=compression)
    for i, (image, label) in enumerate(cases):
        store.put(f"case-{i}", image, label, meta)
    if getattr(MEMORY_BACKENDS.get(name), "persistent", True):
        store.close()
        put_s = time.perf_counter() - start
        start = time.perf_counter()
        store = open_backend(name, path, mode="r")
    else:
        put_s = time.perf_counter() - start
        start = time.perf_counter()
    for key in list(store):
        store.get(key)
    get_s = time.perf_counter() - start
    store.close()
    logical = sum(image.nbytes + label.nbytes for image, label in cases)
    ratio = logical / disk_bytes(path) if path.exists() else 1.0
    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    path.parent.joinpath(f".{path.name}.lock").unlink(missing_ok=True)
    return put_s, get_s, ratio


def baselines(cases: list[Case]) -> tuple[float, float]:
    """Seconds for a plain numpy copy of every array and for sha256 of every array."""
    start = time.perf_counter()
    copies = [(image.copy(), label.copy()) for image, label in cases]
    copy_s = time.perf_counter() - start
    start = time.perf_counter()
    for image, label in copies:
        array_sha256(image), array_sha256(label)
    return copy_s, time.perf_counter() - start


def best_of(
    repeats: int, name: str, cases: list[Case], compression: bool, workdir: Path
) -> tuple[float, ...]:
    """Fastest put and get over ``repeats`` runs (the machine is shared: the minimum is the signal)."""
    runs = [time_backend(name, cases, compression, workdir) for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs), runs[0][2]


def run(sizes: list[str], workdir: Path, repeats: int) -> list[Row]:
    """Measure every backend x variant at every size."""
    rows = []
    for size in sizes:
        shape, count = SIZES[size]
        cases = make_cases(shape, count)
        megabytes = sum(image.nbytes + label.nbytes for image, label in cases) / 1e6
        copy_s, sha_s = baselines(cases)
        rows.append(Row(size, "numpy", "copy", megabytes / copy_s, megabytes / copy_s, 1.0))
        rows.append(Row(size, "sha256", "checksum only", megabytes / sha_s, megabytes / sha_s, 1.0))
        for name in MEMORY_BACKENDS.names():
            persistent = getattr(MEMORY_BACKENDS.get(name), "persistent", True)
            for compression in (False, True) if persistent else (False,):
                put_s, get_s, ratio = best_of(repeats, name, cases, compression, workdir)
                variant = "default codec" if compression else "uncompressed" if persistent else "in memory"
                rows.append(Row(size, name, variant, megabytes / put_s, megabytes / get_s, ratio))
        for variant, (name, module, constant, value) in CODECS.items():
            with swapped(module, constant, value):
                put_s, get_s, ratio = best_of(repeats, name, cases, True, workdir)
            rows.append(Row(size, name, variant, megabytes / put_s, megabytes / get_s, ratio))
    return rows


def main() -> None:
    """Parse arguments, run, print a table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also 1 mm volumes (160x190x160, 3 cases)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/memory_backends.json"))
    parser.add_argument("--workdir", type=Path, default=None, help="where stores are written (default: tmp)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration; the fastest counts")
    args = parser.parse_args()
    sizes = ["quick", "1mm"] if args.large else ["quick"]
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        rows = run(sizes, Path(tmp), args.repeats)
    table = Table(title="memory backends: MB/s of uncompressed image+label bytes (get verifies sha256)")
    for column in ("size", "backend", "variant", "put MB/s", "get MB/s", "ratio"):
        table.add_column(column, justify="right" if "/" in column or column == "ratio" else "left")
    for row in rows:
        table.add_row(
            row.size,
            row.backend,
            row.variant,
            f"{row.put_mb_s:.0f}",
            f"{row.get_mb_s:.0f}",
            f"{row.ratio:.2f}",
        )
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
    }
    args.out.write_text(json.dumps({"machine": machine, "rows": [asdict(row) for row in rows]}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
