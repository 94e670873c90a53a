"""Zarr v3 stores of fixed-length audio clips (the out-of-domain sound sets) with per-clip metadata.

Layout of a store (``N`` clips of ``T`` samples, ``C = ceil(N / chunk_rows)`` row chunks)::

    audio                (N, T)          float32  clips, chunks (chunk_rows, T)
    peak                 (N,)            float32  max |sample| of each clip (NaN until its chunk is written)
    split                (N,)            uint8    0 train, 1 val, 2 test (SPLITS)
    note_id              (N,)            str      e.g. "keyboard_acoustic_gm000-060-100", NSynth's note ids
    instrument           (N,)            str      e.g. "keyboard_acoustic_gm000", NSynth's instrument_str
    instrument_family    (N,)            str      NSynth family (bass, brass, ..., vocal; synth_pad for GM pads)
    source               (N,)            str      NSynth's instrument_source_str: acoustic, electronic, synthetic
    program              (N,)            int16    GM program (0-based); -1 for real NSynth
    program_name         (N,)            str      GM program name; "" for real NSynth
    pitch                (N,)            int16    MIDI pitch
    velocity             (N,)            int16    MIDI velocity
    chunk_done           (C,)            uint8    1 once row-chunk c of ``audio`` is written (chunks of 1)
    features/<name>      (N, F, B)       float32  derived per-clip features (write_features), chunks (chunk_rows, F, B)
    features_done/<name> (C,)            uint8    1 once row-chunk c of that feature is written

Attributes: ``kind`` ("nsynth" | "fluidsynth_gm"), ``sample_rate``, ``duration``, ``n_samples``, ``chunk_rows``,
``settings`` (everything that determines the content), ``fingerprint`` (hash of ``settings``), ``counts``
(clips per split, dropped notes), ``complete`` (all chunks written), plus free-form ``info`` from the builder.

The metadata arrays and the split are written when the store is created, so a store always knows which clip
each row holds; audio is written one whole row-chunk at a time and ``chunk_done`` is set only after it, so an
interrupted writer leaves its chunk unmarked and a rerun with the same settings writes exactly the missing
chunks. A store is created in a temporary folder and renamed into place (it exists whole or not at all); a store
written with other settings is replaced, or refused with ``if_mismatch="error"``.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr

from synthproxy.errors import StoreError

SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
"""Split name → code in the ``split`` array."""

KINDS = ("nsynth", "fluidsynth_gm")
STR_COLUMNS = ("note_id", "instrument", "instrument_family", "source", "program_name")
INT_COLUMNS = ("program", "pitch", "velocity")
METADATA_COLUMNS = STR_COLUMNS + INT_COLUMNS
LAYOUT_VERSION = 1


def _package_version() -> str:
    try:
        return version("synthproxy")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def fingerprint(meta: Mapping[str, Any]) -> str:
    """A JSON-serialisable settings mapping in, a 16-hex-digit hash of it (key order ignored) out."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stored_fingerprint(path: Path | str) -> str | None:
    """A store path in, the fingerprint in its attributes out (None when there is no readable store)."""
    path = Path(path)
    if not (path / "zarr.json").exists():
        return None
    try:
        return zarr.open_group(str(path), mode="r").attrs.get("fingerprint")
    except Exception:
        return None


def create_audio_store(path: Path | str, *, kind: str, sample_rate: int, duration: float, chunk_rows: int,
                       settings: Mapping[str, Any], metadata: Mapping[str, np.ndarray], split: np.ndarray,
                       info: Mapping[str, Any] | None = None,
                       if_mismatch: Literal["replace", "error"] = "replace") -> zarr.Group:
    """Store path, layout, settings, per-clip metadata columns (:data:`METADATA_COLUMNS`, length N) and split
    codes in; the opened (``r+``) store out, with all arrays allocated and no audio written yet.

    When a store with the same fingerprint already exists it is kept as it is (resume); one written with other
    settings is replaced (``if_mismatch="replace"``) or refused with a StoreError (``"error"``).
    """
    path = Path(path)
    if kind not in KINDS:
        raise StoreError(f"unknown sound-set kind '{kind}'; valid: {list(KINDS)}")
    settings = dict(settings)
    fp = fingerprint(settings)
    if path.exists():
        have = stored_fingerprint(path)
        if have == fp:
            return zarr.open_group(str(path), mode="r+")
        if if_mismatch == "error":
            raise StoreError(f"audio store {path} was written with other settings (fingerprint {have} != {fp}); "
                             "delete it or allow replacing it")
        shutil.rmtree(path)
    n = len(split)
    missing = [c for c in METADATA_COLUMNS if c not in metadata]
    if missing:
        raise StoreError(f"audio store {path}: metadata columns {missing} missing")
    wrong = {c: len(metadata[c]) for c in METADATA_COLUMNS if len(metadata[c]) != n}
    if wrong:
        raise StoreError(f"audio store {path}: metadata lengths {wrong} differ from the {n} clips")
    if n == 0:
        raise StoreError(f"audio store {path}: no clips to store")
    if chunk_rows < 1:
        raise StoreError(f"chunk_rows must be >= 1, got {chunk_rows}")
    split = np.asarray(split, dtype=np.uint8)
    if split.max() > max(SPLITS.values()):
        raise StoreError(f"audio store {path}: split codes must be within {sorted(SPLITS.values())}")
    t = round(duration * sample_rate)
    n_chunks = math.ceil(n / chunk_rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    root.create_array("audio", shape=(n, t), chunks=(chunk_rows, t), dtype="float32", fill_value=0.0)
    root.create_array("peak", shape=(n,), chunks=(chunk_rows,), dtype="float32", fill_value=np.nan)
    root.create_array("split", shape=(n,), chunks=(n,), dtype="uint8", fill_value=0)[:] = split
    for col in STR_COLUMNS:
        root.create_array(col, shape=(n,), chunks=(n,), dtype=str)[:] = np.asarray(metadata[col], dtype=str)
    for col in INT_COLUMNS:
        root.create_array(col, shape=(n,), chunks=(n,), dtype="int16", fill_value=-1)[:] = np.asarray(
            metadata[col], dtype=np.int16)
    root.create_array("chunk_done", shape=(n_chunks,), chunks=(1,), dtype="uint8", fill_value=0)
    root.create_group("features")
    root.create_group("features_done")
    counts = {name: int((split == code).sum()) for name, code in SPLITS.items()} | {"total": n}
    root.attrs.update({
        "kind": kind, "sample_rate": int(sample_rate), "duration": float(duration), "n_samples": t,
        "chunk_rows": int(chunk_rows), "settings": settings, "fingerprint": fp, "counts": counts,
        "info": dict(info or {}), "complete": False, "layout_version": LAYOUT_VERSION,
        "synthproxy_version": _package_version(),
    })
    tmp.rename(path)  # atomic: a store either exists whole or not at all
    return zarr.open_group(str(path), mode="r+")


def open_audio_store(path: Path | str, mode: Literal["r", "r+"] = "r", expect_fingerprint: str | None = None,
                     require_complete: bool = True) -> zarr.Group:
    """A store path in, the opened group out; StoreError when it is missing, was written with other settings
    (``expect_fingerprint``) or, with ``require_complete``, has chunks not yet written."""
    path = Path(path)
    if not (path / "zarr.json").exists():
        raise StoreError(f"audio store not found: {path} (build the out-of-domain sound set first)")
    try:
        root = zarr.open_group(str(path), mode=mode)
    except Exception as exc:
        raise StoreError(f"audio store {path} is unreadable: {' '.join(str(exc).split())}") from None
    if "audio" not in root or "chunk_done" not in root:
        raise StoreError(f"{path} is not an audio store (no 'audio'/'chunk_done' arrays)")
    if expect_fingerprint is not None and root.attrs.get("fingerprint") != expect_fingerprint:
        raise StoreError(f"audio store {path} was written with other settings (fingerprint "
                         f"{root.attrs.get('fingerprint')} != {expect_fingerprint}); rebuild it")
    if require_complete:
        todo = missing_chunks(root)
        if todo:
            raise StoreError(f"audio store {path} is incomplete: {len(todo)} of {root['chunk_done'].shape[0]} "
                             "chunks not written (rerun its build step)")
    return root


def chunk_rows_of(root: zarr.Group) -> int:
    """A store in, its rows per chunk out."""
    return int(root["audio"].chunks[0])


def chunk_bounds(root: zarr.Group, chunk: int) -> tuple[int, int]:
    """A store and a chunk index in, the chunk's ``(row_start, row_stop)`` out."""
    c = chunk_rows_of(root)
    n = root["audio"].shape[0]
    if not 0 <= chunk < math.ceil(n / c):
        raise StoreError(f"chunk {chunk} out of range 0..{math.ceil(n / c) - 1}")
    return chunk * c, min((chunk + 1) * c, n)


def missing_chunks(root: zarr.Group, done_array: str = "chunk_done") -> list[int]:
    """A store in, the indices of the row chunks not yet written out."""
    return [int(i) for i in np.flatnonzero(root[done_array][:] == 0)]


def write_chunk(root: zarr.Group, chunk: int, audio: np.ndarray) -> None:
    """A store, a chunk index and that chunk's ``(rows, T)`` float32 audio in; the audio and peaks written and
    the chunk marked done (in that order, so an interruption never leaves a chunk marked but unwritten)."""
    start, stop = chunk_bounds(root, chunk)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.shape != (stop - start, root["audio"].shape[1]):
        raise StoreError(f"chunk {chunk} needs audio of shape {(stop - start, root['audio'].shape[1])}, "
                         f"got {audio.shape}")
    root["audio"][start:stop] = audio
    root["peak"][start:stop] = np.abs(audio).max(axis=1)
    root["chunk_done"][chunk] = 1


def mark_complete(root: zarr.Group, **attrs: Any) -> None:
    """A store whose chunks are all written in (plus extra attributes to merge); ``complete`` set to True."""
    todo = missing_chunks(root)
    if todo:
        raise StoreError(f"audio store has {len(todo)} chunks not written; cannot mark it complete")
    root.attrs.update({**attrs, "complete": True})


def metadata_frame(root: zarr.Group) -> dict[str, np.ndarray]:
    """A store in, its per-clip columns (metadata, split name, peak) as numpy arrays out."""
    out: dict[str, np.ndarray] = {}
    for col in STR_COLUMNS:
        out[col] = np.asarray(root[col][:]).astype(object)
    for col in INT_COLUMNS:
        out[col] = np.asarray(root[col][:])
    names = {code: name for name, code in SPLITS.items()}
    out["split"] = np.array([names[int(c)] for c in root["split"][:]], dtype=object)
    out["peak"] = np.asarray(root["peak"][:])
    return out


def split_rows(root: zarr.Group, split: str | None) -> np.ndarray:
    """A store and a split name (None: all rows) in, the row indices of that split in store order out."""
    if split is None:
        return np.arange(root["audio"].shape[0])
    if split not in SPLITS:
        raise StoreError(f"unknown split '{split}'; valid: {list(SPLITS)}")
    return np.flatnonzero(root["split"][:] == SPLITS[split])


def iter_audio_batches(root: zarr.Group, split: str | None = None, batch_size: int = 64,
                       rows: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A store, a split name (None: all clips) or explicit sorted ``rows``, and a batch size in; yields
    ``(row_indices, audio (B, T) float32)`` in store order. Reads one row chunk at a time, so memory stays
    within one chunk plus one batch whatever the store's size."""
    if batch_size < 1:
        raise StoreError(f"batch_size must be >= 1, got {batch_size}")
    audio = root["audio"]
    want = split_rows(root, split) if rows is None else np.asarray(rows, dtype=np.int64)
    if want.size and (np.any(np.diff(want) <= 0) or want[0] < 0 or want[-1] >= audio.shape[0]):
        raise StoreError("rows must be sorted, unique and within the store")
    c = chunk_rows_of(root)
    buf_idx: list[np.ndarray] = []
    buf_audio: list[np.ndarray] = []
    filled = 0
    chunk_of = want // c
    for chunk in np.unique(chunk_of):
        in_chunk = want[chunk_of == chunk]
        start = int(chunk) * c
        block = audio[start:int(in_chunk[-1]) + 1]
        local = in_chunk - start
        pos = 0
        while pos < len(local):
            take = min(batch_size - filled, len(local) - pos)
            buf_idx.append(in_chunk[pos:pos + take])
            buf_audio.append(block[local[pos:pos + take]])
            filled += take
            pos += take
            if filled == batch_size:
                yield np.concatenate(buf_idx), np.concatenate(buf_audio)
                buf_idx, buf_audio, filled = [], [], 0
        del block
    if filled:
        yield np.concatenate(buf_idx), np.concatenate(buf_audio)


def write_features(root: zarr.Group, name: str, fn: Callable[[np.ndarray], np.ndarray], batch: int = 64,
                   meta: Mapping[str, Any] | None = None, progress: Callable[[int], Any] | None = None) -> zarr.Array:
    """A store, a feature name, a function mapping audio ``(B, T)`` to features ``(B, frames, bands)`` (or any
    fixed per-clip shape), a batch size and the settings that define ``fn`` (``meta``) in; the feature array
    ``features/<name>`` out, shaped ``(N, *per_clip)`` float32 and chunked like ``audio``.

    Streams through the audio one row chunk at a time (in batches of at most ``batch``) and marks each chunk in
    ``features_done/<name>``, so a rerun computes only the missing chunks. A feature array written with other
    ``meta`` (or another per-clip shape) is replaced. ``progress`` is called with the rows done per step.
    """
    if not name or "/" in name:
        raise StoreError(f"feature name must be non-empty without '/', got '{name}'")
    todo_audio = missing_chunks(root)
    if todo_audio:
        raise StoreError(f"cannot compute features '{name}': {len(todo_audio)} audio chunks not written yet")
    n = root["audio"].shape[0]
    c = chunk_rows_of(root)
    n_chunks = math.ceil(n / c)
    meta = dict(meta or {})
    fp = fingerprint(meta)
    feats = root.require_group("features")
    done = root.require_group("features_done")
    if name in feats and feats[name].attrs.get("fingerprint") == fp and name in done:
        arr = feats[name]
    else:
        first = np.asarray(fn(root["audio"][0:1]), dtype=np.float32)
        if first.ndim < 2 or first.shape[0] != 1:
            raise StoreError(f"feature '{name}' function must map (B, T) audio to (B, ...) features, "
                             f"got shape {first.shape} for B=1")
        per_clip = first.shape[1:]
        for group in (feats, done):
            if name in group:
                del group[name]
        arr = feats.create_array(name, shape=(n, *per_clip), chunks=(c, *per_clip), dtype="float32",
                                 fill_value=np.nan)
        arr.attrs.update({"fingerprint": fp, "meta": meta})
        done.create_array(name, shape=(n_chunks,), chunks=(1,), dtype="uint8", fill_value=0)
    flags = done[name]
    per_clip = tuple(arr.shape[1:])
    for chunk in np.flatnonzero(flags[:] == 0):
        start, stop = int(chunk) * c, min((int(chunk) + 1) * c, n)
        out = np.empty((stop - start, *per_clip), dtype=np.float32)
        for s in range(start, stop, batch):
            e = min(s + batch, stop)
            y = np.asarray(fn(root["audio"][s:e]), dtype=np.float32)
            if y.shape != (e - s, *per_clip):
                raise StoreError(f"feature '{name}' function gave shape {y.shape}, expected {(e - s, *per_clip)}")
            out[s - start:e - start] = y
            if progress is not None:
                progress(e - s)
        arr[start:stop] = out
        flags[int(chunk)] = 1
    return arr
