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

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from tqdm import tqdm

from synthproxy.audio.representations import Representation, get_representation
from synthproxy.config import embedding_key
from synthproxy.data.store import StoreLayout, chunk_ranges, create_store, open_store
from synthproxy.errors import ConfigError, ImportFormatError, PluginNotFoundError, StoreError
from synthproxy.pipeline.dataset import write_json_atomic
from synthproxy.synths.engines import DEXED_PARAMETERS, RenderSettings, make_engine, rms
from synthproxy.synths.spec import SynthSpec, load_spec

SPLITS = ("train", "val", "test")


@dataclass
class Collected:
    """Imported presets as full plugin vectors (spec order) with provenance and step counts."""

    plugin_vectors: np.ndarray
    source_file: list[str]
    bank_index: list[int]
    preset_name: list[str]
    author: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    snapped: dict[str, int] = field(default_factory=dict)


def dx7_voice_to_plugin(params: np.ndarray, spec: SynthSpec) -> np.ndarray:
    """A 155-byte VCED voice as a Dexed plugin vector on the spec grid (value v of a control with
    ``steps`` positions is ``v / (steps - 1)``, which Dexed's own mapping turns back into v)."""
    out = spec.defaults_plugin_vector()
    for i, p in enumerate(spec.params):
        offset, steps = DEXED_PARAMETERS[p.name]
        if offset >= 0:
            out[i] = min(float(params[offset]) / (steps - 1), 1.0)
    return out


def collect_dexed(source_dir: Path, spec: SynthSpec, max_files: int | None = None) -> Collected:
    from synthproxy.presets.dx7_sysex import scan_cartridges

    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise PluginNotFoundError(
            f"DX7 cartridge folder not found: {source_dir}; set 'handcrafted.synths.dexed.path' in the config, or "
            "set 'handcrafted.synths.dexed.fetch: true' to download the public compilation (network needed once)"
        )
    report = scan_cartridges(source_dir)
    files = sorted({v.file for v in report.voices})
    keep_files = set(files[:max_files]) if max_files else set(files)
    voices = [v for v in report.voices if v.file in keep_files]
    counts = {"files read": report.files, "files with voices": report.files_with_voices,
              "files skipped (no DX7 voice)": sum(report.files_skipped.values()),
              "banks with bad checksum (kept)": report.bad_checksums, "voices": report.voices_total}
    if max_files:
        counts["voices in the first max_files files"] = len(voices)
    clean = [v for v in voices if not v.out_of_range and not v.is_init]
    counts["dropped: out-of-range values"] = sum(bool(v.out_of_range) for v in voices)
    counts["dropped: INIT VOICE"] = sum(bool(v.is_init) and not v.out_of_range for v in voices)
    if not clean:
        raise ImportFormatError(f"{source_dir}: no usable DX7 voice found")
    vectors = np.stack([dx7_voice_to_plugin(v.params, spec) for v in clean])
    return Collected(vectors, [v.file for v in clean], [v.bank_index * 32 + v.voice_index for v in clean],
                     [v.name for v in clean], [v.author for v in clean], counts)


def collect_amsynth(banks_dir: Path, spec: SynthSpec, max_files: int | None = None) -> Collected:
    from synthproxy.presets.amsynth_bank import import_amsynth_banks

    banks_dir = Path(banks_dir)
    paths = sorted(banks_dir.glob("*.bank")) if banks_dir.is_dir() else []
    if not banks_dir.is_dir():
        raise PluginNotFoundError(f"amSynth bank folder not found: {banks_dir}; set 'handcrafted.synths.amsynth.path'")
    if not paths:
        raise ImportFormatError(f"{banks_dir}: no *.bank files")
    paths = paths[:max_files] if max_files else paths
    res = import_amsynth_banks(paths, spec)
    counts = {"files read": res.n_files, "presets": res.n_presets,
              "presets omitting parameters (amSynth defaults used)": res.n_missing_warnings}
    return Collected(res.plugin_vectors, [Path(s.file).name for s in res.sources], [s.bank_index for s in res.sources],
                     [s.name for s in res.sources], [Path(s.file).stem for s in res.sources], counts,
                     dict(res.snapped))


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
class HandcraftedPlan:
    cfg: dict[str, Any]
    synth: str

    def __post_init__(self) -> None:
        hc = self.cfg.get("handcrafted")
        if not hc or self.synth not in hc.get("synths", {}):
            raise ConfigError(f"handcrafted.synths has no entry for '{self.synth}'")
        if "representations" not in self.cfg:
            raise ConfigError("the config has no 'representations' section, which hand-crafted steps need")
        self.hc = hc
        self.source = hc["synths"][self.synth]
        self.spec = load_spec(self.cfg["synths"][self.synth]["spec"])
        self.chunk_rows = int(hc["chunk_rows"])
        self.shards = int(hc["shards"])
        self.reps: dict[str, tuple[Representation, str]] = {
            embedding_key(r): (get_representation(r["name"], **r.get("options", {})), r["reduction"])
            for r in self.cfg["representations"]
        }
        self.sample_rates = list(dict.fromkeys(rep.sample_rate for rep, _ in self.reps.values()))
        r = self.cfg["render"]
        self.render_settings = {
            sr: RenderSettings(sample_rate=sr, note=r["note"], velocity=r["velocity"], note_duration=r["note_duration"],
                               duration=r["duration"], block_size=r["block_size"])
            for sr in self.sample_rates
        }

    def collect(self) -> Collected:
        kind, max_files = self.source["format"], self.source.get("max_files")
        if kind == "dx7_sysex":
            return collect_dexed(Path(self.source["path"]), self.spec, max_files)
        if kind == "amsynth_bank":
            return collect_amsynth(Path(self.source["path"]), self.spec, max_files)
        raise ConfigError(f"handcrafted.synths.{self.synth}.format: unknown format '{kind}'")

    def meta(self, n: int, counts: dict[str, int]) -> dict[str, Any]:
        r = self.cfg["render"]
        return {"synth": self.synth, "kind": "handcrafted", "spec_name": self.spec.name, "spec_hash": self.spec.hash,
                "param_names": self.spec.names, "param_kinds": [p.kind for p in self.spec.used],
                "cardinalities": [p.cardinality for p in self.spec.used], "size": n, "chunk_rows": self.chunk_rows,
                "seed": int(self.cfg["seed"]), "source": self.source, "import_counts": counts,
                "render": {k: r[k] for k in ("note", "velocity", "note_duration", "duration", "block_size",
                                             "rms_min", "rms_max")},
                "sample_rates": self.sample_rates,
                "representations": {k: rep.settings() | {"reduction": red} for k, (rep, red) in self.reps.items()}}

    def shard_rows(self, shard: int, n: int) -> tuple[int, int]:
        per = -(-n // self.shards)
        per = -(-per // self.chunk_rows) * self.chunk_rows
        start = min(shard * per, n)
        return start, min(start + per, n)


def import_handcrafted(plan: HandcraftedPlan, store_path: Path, report_path: Path) -> dict[str, Any]:
    """Collect, map, dedup and split the synth's presets, and allocate the store with provenance."""
    col = plan.collect()
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
    dims = {k: rep.dim(plan.render_settings[rep.sample_rate].n_samples, red) for k, (rep, red) in plan.reps.items()}
    root = create_store(store_path, StoreLayout(n, plan.spec.n_params, plan.chunk_rows, dims), plan.meta(n, counts))
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
              "source_files": len(set(files))}
    write_json_atomic(report_path, report)
    return report


def render_handcrafted_shard(plan: HandcraftedPlan, store_path: Path, shard: int, marker: Path) -> dict[str, Any]:
    """Render the shard's missing chunks: RMS filter (no replacement), embeddings for the valid rows."""
    root = open_store(store_path, mode="r+")
    if not root.attrs.get("provenance_written"):
        raise StoreError(f"{store_path}: import-handcrafted did not finish; rerun it")
    n = int(root["presets"].shape[0])
    start, stop = plan.shard_rows(shard, n)
    engines = {sr: make_engine(plan.spec, s, plan.cfg["synths"][plan.synth].get("plugin"))
               for sr, s in plan.render_settings.items()}
    r = plan.cfg["render"]
    reasons: Counter[str] = Counter()
    done = np.asarray(root["chunk_done"][:])
    todo = [(c, s, e) for c, s, e in chunk_ranges(start, stop, plan.chunk_rows) if start < stop and not done[c]]
    t0 = time.perf_counter()
    with tqdm(total=sum(e - s for _, s, e in todo), desc=f"{plan.synth}/handcrafted shard {shard}", unit="preset",
              mininterval=5.0) as bar:
        for c, s, e in todo:
            presets = np.asarray(root["presets"][s:e])
            plugin = plan.spec.to_plugin(presets)
            levels = np.full(e - s, np.nan, dtype=np.float32)
            valid = np.zeros(e - s, dtype=np.uint8)
            audio: dict[int, list[np.ndarray]] = {sr: [] for sr in engines}
            rows = []
            for k, vec in enumerate(plugin):
                a = engines[plan.sample_rates[0]].render(vec)
                bar.update(1)
                if not np.isfinite(a).all():
                    reasons["non_finite"] += 1
                    continue
                levels[k] = rms(a)
                if levels[k] < r["rms_min"]:
                    reasons["too_quiet"] += 1
                    continue
                if levels[k] > r["rms_max"]:
                    reasons["too_loud"] += 1
                    continue
                valid[k] = 1
                rows.append(k)
                audio[plan.sample_rates[0]].append(a)
                for sr in plan.sample_rates[1:]:
                    audio[sr].append(engines[sr].render(vec))
            for key, (rep, red) in plan.reps.items():
                emb = np.full((e - s, root["embeddings"][key].shape[1]), np.nan, dtype=np.float32)
                for b in range(0, len(rows), 32):
                    batch = torch.from_numpy(np.stack(audio[rep.sample_rate][b:b + 32]))
                    emb[rows[b:b + 32]] = rep(batch, red).numpy()
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


def load_valid(store_path: Path, key: str, splits: tuple[str, ...] = SPLITS) -> tuple[np.ndarray, np.ndarray]:
    """Presets and embeddings of the valid rows of a hand-crafted store (small: fits in memory)."""
    root = zarr.open_group(str(store_path), mode="r")
    mask = np.asarray(root["valid"][:]).astype(bool) & np.isin(np.asarray(root["split"][:]),
                                                                 [SPLITS.index(s) for s in splits])
    return np.asarray(root["presets"][:])[mask], np.asarray(root["embeddings"][key][:])[mask]


def import_table(stats_files: list[Path], out_prefix: Path) -> None:
    """``handcrafted_import.{csv,md}``: counts at each import step, one column per synth."""
    import pandas as pd

    from synthproxy.analysis.tables import write_table

    cols = {}
    for p in stats_files:
        s = json.loads(Path(p).read_text())
        cols[s["synth"]] = dict(s["counts"])
    steps = list(dict.fromkeys(k for c in cols.values() for k in c))
    df = pd.DataFrame({"step": steps, **{synth: [c.get(k, "") for k in steps] for synth, c in cols.items()}})
    write_table(df, out_prefix, "Hand-crafted presets: counts at each import step (a blank means the step does "
                "not apply to that synth). Splits are 80/10/10 grouped by source file.", formats=("csv", "md"))
