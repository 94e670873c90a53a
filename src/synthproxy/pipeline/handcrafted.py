"""Hand-crafted presets (paper Sec. 4.1.3): import → map to the spec → dedup → render/RMS filter → embed.

Steps (each a CLI command and a Snakemake rule):

* ``import-handcrafted``: read the synth's preset files (DX7 sysex cartridges for Dexed, amSynth banks),
  map every preset onto the spec (parameters outside it at their fixed values), drop exact duplicates
  (names ignored), assign 80/10/10 splits grouped by source file, and allocate the store;
* ``render-handcrafted``: one shard of rows: render, apply the same RMS filter as synthetic presets
  (no replacement: a rejected preset is marked invalid), embed the valid ones;
* ``finalize-handcrafted``: check completeness and count what every step kept.

The store ``results/data/<synth>/handcrafted.zarr`` has the dataset layout (``presets``, ``rms``,
``embeddings/<key>``, ``chunk_done``) plus ``valid`` (uint8), ``split`` (0 train, 1 val, 2 test) and
provenance (``source_file``, ``bank_index``, ``preset_name``, ``author``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from synthproxy.data.atomic import write_json_atomic, write_text_atomic
from synthproxy.data.store import SPLITS, StoreLayout, chunk_ranges, create_store, open_store
from synthproxy.errors import ConfigError, StoreError
from synthproxy.pipeline.plan import SynthPlan
from synthproxy.presets.formats import Collected, FileOutcome, get_format

_RENDER_META = ("note", "velocity", "note_duration", "duration", "block_size", "rms_min", "rms_max",
                "fade_out")


def assign_splits(files: list[str], fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """Split rows 80/10/10 (by default) so that all presets of a source file land in the same split.

    Files are visited in a seeded order and each goes to the split furthest below its target share.
    """
    unique, inverse, sizes = np.unique(np.asarray(files), return_inverse=True, return_counts=True)
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"handcrafted/{seed}".encode()).digest()[:8], "little"))
    order = rng.permutation(len(unique))
    target = np.asarray(fractions, dtype=np.float64) * len(files)
    have = np.zeros(3)
    file_split = np.zeros(len(unique), dtype=np.uint8)
    for f in order:
        s = int(np.argmax((target - have) / np.maximum(target, 1e-9)))
        file_split[f] = s
        have[s] += sizes[f]
    return file_split[inverse]


@dataclass
class HandcraftedPlan(SynthPlan):
    """A synth's hand-crafted preset source, render settings and representations.

    ``source_path`` overrides the configured folder (the workflow passes the fetched DX7 compilation when the
    configured folder is absent).
    """

    source_path: str | None = None

    def __post_init__(self) -> None:
        hc = self.cfg.get("handcrafted")
        if not hc or self.synth not in hc.get("synths", {}):
            raise ConfigError(f"handcrafted.synths has no entry for '{self.synth}'")
        if "representations" not in self.cfg:
            raise ConfigError("the config has no 'representations' section, which hand-crafted steps need")
        super().__post_init__()
        self.hc = hc
        self.source = dict(hc["synths"][self.synth])
        if self.source_path:
            self.source["path"] = str(self.source_path)
        self.chunk_rows = int(hc["chunk_rows"])
        self.shards = int(hc["shards"])

    def collect(self) -> Collected:
        return get_format(self.source["format"]).collect(Path(self.source["path"]), self.spec,
                                                         self.source.get("max_files"))

    def meta(self, n: int, counts: dict[str, int]) -> dict[str, Any]:
        return {"synth": self.synth, "kind": "handcrafted", **self.spec_meta(), "size": n,
                "chunk_rows": self.chunk_rows, "seed": int(self.cfg["seed"]), "source": self.source,
                "import_counts": counts, "render": self.render.meta(_RENDER_META), **self.representation_meta()}

    def shard_rows(self, shard: int, n: int) -> tuple[int, int]:
        per = -(-n // self.shards)
        per = -(-per // self.chunk_rows) * self.chunk_rows
        start = min(shard * per, n)
        return start, min(start + per, n)


def file_report_path(report_path: Path) -> Path:
    """The per-file import report beside the import summary (``handcrafted.import.files.csv``)."""
    report_path = Path(report_path)
    return report_path.with_name(report_path.stem + ".files.csv")


def write_file_report(col: Collected, path: Path) -> list[FileOutcome]:
    """Write one CSV row per file read (file, presets kept, what was wrong, a note); return the files with
    problems."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "presets_kept", "problem", "note"])
    for o in col.files:
        w.writerow([o.file, o.kept, o.problem, o.note])
    write_text_atomic(path, buf.getvalue())
    return [o for o in col.files if o.problem]


def _warn_files(synth: str, bad: list[FileOutcome], total: int, path: Path, shown: int = 20) -> None:
    if not bad:
        return
    lines = [f"{synth}: {len(bad)} of {total} preset file(s) skipped or repaired (full list: {path}):"]
    lines += [f"  {o.file} (kept {o.kept}): {o.problem}" for o in bad[:shown]]
    if len(bad) > shown:
        lines.append(f"  ... and {len(bad) - shown} more in {path}")
    print("\n".join(lines), file=sys.stderr)


def import_handcrafted(plan: HandcraftedPlan, store_path: Path, report_path: Path) -> dict[str, Any]:
    """Collect, map, dedup and split the synth's presets, and allocate the store with provenance.

    Besides the summary ``report_path`` (JSON) it writes the per-file report (:func:`file_report_path`) and
    names, on stderr, every file that was skipped or repaired.
    """
    col = plan.collect()
    bad = write_file_report(col, file_report_path(report_path))
    _warn_files(plan.synth, bad, len(col.files), file_report_path(report_path))
    counts = dict(col.counts)
    presets = plan.spec.from_plugin(col.plugin_vectors)
    counts["mapped onto the spec"] = len(presets)
    _, first = np.unique(presets, axis=0, return_index=True)
    keep = np.sort(first)  # first occurrence, in the deterministic reading order
    counts["dropped: duplicates (names ignored)"] = len(presets) - len(keep)
    presets = presets[keep]
    files = [col.source_file[i] for i in keep]
    split = assign_splits(files, tuple(plan.hc["split_fractions"]), plan.cfg["seed"])
    n = len(presets)
    layout = StoreLayout(n, plan.spec.n_params, plan.chunk_rows, plan.embedding_dims())
    root = create_store(store_path, layout, plan.meta(n, counts))
    if not root.attrs.get("provenance_written"):
        c = plan.chunk_rows
        root.create_array("valid", shape=(n,), chunks=(c,), dtype="uint8", fill_value=0, overwrite=True)
        root.create_array("split", shape=(n,), chunks=(c,), dtype="uint8", fill_value=0, overwrite=True)[:] = split
        root.create_array("bank_index", shape=(n,), chunks=(c,), dtype="int32", fill_value=0, overwrite=True)[:] = [
            col.bank_index[i] for i in keep]
        for name, values in (("source_file", files), ("preset_name", [col.preset_name[i] for i in keep]),
                             ("author", [col.author[i] for i in keep])):
            root.create_array(name, shape=(n,), chunks=(c,), dtype=str, overwrite=True)[:] = np.asarray(values)
        root["presets"][:] = presets
        root.attrs["provenance_written"] = True
    report = {"synth": plan.synth, "counts": list(counts.items()), "candidates": n, "snapped": col.snapped,
              "split_candidates": {s: int((split == i).sum()) for i, s in enumerate(SPLITS)},
              "source_files": len(set(files)),
              "files_with_problems": [{"file": o.file, "kept": o.kept, "problem": o.problem} for o in bad]}
    write_json_atomic(report_path, report)
    return report


def render_handcrafted_shard(plan: HandcraftedPlan, store_path: Path, shard: int, marker: Path) -> dict[str, Any]:
    """Render the shard's missing chunks: RMS filter (no replacement), embeddings for the valid rows."""
    root = open_store(store_path, mode="r+")
    if not root.attrs.get("provenance_written"):
        raise StoreError(f"{store_path}: import-handcrafted did not finish; rerun it")
    n = int(root["presets"].shape[0])
    start, stop = plan.shard_rows(shard, n)
    core = plan.render_embedder()
    reasons: Counter[str] = Counter()
    done = np.asarray(root["chunk_done"][:])
    todo = [(c, s, e) for c, s, e in chunk_ranges(start, stop, plan.chunk_rows) if start < stop and not done[c]]
    t0 = time.perf_counter()
    with tqdm(total=sum(e - s for _, s, e in todo), desc=f"{plan.synth}/handcrafted shard {shard}", unit="preset",
              mininterval=5.0) as bar:
        for c, s, e in todo:
            plugin = plan.spec.to_plugin(np.asarray(root["presets"][s:e]))
            levels = np.full(e - s, np.nan, dtype=np.float32)
            valid = np.zeros(e - s, dtype=np.uint8)
            audio: dict[int, list[np.ndarray]] = {sr: [] for sr in core.sample_rates}
            rows = []
            for k, vec in enumerate(plugin):
                check, audios = core.render_checked(vec)
                bar.update(1)
                levels[k] = check.level
                if audios is None:
                    reasons[check.reason] += 1
                    continue
                valid[k] = 1
                rows.append(k)
                for sr, a in audios.items():
                    audio[sr].append(a)
            embs = {key: np.full((e - s, root["embeddings"][key].shape[1]), np.nan, dtype=np.float32)
                    for key in plan.reps}
            for b in range(0, len(rows), 32):
                batch = core.embed({sr: np.stack(a[b:b + 32]) for sr, a in audio.items()})
                for key, emb in batch.items():
                    embs[key][rows[b:b + 32]] = emb
            for key, emb in embs.items():
                root["embeddings"][key][s:e] = emb
            root["rms"][s:e] = levels
            root["valid"][s:e] = valid
            root["chunk_done"][c] = 1
    info = {"synth": plan.synth, "shard": shard, "rows": [start, stop], "rejections_by_reason": dict(reasons),
            "wall_seconds": round(time.perf_counter() - t0, 3)}
    write_json_atomic(marker, info)
    return info


def finalize_handcrafted(plan: HandcraftedPlan, store_path: Path, import_report: Path, markers: list[Path],
                         out: Path) -> dict[str, Any]:
    """Check every chunk is written; record the counts of every import step in the store and ``out``."""
    root = open_store(store_path, mode="r+")
    done = np.asarray(root["chunk_done"][:])
    if not done.all():
        raise StoreError(f"{store_path}: {int((done == 0).sum())} chunk(s) not rendered; rerun render-handcrafted")
    report = json.loads(Path(import_report).read_text())
    reasons: Counter[str] = Counter()
    for m in markers:
        reasons.update(json.loads(Path(m).read_text())["rejections_by_reason"])
    valid = np.asarray(root["valid"][:]).astype(bool)
    split = np.asarray(root["split"][:])
    counts = dict(report["counts"])  # (step, count) pairs: JSON objects would lose the step order
    counts["dropped: silent (RMS < rms_min)"] = reasons.get("too_quiet", 0)
    counts["dropped: too loud (RMS > rms_max)"] = reasons.get("too_loud", 0)
    counts["dropped: non-finite audio"] = reasons.get("non_finite", 0)
    counts["kept"] = int(valid.sum())
    for i, s in enumerate(SPLITS):
        counts[f"kept: {s} split"] = int((valid & (split == i)).sum())
    stats = {"synth": plan.synth, "counts": list(counts.items()), "snapped": report.get("snapped", {}),
             "source_files": report["source_files"]}
    root.attrs.update({"complete": True, "stats": stats})
    write_json_atomic(out, stats)
    return stats | {"counts": counts}
