"""Zarr v3 stores of presets and audio embeddings, one per (synth, split).

Layout of ``<synth>/<split>.zarr``::

    presets            (N, P)  float32  preset vectors (categoricals as indices), chunks (chunk_rows, P)
    rms                (N,)    float32  RMS of the accepted render
    attempts           (N,)    uint16   rejected candidates before the accepted one
    embeddings/<key>   (N, D)  float32  one per representation, e.g. ``mel128_avg``
    chunk_done         (C,)    uint8    1 once row-chunk c is fully written (chunks of 1: one file each)
    chunk_stats        (C, F)  float64  per chunk: rejections by reason and seconds spent (CHUNK_STATS), so
                                        split statistics survive resumed and re-run shards

Rows are written one whole chunk at a time, so shard jobs that own disjoint, chunk-aligned row ranges
can run in parallel processes without locking. ``chunk_done`` is set only after a chunk's arrays are
written; an interrupted job leaves its chunk unmarked and a rerun redoes exactly the missing chunks.
The group's attributes hold everything needed to tell whether the store matches a config (the
``fingerprint``) plus metadata for readers: spec hash, seed, render and representation settings.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from synthproxy import __version__
from synthproxy.data.atomic import atomic_dir
from synthproxy.errors import StoreError

CHUNK_STATS = ("too_quiet", "too_loud", "non_finite", "render_seconds", "embed_seconds", "wall_seconds")
"""Columns of ``chunk_stats`` (NaN: the chunk was written by a version that did not record them)."""


def fingerprint(meta: dict[str, Any]) -> str:
    """Hash of the settings that determine a store's content."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StoreLayout:
    size: int
    n_params: int
    chunk_rows: int
    embedding_dims: dict[str, int]

    @property
    def n_chunks(self) -> int:
        return -(-self.size // self.chunk_rows)


def create_store(path: Path, layout: StoreLayout, meta: dict[str, Any]) -> zarr.Group:
    """Create (or keep, when it already matches ``meta``) an empty store with all arrays allocated.

    A store written with other settings is replaced: its rows would not match the config any more.
    """
    path = Path(path)
    fp = fingerprint(meta)
    if path.exists():
        try:
            existing = zarr.open_group(str(path), mode="r")
            if existing.attrs.get("fingerprint") == fp:
                root = zarr.open_group(str(path), mode="r+")
                if "chunk_stats" not in root:  # written before chunk statistics were recorded
                    _create_chunk_stats(root, layout.n_chunks)
                return root
        except Exception:  # unreadable leftovers are replaced below
            pass
        shutil.rmtree(path)
    with atomic_dir(path) as tmp:  # a store either exists whole or not at all
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        n, c = layout.size, layout.chunk_rows
        root.create_array("presets", shape=(n, layout.n_params), chunks=(c, layout.n_params), dtype="float32",
                          fill_value=np.nan)
        root.create_array("rms", shape=(n,), chunks=(c,), dtype="float32", fill_value=np.nan)
        root.create_array("attempts", shape=(n,), chunks=(c,), dtype="uint16", fill_value=0)
        emb = root.create_group("embeddings")
        for key, dim in layout.embedding_dims.items():
            emb.create_array(key, shape=(n, dim), chunks=(c, dim), dtype="float32", fill_value=np.nan)
        root.create_array("chunk_done", shape=(layout.n_chunks,), chunks=(1,), dtype="uint8", fill_value=0)
        _create_chunk_stats(root, layout.n_chunks)
        root.attrs.update({**meta, "fingerprint": fp, "synthproxy_version": __version__, "complete": False})
    return zarr.open_group(str(path), mode="r+")


def _create_chunk_stats(root: zarr.Group, n_chunks: int) -> None:
    # one row per chunk, one file per row: shard jobs write their own chunks' rows without locking
    root.create_array("chunk_stats", shape=(n_chunks, len(CHUNK_STATS)), chunks=(1, len(CHUNK_STATS)),
                      dtype="float64", fill_value=np.nan)
    root["chunk_stats"].attrs["columns"] = list(CHUNK_STATS)


def open_store(path: Path, mode: str = "r", expect_fingerprint: str | None = None) -> zarr.Group:
    """Open a store, failing clearly when it is missing or was written with other settings."""
    path = Path(path)
    if not (path / "zarr.json").exists():
        raise StoreError(f"data store not found: {path} (run the workflow's init_store step first)")
    root = zarr.open_group(str(path), mode=mode)
    if expect_fingerprint is not None and root.attrs.get("fingerprint") != expect_fingerprint:
        raise StoreError(
            f"data store {path} was written with other settings (fingerprint "
            f"{root.attrs.get('fingerprint')} != {expect_fingerprint}); rerun its init_store step"
        )
    return root


def require_embedding(root: zarr.Group, key: str, path: Path | str = "") -> zarr.Array:
    """The embedding array ``key``, or a StoreError listing the representations the store holds."""
    have = sorted(root["embeddings"].array_keys())
    if key not in have:
        raise StoreError(f"data store {path} has no embeddings '{key}'; it holds {have}")
    return root["embeddings"][key]


def chunk_ranges(start: int, stop: int, chunk_rows: int) -> list[tuple[int, int, int]]:
    """``(chunk_index, row_start, row_stop)`` for the chunks covering ``[start, stop)`` (chunk-aligned)."""
    if start % chunk_rows:
        raise StoreError(f"row range starts at {start}, not a multiple of the chunk size {chunk_rows}")
    return [(s // chunk_rows, s, min(s + chunk_rows, stop)) for s in range(start, stop, chunk_rows)]


SPLITS = ("train", "val", "test")
"""Values of a hand-crafted store's ``split`` array: 0 train, 1 val, 2 test."""


def read_valid(store_path: Path | str, key: str, splits: tuple[str, ...] = SPLITS) -> tuple[np.ndarray, np.ndarray]:
    """Presets and embeddings ``key`` of the valid rows of a hand-crafted store in ``splits`` (small: in memory)."""
    root = open_store(Path(store_path))
    mask = np.asarray(root["valid"][:]).astype(bool) & np.isin(np.asarray(root["split"][:]),
                                                                 [SPLITS.index(s) for s in splits])
    return np.asarray(root["presets"][:])[mask], np.asarray(require_embedding(root, key, store_path)[:])[mask]


def add_arrays(root: zarr.Group, arrays: dict[str, tuple[tuple[int, ...], tuple[int, ...], str]]) -> None:
    """Create extra row-aligned arrays ``{name: (shape, chunks, dtype)}`` in a store (kept when they exist)."""
    for name, (shape, chunks, dtype) in arrays.items():
        if name not in root:
            root.create_array(name, shape=shape, chunks=chunks, dtype=dtype,
                              fill_value=np.nan if np.dtype(dtype).kind == "f" else 0)
