"""The MemoryBackend contract, run over every backend registered under ``mscl.memory_backends``.

A backend passes when it stores bit-identical samples with their metadata, refuses bad samples and keys,
detects corruption, survives a writer killed mid-put, keeps one writer at a time and private files. The
fixtures (``backend_name`` over every registered name, ``open_store``, ``persistent``) and the sample
helpers are usable on their own.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest

from mscl.errors import MemoryBackendError, MemoryCorrupted
from mscl.memory_backends.base import BaseBackend, MemoryBackend, SampleMeta
from mscl.memory_backends.files import lock_path
from mscl.memory_backends.registry import MEMORY_BACKENDS, open_backend

SHAPE = (6, 7, 5)
OpenStore = Callable[..., MemoryBackend]


def sample(
    seed: int = 0, shape: tuple[int, ...] = SHAPE, dtype: str = "float16"
) -> tuple[np.ndarray, np.ndarray]:
    """A random image (incompressible, unique bytes) and a soft label in [0, 1]."""
    rng = np.random.default_rng(seed)
    image = rng.normal(size=shape).astype(dtype)
    label = np.clip(rng.normal(0.2, 0.4, size=shape), 0, 1).astype(dtype)
    return image, label


def meta(center: str = "BWH", subject: str = "sub-01", reason: str = "") -> SampleMeta:
    """Metadata as a caller gives it (checksums filled by put)."""
    return SampleMeta(center=center, subject=subject, contrast="FLAIR", lesion_voxels=12, reason=reason)


@pytest.fixture(params=MEMORY_BACKENDS.names())
def backend_name(request: pytest.FixtureRequest) -> str:
    """Every registered backend: a new one gets the whole contract suite."""
    return request.param


@pytest.fixture
def store_path(backend_name: str, tmp_path: Path) -> Path:
    """Where the backend under test keeps its store."""
    return tmp_path / f"memory{getattr(MEMORY_BACKENDS.get(backend_name), 'suffix', '')}"


@pytest.fixture
def open_store(backend_name: str, store_path: Path) -> Iterator[OpenStore]:
    """Open the store under test; every store opened here is closed at teardown."""
    opened: list[MemoryBackend] = []

    def _open(mode: str = "a", compression: bool = True) -> MemoryBackend:
        store = open_backend(backend_name, store_path, mode=mode, compression=compression)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def persistent(backend_name: str) -> None:
    """Skip tests about what survives a process for backends that keep nothing on disk."""
    if not getattr(MEMORY_BACKENDS.get(backend_name), "persistent", True):
        pytest.skip(f"{backend_name}: in-process backend, nothing persists (persistence-only test)")


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_implements_protocol(open_store: OpenStore) -> None:
    assert isinstance(open_store(), MemoryBackend)


@pytest.mark.parametrize("compression", [True, False])
@pytest.mark.parametrize(
    ("dtype", "shape"), [("float16", (6, 7, 5)), ("float32", (4, 3, 2, 2)), ("uint8", (9,))]
)
def test_round_trip_is_bit_identical(
    open_store: OpenStore, dtype: str, shape: tuple, compression: bool
) -> None:
    image, label = sample(1, shape, dtype)
    image.flat[0] = -0 if dtype == "uint8" else -0.0  # negative zero must survive (no fill-value shortcut)
    empty = np.zeros(shape, dtype)  # an all-zero label (no lesion) must come back too
    store = open_store(compression=compression)
    store.put("case-1", image, label, meta())
    store.put("case-2", image, empty, meta())
    got_image, got_label, _ = store.get("case-1")
    assert _same(got_image, image) and _same(got_label, label)
    assert _same(store.get("case-2")[1], empty)


def test_metadata_is_completed_and_kept(open_store: OpenStore) -> None:
    image, label = sample()
    store = open_store()
    stored = store.put("case-1", image, label, meta(reason="random 1/20 (seed 0)"))
    assert stored.reason == "random 1/20 (seed 0)" and stored.center == "BWH"
    assert len(stored.image_sha256) == len(stored.label_sha256) == 64
    assert stored.nbytes == image.nbytes + label.nbytes
    assert stored.added is not None and stored.added.tzinfo == UTC
    assert store.get("case-1")[2] == stored == store.meta("case-1")


def test_keys_len_nbytes_and_remove(open_store: OpenStore) -> None:
    store = open_store()
    for key in ("b", "a", "c"):
        store.put(key, *sample(ord(key)), meta())
    assert store.keys() == ["a", "b", "c"] == list(store) and len(store) == 3
    assert store.nbytes == 3 * 2 * sample()[0].nbytes
    store.remove("b")
    assert store.keys() == ["a", "c"]
    with pytest.raises(MemoryBackendError, match="'b'"):
        store.get("b")
    with pytest.raises(MemoryBackendError, match="'b'"):
        store.remove("b")


def test_put_replaces_a_key(open_store: OpenStore) -> None:
    store = open_store()
    store.put("case-1", *sample(1), meta(subject="old"))
    new_image, new_label = sample(2)
    store.put("case-1", new_image, new_label, meta(subject="new"))
    image, _, stored = store.get("case-1")
    assert len(store) == 1 and _same(image, new_image) and stored.subject == "new"


@pytest.mark.parametrize(
    ("image", "label", "problem"),
    [
        (np.full(SHAPE := (3, 3, 3), np.nan, np.float32), np.zeros(SHAPE, np.float32), "NaN"),
        (np.full(SHAPE, np.inf, np.float16), np.zeros(SHAPE, np.float16), "inf"),
        (np.zeros(SHAPE, np.float16), np.zeros((3, 3, 2), np.float16), "shape"),
        (np.zeros(SHAPE, np.float16), np.full(SHAPE, 1.5, np.float16), r"\[0, 1\]"),
        (np.zeros(SHAPE, np.float16), np.full(SHAPE, -0.1, np.float16), r"\[0, 1\]"),
        ([[1.0]], np.zeros(SHAPE, np.float16), "numpy array"),
    ],
)
def test_bad_sample_is_refused_naming_the_key(open_store: OpenStore, image, label, problem: str) -> None:
    store = open_store()
    with pytest.raises(MemoryBackendError, match=rf"'bad-case'.*{problem}"):
        store.put("bad-case", image, label, meta())
    assert len(store) == 0


@pytest.mark.parametrize("key", ["", "../escape", "a/b", ".hidden", "with space"])
def test_bad_key_is_refused(open_store: OpenStore, key: str) -> None:
    with pytest.raises(MemoryBackendError, match="memory key"):
        open_store().put(key, *sample(), meta())


def test_reopen_gives_the_same_samples(open_store: OpenStore, persistent: None) -> None:
    image, label = sample(3)
    with open_store() as store:
        stored = store.put("case-1", image, label, meta())
        store.put("case-2", *sample(4), meta())
        store.remove("case-2")
    with open_store(mode="r") as store:
        got_image, got_label, got_meta = store.get("case-1")
        assert store.keys() == ["case-1"] and got_meta == stored
        assert _same(got_image, image) and _same(got_label, label)
        with pytest.raises(MemoryBackendError, match="read-only"):
            store.put("case-3", image, label, meta())


def test_flipped_byte_is_reported_as_corruption(
    open_store: OpenStore, store_path: Path, persistent: None
) -> None:
    image, label = sample(5)
    with open_store(compression=False) as store:
        store.put("victim", image, label, meta())
        store.put("bystander", *sample(6), meta())
    _flip_byte_of(store_path, image.tobytes())
    with open_store(mode="r") as store:
        with pytest.raises(MemoryCorrupted, match="'victim'"):
            store.get("victim")
        assert store.verify() == ["victim"]
        store.get("bystander")


def _flip_byte_of(store: Path, payload: bytes) -> None:
    """Flip one byte in the middle of ``payload`` wherever the (uncompressed) store keeps it."""
    files = [store] if store.is_file() else [p for p in store.rglob("*") if p.is_file()]
    for path in files:
        data = bytearray(path.read_bytes())
        at = data.find(payload)
        if at >= 0:
            data[at + len(payload) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
            return
    raise AssertionError(f"{store}: payload not found; does compression=False store raw bytes?")


_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from mscl.memory_backends.base import SampleMeta
    from mscl.memory_backends.registry import open_backend

    store = open_backend(sys.argv[1], sys.argv[2])
    meta = SampleMeta(center="BWH", subject="s", contrast="FLAIR", lesion_voxels=0)
    for i in range(2):
        store.put(f"done-{i}", np.full((8, 8, 8), i, np.float16), np.zeros((8, 8, 8), np.float16), meta)
    # die mid-put, at the storage primitive named by argv[3]
    setattr(type(store), sys.argv[3], lambda *args: os.kill(os.getpid(), signal.SIGKILL))
    store.put("interrupted", np.ones((8, 8, 8), np.float16), np.zeros((8, 8, 8), np.float16), meta)
    """
)


@pytest.mark.parametrize("primitive", ["_write", "_save_index"], ids=["writing-arrays", "committing"])
def test_writer_killed_mid_put_leaves_committed_samples(
    backend_name: str, store_path: Path, open_store: OpenStore, persistent: None, primitive: str
) -> None:
    backend = MEMORY_BACKENDS.get(backend_name)
    if not (isinstance(backend, type) and issubclass(backend, BaseBackend)):
        pytest.skip(f"{backend_name}: not built on BaseBackend, no write/commit steps to interrupt")
    command = [sys.executable, "-c", _KILLED_WRITER, backend_name, str(store_path), primitive]
    assert subprocess.run(command, timeout=60).returncode == -9
    store = open_store()  # the dead writer's lock is gone
    assert store.keys() == ["done-0", "done-1"] and store.verify() == []
    assert store.get("done-1")[0].max() == 1
    assert isinstance(store, BaseBackend) and len(store._slots()) == 2  # the interrupted put was swept
    store.put("after", *sample(), meta())
    assert len(store) == 3


def test_second_writer_is_refused_readers_allowed(open_store: OpenStore, persistent: None) -> None:
    writer = open_store()
    writer.put("case-1", *sample(), meta())
    with pytest.raises(MemoryBackendError, match="another writer"):
        open_store()
    assert open_store(mode="r").keys() == ["case-1"]
    writer.close()
    assert open_store().keys() == ["case-1"]


def test_files_are_private(open_store: OpenStore, store_path: Path, persistent: None) -> None:
    with open_store() as store:
        store.put("case-1", *sample(), meta())
        store.put("case-2", *sample(2), meta())
        store.remove("case-2")
    paths = [store_path, lock_path(store_path), *(store_path.rglob("*") if store_path.is_dir() else [])]
    modes = {p.relative_to(store_path.parent).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in paths}
    expected = {name: 0o700 if (store_path.parent / name).is_dir() else 0o600 for name in modes}
    assert modes == expected


def test_opening_a_missing_store_read_only_fails(open_store: OpenStore, persistent: None) -> None:
    with pytest.raises(MemoryBackendError, match="no replay memory"):
        open_store(mode="r")


def test_unwritable_location_is_a_clear_error(backend_name: str, tmp_path: Path, persistent: None) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(MemoryBackendError, match="a-file"):
        open_backend(backend_name, blocker / "memory")


def test_foreign_path_is_refused(backend_name: str, tmp_path: Path, persistent: None) -> None:
    foreign = tmp_path / f"other{getattr(MEMORY_BACKENDS.get(backend_name), 'suffix', '')}"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a memory")
    if MEMORY_BACKENDS.get(backend_name).suffix == ".h5":
        foreign = foreign / "notes.txt"
    with pytest.raises(MemoryBackendError, match="other"):
        open_backend(backend_name, foreign)
