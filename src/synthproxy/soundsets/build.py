"""Building the out-of-domain sound set: real NSynth notes when available, else FluidSynth-rendered GM notes.

:func:`build_out_of_domain_set` is what the workflow calls. It runs in two passes:

1. **plan** — list the candidate notes (the GM grid, or NSynth's ``examples.json``), render or read each one
   once to find the ones to drop (silent notes; unusable NSynth files, reported by name), and assign the
   deterministic split; then create the store (:mod:`synthproxy.data.audio_store`) with all metadata;
2. **write** — render or read the kept notes again, one store chunk at a time, and write them. A rerun with the
   same settings skips the plan and writes only the chunks an interruption left unmarked.

For GM renders the second pass checks each clip's peak against the first pass: a mismatch would mean FluidSynth
is not deterministic and raises a StoreError.

Splits (:func:`assign_splits`): ``split_by`` groups clips, and whole groups go to one split. Groups are ranked by
``sha256(f"{seed}:{key}")`` and filled into train/val/test in that order up to the fractions (80/10/10 by
default), so the split is reproducible, independent of rendering order, and exact for single-clip groups.
``"note"`` (default) splits note by note: every GM program / NSynth instrument appears in every split;
``"instrument_pitch"`` keeps the velocities of one instrument and pitch together (no near-duplicate across
splits); ``"instrument"`` keeps each GM program / NSynth instrument within one split (like NSynth's own
instrument-disjoint train/valid/test).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import zarr
from tqdm import tqdm

import synthproxy.soundsets.gm as gm_mod
import synthproxy.soundsets.nsynth as ns_mod
from synthproxy.data.audio_store import (
    LAYOUT_VERSION,
    SPLITS,
    create_audio_store,
    fingerprint,
    mark_complete,
    metadata_frame,
    missing_chunks,
    open_audio_store,
    stored_fingerprint,
    write_chunk,
)
from synthproxy.errors import ConfigError, StoreError
from synthproxy.soundsets.fluid import DEFAULT_SOUNDFONT, check_soundfont, fluidsynth_version

log = logging.getLogger(__name__)

SPLIT_BY = ("note", "instrument_pitch", "instrument")
DEFAULT_SETTINGS: dict[str, Any] = {
    "kind": "auto",  # auto: real NSynth when a folder with examples.json is given, else fluidsynth_gm
    "sample_rate": 16000,
    "duration": 4.0,
    "chunk_rows": 64,
    "seed": 0,
    "split_fractions": {"train": 0.8, "val": 0.1, "test": 0.1},
    "split_by": "note",
    "silence_db": -60.0,  # a clip whose peak is at or below this (dBFS) is dropped as silent
    "gm": {
        "soundfont": str(DEFAULT_SOUNDFONT),
        "programs": "melodic",
        "pitch_min": 36,
        "pitch_max": 84,
        "pitch_step": 1,
        "velocities": [75, 100, 127],
        "note_seconds": 3.0,
        "gain": 0.5,
        "interpolation": "7th",
    },
    "nsynth": {
        "pitch_min": None,
        "pitch_max": None,
        "families": None,
        "min_seconds": 0.0,
    },
}
MAX_LISTED_DROPS = 500


def _merge(base: dict[str, Any], over: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key not in base:
            raise ConfigError(f"unknown out-of-domain setting '{where}{key}'; valid: {sorted(base)}")
        if isinstance(base[key], dict) and key != "split_fractions":
            if not isinstance(value, Mapping):
                raise ConfigError(f"out-of-domain setting '{where}{key}' must be a mapping")
            out[key] = _merge(base[key], value, f"{where}{key}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_settings(settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """User settings (any subset of :data:`DEFAULT_SETTINGS`) in; the complete, validated settings out."""
    s = _merge(DEFAULT_SETTINGS, settings or {})
    if s["kind"] not in ("auto", "nsynth", "fluidsynth_gm"):
        raise ConfigError(f"out-of-domain kind must be auto, nsynth or fluidsynth_gm, got '{s['kind']}'")
    if int(s["sample_rate"]) <= 0 or float(s["duration"]) <= 0 or int(s["chunk_rows"]) < 1:
        raise ConfigError("out-of-domain sample_rate, duration and chunk_rows must be positive")
    fr = s["split_fractions"]
    if not isinstance(fr, Mapping) or set(fr) != set(SPLITS) or any(float(v) < 0 for v in fr.values()) \
            or not math.isclose(sum(float(v) for v in fr.values()), 1.0, abs_tol=1e-6):
        raise ConfigError(f"split_fractions must give {list(SPLITS)} non-negative fractions summing to 1, got {fr}")
    s["split_fractions"] = {k: float(fr[k]) for k in SPLITS}
    if s["split_by"] not in SPLIT_BY:
        raise ConfigError(f"split_by must be one of {list(SPLIT_BY)}, got '{s['split_by']}'")
    s["sample_rate"], s["chunk_rows"], s["seed"] = int(s["sample_rate"]), int(s["chunk_rows"]), int(s["seed"])
    s["duration"], s["silence_db"] = float(s["duration"]), float(s["silence_db"])
    g = s["gm"]
    g["programs"] = "melodic" if g["programs"] == "melodic" else list(gm_mod.resolve_programs(g["programs"]))
    g["velocities"] = sorted({int(v) for v in g["velocities"]})
    gm_mod.gm_notes(g["programs"], g["pitch_min"], g["pitch_max"], g["pitch_step"], g["velocities"])  # validates
    if not 0 < float(g["note_seconds"]) <= s["duration"]:
        raise ConfigError(f"gm.note_seconds must be within (0, duration={s['duration']}], got {g['note_seconds']}")
    return s


def assign_splits(keys: Sequence[str], seed: int, fractions: Mapping[str, float] | None = None) -> np.ndarray:
    """One group key per clip, a seed and split fractions (default 80/10/10) in; ``uint8`` split codes
    (:data:`SPLITS`) per clip out. Whole groups go to one split; see the module docstring."""
    fractions = dict(fractions or DEFAULT_SETTINGS["split_fractions"])
    n = len(keys)
    counts = Counter(keys)
    order = sorted(counts, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).digest())
    bounds = np.round(np.cumsum([fractions[s] for s in SPLITS]) * n)
    group_split: dict[str, int] = {}
    before = 0
    for key in order:
        group_split[key] = int(min(np.searchsorted(bounds, before, side="right"), len(SPLITS) - 1))
        before += counts[key]
    return np.array([group_split[k] for k in keys], dtype=np.uint8)


def _split_keys(instruments: Sequence[str], pitches: Sequence[int], note_ids: Sequence[str],
                split_by: str) -> list[str]:
    if split_by == "note":
        return list(note_ids)
    if split_by == "instrument_pitch":
        return [f"{i}-{p:03d}" for i, p in zip(instruments, pitches, strict=True)]
    return list(instruments)


def _threshold(s: Mapping[str, Any]) -> float:
    return float(10.0 ** (s["silence_db"] / 20.0))


def _fingerprinted(s: Mapping[str, Any], kind: str, nsynth: Path | None) -> dict[str, Any]:
    common = {k: s[k] for k in ("sample_rate", "duration", "chunk_rows", "seed", "split_fractions", "split_by",
                                "silence_db")} | {"store_layout": LAYOUT_VERSION}
    if kind == "fluidsynth_gm":
        sf2 = check_soundfont(s["gm"]["soundfont"])
        return {**common, "kind": kind, "gm": s["gm"], "soundfont_sha256": gm_mod.file_sha256(sf2),
                "fluidsynth_version": fluidsynth_version(), "render": "fresh-synth-per-note/float32/mono-mean/v1"}
    assert nsynth is not None
    return {**common, "kind": kind, "nsynth": s["nsynth"], "examples_sha256": ns_mod.examples_sha256(nsynth)}


def _choose_kind(s: Mapping[str, Any], nsynth: Path | None) -> str:
    if s["kind"] == "nsynth" or (s["kind"] == "auto" and nsynth is not None and ns_mod.is_nsynth_folder(nsynth)):
        if nsynth is None:
            raise ConfigError("out-of-domain kind 'nsynth' needs the path of an nsynth-valid folder")
        if not ns_mod.is_nsynth_folder(nsynth):
            ns_mod.read_examples(nsynth)  # raises the precise error: no folder, or no examples.json
        return "nsynth"
    if nsynth is not None and s["kind"] == "auto":
        log.warning("no NSynth examples.json under %s: rendering the NSynth-like FluidSynth GM set instead", nsynth)
    return "fluidsynth_gm"


def _drop_record(dropped: list[dict[str, Any]], by_family: dict[str, Counter], note_id: str, family: str,
                 reason: str, detail: str = "") -> None:
    by_family.setdefault(family, Counter())[reason] += 1
    if len(dropped) < MAX_LISTED_DROPS:
        dropped.append({"note_id": note_id, "family": family, "reason": reason, **({"detail": detail} if detail
                                                                                     else {})})


def _plan_gm(s: Mapping[str, Any], progress: bool) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    g = s["gm"]
    candidates = gm_mod.gm_notes(g["programs"], g["pitch_min"], g["pitch_max"], g["pitch_step"], g["velocities"])
    thr = _threshold(s)
    kept: list[gm_mod.GMNote] = []
    peaks: list[float] = []
    dropped: list[dict[str, Any]] = []
    by_family: dict[str, Counter] = {}
    with _gm_renderer(s) as renderer:
        version = renderer.version
        for note in tqdm(candidates, desc="gm: finding silent notes", unit="note", disable=not progress):
            peak = float(np.abs(renderer.render(note)).max())
            if peak <= thr:
                _drop_record(dropped, by_family, note.note_id, note.family, "silent", f"peak {peak:.3g}")
                continue
            kept.append(note)
            peaks.append(peak)
    if not kept:
        raise StoreError(f"all {len(candidates)} GM notes are silent (peak <= {s['silence_db']} dBFS)")
    meta = {
        "note_id": np.array([n.note_id for n in kept], dtype=object),
        "instrument": np.array([n.instrument for n in kept], dtype=object),
        "instrument_family": np.array([n.family for n in kept], dtype=object),
        "source": np.array([n.source for n in kept], dtype=object),
        "program_name": np.array([n.program_name for n in kept], dtype=object),
        "program": np.array([n.program for n in kept], dtype=np.int16),
        "pitch": np.array([n.pitch for n in kept], dtype=np.int16),
        "velocity": np.array([n.velocity for n in kept], dtype=np.int16),
    }
    n_silent = sum(c["silent"] for c in by_family.values())
    info = {"candidates": len(candidates), "silent_dropped": n_silent, "skipped": 0, "dropped": dropped,
            "dropped_by_family": {f: dict(c) for f, c in sorted(by_family.items())},
            "soundfont": str(g["soundfont"]), "fluidsynth_version": version,
            "programs": sorted({n.program for n in candidates}), "family_map": {str(k): v for k, v in
                                                                               gm_mod.GM_FAMILY.items()}}
    return meta, np.array(peaks, dtype=np.float32), info


def _plan_nsynth(s: Mapping[str, Any], nsynth: Path, progress: bool
                 ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    o = s["nsynth"]
    lo, hi = o["pitch_min"], o["pitch_max"]
    pitch_range = None if lo is None and hi is None else (0 if lo is None else int(lo), 127 if hi is None else int(hi))
    notes, bad_entries = ns_mod.read_examples(nsynth, pitch_range, o["families"])
    n_samples = round(s["duration"] * s["sample_rate"])
    good, bad_audio, peaks = ns_mod.scan_notes(notes, s["sample_rate"], n_samples, float(o["min_seconds"]), progress)
    family_of = {n.note_id: n.instrument_family for n in notes}
    thr = _threshold(s)
    dropped: list[dict[str, Any]] = []
    by_family: dict[str, Counter] = {}
    for sk in bad_entries:
        log.warning("skipping NSynth note %s: %s", sk.note_id, sk.reason)
        _drop_record(dropped, by_family, sk.note_id, "unknown", "bad", sk.reason)
    for sk in bad_audio:
        _drop_record(dropped, by_family, sk.note_id, family_of[sk.note_id], "bad", sk.reason)
    kept, kept_peaks = [], []
    for note, peak in zip(good, peaks, strict=True):
        if peak <= thr:
            _drop_record(dropped, by_family, note.note_id, note.instrument_family, "silent", f"peak {peak:.3g}")
        else:
            kept.append(note)
            kept_peaks.append(peak)
    if not kept:
        raise StoreError(f"no usable NSynth notes under {nsynth} ({len(bad_entries) + len(bad_audio)} skipped)")
    meta = {
        "note_id": np.array([n.note_id for n in kept], dtype=object),
        "instrument": np.array([n.instrument for n in kept], dtype=object),
        "instrument_family": np.array([n.instrument_family for n in kept], dtype=object),
        "source": np.array([n.source for n in kept], dtype=object),
        "program_name": np.array(["" for _ in kept], dtype=object),
        "program": np.full(len(kept), -1, dtype=np.int16),
        "pitch": np.array([n.pitch for n in kept], dtype=np.int16),
        "velocity": np.array([n.velocity for n in kept], dtype=np.int16),
    }
    n_bad = len(bad_entries) + len(bad_audio)
    info = {"candidates": len(notes) + len(bad_entries),
            "silent_dropped": sum(c.get("silent", 0) for c in by_family.values()), "skipped": n_bad,
            "dropped": dropped, "dropped_by_family": {f: dict(c) for f, c in sorted(by_family.items())},
            "nsynth": str(nsynth)}
    return meta, np.array(kept_peaks, dtype=np.float32), info


def _gm_renderer(s: Mapping[str, Any]) -> gm_mod.GMRenderer:
    g = s["gm"]
    return gm_mod.GMRenderer(g["soundfont"], sample_rate=s["sample_rate"], duration=s["duration"],
                             note_seconds=float(g["note_seconds"]), gain=float(g["gain"]),
                             interpolation=g["interpolation"])


def _write_missing(root: zarr.Group, kind: str, s: Mapping[str, Any], nsynth: Path | None,
                   planned_peaks: np.ndarray | None, progress: bool) -> int:
    todo = missing_chunks(root)
    if not todo:
        return 0
    c = int(root["audio"].chunks[0])
    n, t = root["audio"].shape
    rows_todo = sum(min((k + 1) * c, n) - k * c for k in todo)
    renderer = _gm_renderer(s) if kind == "fluidsynth_gm" else None
    note_ids = np.asarray(root["note_id"][:]).astype(object)
    program, pitch, velocity = (np.asarray(root[k][:]) for k in ("program", "pitch", "velocity"))
    try:
        with tqdm(total=rows_todo, desc=f"{kind}: writing {Path(str(root.store_path)).name}", unit="note",
                  disable=not progress) as bar:
            for chunk in todo:
                start, stop = chunk * c, min((chunk + 1) * c, n)
                block = np.empty((stop - start, t), dtype=np.float32)
                for i in range(start, stop):
                    if renderer is not None:
                        block[i - start] = renderer.render(gm_mod.GMNote(int(program[i]), int(pitch[i]),
                                                                         int(velocity[i])))
                    else:
                        assert nsynth is not None
                        path = nsynth / ns_mod.AUDIO_DIR / f"{note_ids[i]}.wav"
                        note = ns_mod.NSynthNote(str(note_ids[i]), int(pitch[i]), int(velocity[i]), "", "", "",
                                                 s["sample_rate"], path)
                        block[i - start] = ns_mod.load_note(note, s["sample_rate"], t,
                                                            float(s["nsynth"]["min_seconds"]))
                    bar.update(1)
                if planned_peaks is not None:
                    peaks = np.abs(block).max(axis=1)
                    diff = np.flatnonzero(peaks != planned_peaks[start:stop])
                    if diff.size:
                        raise StoreError(f"{kind}: note {note_ids[start + diff[0]]} changed between two reads/renders "
                                         f"(peak {planned_peaks[start + diff[0]]} then {peaks[diff[0]]}); the source "
                                         "is not deterministic")
                write_chunk(root, chunk, block)
    finally:
        if renderer is not None:
            renderer.close()
    return len(todo)


def build_out_of_domain_set(settings: Mapping[str, Any] | None, out_store: Path | str, nsynth: Path | str | None = None,
                            progress: bool = True, if_mismatch: Literal["replace", "error"] = "replace"
                            ) -> dict[str, Any]:
    """Settings (see :data:`DEFAULT_SETTINGS`), the store path and optionally an nsynth-valid folder in; the
    written (complete) store on disk and build statistics out: ``kind``, ``store``, ``fingerprint``, ``clips``,
    ``counts`` per split, ``candidates``, ``silent_dropped``, ``skipped``, ``chunks_written``, ``chunks_total``,
    ``resumed`` and ``seconds``.

    With ``kind: auto`` (default) real NSynth is used when ``nsynth`` is a folder with ``examples.json``, else the
    FluidSynth GM set is rendered. A store already built with the same settings is resumed (only missing chunks
    are written; nothing when complete); one built with other settings is replaced, or refused with
    ``if_mismatch="error"``.
    """
    t0 = time.perf_counter()
    s = resolve_settings(settings)
    nsynth_path = Path(nsynth) if nsynth is not None else None
    kind = _choose_kind(s, nsynth_path)
    out_store = Path(out_store)
    fp_settings = _fingerprinted(s, kind, nsynth_path)
    fp = fingerprint(fp_settings)
    have = stored_fingerprint(out_store)
    resumed = have == fp
    planned_peaks = None
    if resumed:
        root = open_audio_store(out_store, mode="r+", require_complete=False)
        log.info("resuming %s: %d chunks missing", out_store, len(missing_chunks(root)))
    else:
        if have is not None and if_mismatch == "error":
            raise StoreError(f"audio store {out_store} was written with other settings (fingerprint {have} != {fp})")
        if kind == "fluidsynth_gm":
            meta, planned_peaks, info = _plan_gm(s, progress)
        else:
            assert nsynth_path is not None
            meta, planned_peaks, info = _plan_nsynth(s, nsynth_path, progress)
        keys = _split_keys(list(meta["instrument"]), list(meta["pitch"]), list(meta["note_id"]), s["split_by"])
        split = assign_splits(keys, s["seed"], s["split_fractions"])
        root = create_audio_store(out_store, kind=kind, sample_rate=s["sample_rate"], duration=s["duration"],
                                  chunk_rows=s["chunk_rows"], settings=fp_settings, metadata=meta, split=split,
                                  info=info, if_mismatch=if_mismatch)
    written = _write_missing(root, kind, s, nsynth_path, planned_peaks, progress)
    info = dict(root.attrs["info"])
    counts = dict(root.attrs["counts"]) | {"silent_dropped": int(info.get("silent_dropped", 0)),
                                           "skipped": int(info.get("skipped", 0))}
    mark_complete(root, counts=counts)
    return {
        "kind": kind, "store": str(out_store), "fingerprint": fp, "clips": int(root["audio"].shape[0]),
        "counts": {k: counts[k] for k in SPLITS}, "candidates": int(info.get("candidates", 0)),
        "silent_dropped": counts["silent_dropped"], "skipped": counts["skipped"], "chunks_written": written,
        "chunks_total": int(root["chunk_done"].shape[0]), "resumed": resumed,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def summary_table(store: Path | str | zarr.Group) -> pd.DataFrame:
    """A built store (path or group) in; one row per instrument family plus an ``all`` row out, with columns
    ``train``, ``val``, ``test``, ``clips``, ``instruments``, ``pitch_min``, ``pitch_max``, ``velocity_min``,
    ``velocity_max``, ``silent_dropped`` and ``skipped`` (bad files/entries; NSynth only)."""
    root = store if isinstance(store, zarr.Group) else open_audio_store(store)
    cols = metadata_frame(root)
    df = pd.DataFrame({k: cols[k] for k in ("instrument_family", "instrument", "pitch", "velocity", "split")})
    by_family = root.attrs.get("info", {}).get("dropped_by_family", {})
    families = sorted(set(df["instrument_family"]) | set(by_family))
    rows = []
    for fam in [*families, "all"]:
        sub = df if fam == "all" else df[df["instrument_family"] == fam]
        drops = Counter()
        for f, c in by_family.items():
            if fam in ("all", f):
                drops.update(c)
        rows.append({
            "family": fam,
            **{name: int((sub["split"] == name).sum()) for name in SPLITS},
            "clips": len(sub),
            "instruments": int(sub["instrument"].nunique()),
            "pitch_min": int(sub["pitch"].min()) if len(sub) else pd.NA,
            "pitch_max": int(sub["pitch"].max()) if len(sub) else pd.NA,
            "velocity_min": int(sub["velocity"].min()) if len(sub) else pd.NA,
            "velocity_max": int(sub["velocity"].max()) if len(sub) else pd.NA,
            "silent_dropped": int(drops.get("silent", 0)),
            "skipped": int(drops.get("bad", 0)),
        })
    return pd.DataFrame(rows).set_index("family")
