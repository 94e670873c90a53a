"""Zarr v3 stores of in-domain sound-matching sets: presets with their estimator input features.

One store per synth (``results/data/<synth>/matching.zarr``), rows = hand-crafted presets chosen for sound
matching (paper 1 Sec. 8: the hand-crafted splits, by source file)::

    presets      (N, P)            float32  preset vectors (categoricals as indices)
    embedding    (N, D)            float32  the proxy representation's embedding of the preset's render
    split        (N,)              uint8    0 train, 1 val, 2 test (the hand-crafted store's split)
    source_row   (N,)              int32    row of the preset in the hand-crafted store
    features     (N, bands, frames) float32 estimator input (log-mel of the real synth's render), chunks of rows
    chunk_done   (C,)              uint8    1 once row-chunk c of ``features`` is written

``presets``, ``embedding``, ``split`` and ``source_row`` are written when the store is created; ``features`` one
whole row-chunk at a time, ``chunk_done`` set after it, so an interrupted job resumes chunk by chunk. The
attributes hold the settings' ``fingerprint`` (a store with other settings is replaced) and, once complete,
the scalar ``stats`` (min, max) of the training split's features that scale the estimator's input.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from synthproxy.data.atomic import atomic_dir
from synthproxy.data.store import SPLITS, fingerprint, open_store
from synthproxy.errors import StoreError


def create_matching_store(path: Path, arrays: Mapping[str, np.ndarray], feature_shape: tuple[int, int],
                          chunk_rows: int, meta: dict[str, Any]) -> zarr.Group:
    """Create the store (or keep it when its fingerprint matches ``meta``) with the fixed ``arrays`` written.

    ``arrays`` holds ``presets``, ``embedding``, ``split`` and ``source_row`` (N rows each).
    """
    path = Path(path)
    fp = fingerprint(meta)
    if (path / "zarr.json").exists():
        try:
            root = zarr.open_group(str(path), mode="r+")
            if root.attrs.get("fingerprint") == fp:
                return root
        except Exception:  # unreadable leftovers are replaced
            pass
    n = len(arrays["presets"])
    with atomic_dir(path) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        for name, data in arrays.items():
            data = np.asarray(data)
            root.create_array(name, shape=data.shape, chunks=(chunk_rows, *data.shape[1:]), dtype=data.dtype)[:] = data
        root.create_array("features", shape=(n, *feature_shape), chunks=(chunk_rows, *feature_shape),
                          dtype="float32", fill_value=np.nan)
        root.create_array("chunk_done", shape=(-(-n // chunk_rows),), chunks=(1,), dtype="uint8", fill_value=0)
        root.attrs.update({**meta, "fingerprint": fp, "complete": False, "chunk_rows": chunk_rows})
    return zarr.open_group(str(path), mode="r+")


def open_matching_store(path: Path, require_complete: bool = True) -> zarr.Group:
    """Open a matching store; an incomplete one is refused (naming the step to run)."""
    root = open_store(Path(path))
    if require_complete and root.attrs.get("complete") is not True:
        raise StoreError(f"matching store {path} is incomplete: run the workflow's matching_features step")
    return root


def split_rows(root: zarr.Group, split: str) -> np.ndarray:
    """Row indices of ``split`` (train, val or test), in store order."""
    return np.flatnonzero(np.asarray(root["split"][:]) == SPLITS.index(split))


def feature_stats(root: zarr.Group, rows: np.ndarray, batch: int = 256) -> dict[str, float]:
    """Scalar min and max of the features of ``rows`` (streamed)."""
    lo, hi = np.inf, -np.inf
    for s in range(0, len(rows), batch):
        f = np.asarray(root["features"].get_orthogonal_selection((rows[s:s + batch], slice(None), slice(None))))
        lo, hi = min(lo, float(f.min())), max(hi, float(f.max()))
    return {"low": lo, "high": hi}
