"""Synthetic dataset generation: sample → render → RMS filter → embed → Zarr, streamed chunk by chunk.

Three steps, each a CLI command and a Snakemake rule:

* ``init-store``: allocate the store of a (synth, split) with its metadata;
* ``render-shard``: fill one shard (a chunk-aligned row range); shards run in parallel processes;
* ``finalize-split``: check every chunk was written and record the split's statistics.

Audio never reaches the disk and at most one batch of it is in memory.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from synthproxy import __version__
from synthproxy.data.atomic import write_json_atomic
from synthproxy.data.store import CHUNK_STATS, StoreLayout, chunk_ranges, create_store, fingerprint, open_store
from synthproxy.errors import ConfigError, StoreError
from synthproxy.pipeline.plan import SynthPlan
from synthproxy.presets.sampling import PresetSampler

_RENDER_META = ("note", "velocity", "note_duration", "duration", "block_size", "rms_min", "rms_max", "max_attempts",
                "fade_out")


@dataclass
class DatasetPlan(SynthPlan):
    """Everything a (synth, split) job needs, derived from the validated config."""

    split: str = ""

    def __post_init__(self) -> None:
        for key in ("dataset", "representations"):
            if key not in self.cfg:
                raise ConfigError(f"the config has no '{key}' section, which dataset steps need")
        super().__post_init__()
        if self.split not in self.cfg["dataset"]["splits"]:
            raise ConfigError(
                f"unknown split '{self.split}'; configured: {sorted(self.cfg['dataset']['splits'])}"
            )
        self.split_cfg = self.cfg["dataset"]["splits"][self.split]
        self.size = int(self.split_cfg["size"])
        self.shard_size = int(self.split_cfg["shard_size"])
        self.chunk_rows = int(self.cfg["dataset"]["chunk_rows"])
        self.batch_size = int(self.cfg["dataset"]["batch_size"])

    @property
    def n_shards(self) -> int:
        return -(-self.size // self.shard_size)

    def shard_rows(self, shard: int) -> tuple[int, int]:
        if not 0 <= shard < self.n_shards:
            raise ConfigError(f"shard {shard} out of range: split '{self.split}' has {self.n_shards} shards")
        start = shard * self.shard_size
        return start, min(start + self.shard_size, self.size)

    def meta(self) -> dict[str, Any]:
        """Store attributes; everything here changes what the store holds (hence its fingerprint)."""
        return {
            "synth": self.synth, **self.spec_meta(), "engine": self.spec.engine, "plugin": self.plugin,
            "seed": int(self.cfg["seed"]), "split": self.split, "size": self.size, "shard_size": self.shard_size,
            "chunk_rows": self.chunk_rows, "render": self.render.meta(_RENDER_META), **self.representation_meta(),
        }


def init_store(plan: DatasetPlan, store_path: Path, marker: Path) -> dict[str, Any]:
    """Allocate the split's store (kept if it already matches) and write the init marker."""
    meta = plan.meta()
    layout = StoreLayout(plan.size, plan.spec.n_params, plan.chunk_rows, plan.embedding_dims())
    root = create_store(store_path, layout, meta)
    info = {"store": str(store_path), "fingerprint": root.attrs["fingerprint"],
            "embedding_dims": layout.embedding_dims, "n_shards": plan.n_shards,
            "chunks_done": int(np.asarray(root["chunk_done"][:]).sum()), "n_chunks": layout.n_chunks}
    write_json_atomic(marker, info)
    return info


class ShardRenderer:
    """Samples, renders, filters and embeds presets of one split through the render core.

    A candidate refused by the check is replaced by the next attempt for the same index (a pure function of
    ``(seed, split, index, attempt)``), so a split is the same whatever its sharding. Used per shard and by
    the benchmarks.
    """

    def __init__(self, plan: DatasetPlan) -> None:
        self.plan = plan
        self.sampler = PresetSampler(plan.spec, plan.cfg["seed"], plan.split)
        self.core = plan.render_embedder()
        self.max_attempts = plan.render.max_attempts
        self.rejections: Counter[str] = Counter()
        # one audio buffer per sample rate, reused batch after batch: memory stays flat, no re-allocation
        self._buffers = {sr: np.empty((plan.batch_size, s.n_samples), dtype=np.float32)
                         for sr, s in plan.render_settings.items()}

    @property
    def render_seconds(self) -> float:
        return self.core.render_seconds

    @property
    def embed_seconds(self) -> float:
        return self.core.embed_seconds

    def accept(self, index: int) -> tuple[np.ndarray, dict[int, np.ndarray], float, int]:
        """First candidate of ``index`` whose render is finite and within the RMS range."""
        for attempt in range(self.max_attempts):
            preset = self.sampler.sample_one(index, attempt)
            check, audios = self.core.render_checked(self.plan.spec.to_plugin(preset[None, :])[0])
            if audios is None:
                self.rejections[check.reason] += 1
                continue
            return preset, audios, check.level, attempt
        raise StoreError(
            f"{self.plan.synth}/{self.plan.split}: preset index {index}: {self.max_attempts} consecutive "
            f"candidates rejected ({dict(self.rejections)}); check the spec's ranges or render.rms_min/max"
        )

    def rows(self, start: int, stop: int, progress: tqdm | None = None) -> dict[str, np.ndarray]:
        """Compute every array's rows ``[start, stop)`` in batches of ``dataset.batch_size``."""
        bs = self.plan.batch_size
        presets, levels, attempts = [], [], []
        embs: dict[str, list[np.ndarray]] = {k: [] for k in self.plan.reps}
        buffers = self._buffers
        for b0 in range(start, stop, bs):
            b1 = min(b0 + bs, stop)
            for row, index in enumerate(range(b0, b1)):
                preset, au, level, attempt = self.accept(index)
                presets.append(preset)
                levels.append(level)
                attempts.append(attempt)
                for sr, a in au.items():
                    buffers[sr][row] = a
                if progress is not None:
                    progress.update(1)
            for key, e in self.core.embed({sr: buf[: b1 - b0] for sr, buf in buffers.items()}).items():
                embs[key].append(e)
        return {
            "presets": np.stack(presets).astype(np.float32),
            "rms": np.asarray(levels, dtype=np.float32),
            "attempts": np.asarray(attempts, dtype=np.uint16),
            **{f"embeddings/{k}": np.concatenate(v) for k, v in embs.items()},
        }


def render_shard(plan: DatasetPlan, store_path: Path, shard: int, marker: Path) -> dict[str, Any]:
    """Fill one shard's missing chunks, then write its marker with rejection and timing statistics."""
    start, stop = plan.shard_rows(shard)
    root = open_store(store_path, mode="r+", expect_fingerprint=fingerprint(plan.meta()))
    renderer = ShardRenderer(plan)
    done = np.asarray(root["chunk_done"][:])
    todo = [(c, s, e) for c, s, e in chunk_ranges(start, stop, plan.chunk_rows) if not done[c]]
    t0 = time.perf_counter()
    with tqdm(total=sum(e - s for _, s, e in todo), desc=f"{plan.synth}/{plan.split} shard {shard}",
              unit="preset", mininterval=5.0) as bar:
        for c, s, e in todo:
            before = (renderer.rejections.copy(), renderer.render_seconds, renderer.embed_seconds)
            t_chunk = time.perf_counter()
            rows = renderer.rows(s, e, bar)
            for name, data in rows.items():
                root[name][s:e] = data
            reasons = renderer.rejections - before[0]
            root["chunk_stats"][c] = [reasons["too_quiet"], reasons["too_loud"], reasons["non_finite"],
                                      renderer.render_seconds - before[1], renderer.embed_seconds - before[2],
                                      time.perf_counter() - t_chunk]
            root["chunk_done"][c] = 1  # only after every array of the chunk is written
    wall = time.perf_counter() - t0
    n_new = sum(e - s for _, s, e in todo)
    attempts = np.asarray(root["attempts"][start:stop], dtype=np.int64)
    # whole-shard figures come from the per-chunk records (a resumed run rendered only some chunks); this run's
    # figures are labelled as such
    chunks = [c for c, _, _ in chunk_ranges(start, stop, plan.chunk_rows)]
    cs = np.asarray(root["chunk_stats"][chunks[0]:chunks[-1] + 1], dtype=np.float64)
    known = np.isfinite(cs).all(axis=1)
    shard_reasons = {name: int(cs[known, i].sum()) for i, name in enumerate(CHUNK_STATS[:3])}
    info = {
        "synth": plan.synth, "split": plan.split, "shard": shard, "rows": [start, stop],
        "chunks_resumed": len(chunks) - len(todo), "chunks_without_stats": int((~known).sum()),
        "rejections": int(attempts.sum()), "rejections_by_reason": shard_reasons,
        "this_run": {"presets_rendered": n_new, "rejections_by_reason": dict(renderer.rejections),
                     "wall_seconds": round(wall, 3), "render_seconds": round(renderer.render_seconds, 3),
                     "embed_seconds": round(renderer.embed_seconds, 3),
                     "presets_per_second": round(n_new / wall, 3) if n_new and wall > 0 else None},
        "synthproxy_version": __version__,
    }
    write_json_atomic(marker, info)
    return info


def finalize_split(plan: DatasetPlan, store_path: Path, shard_markers: list[Path], out: Path) -> dict:
    """Verify completeness and record split statistics in the store and in ``out``."""
    root = open_store(store_path, mode="r+", expect_fingerprint=fingerprint(plan.meta()))
    done = np.asarray(root["chunk_done"][:])
    if not done.all():
        missing = np.flatnonzero(done == 0)
        raise StoreError(
            f"{store_path}: {len(missing)} chunk(s) not written (first: {missing[:5].tolist()}); rerun the "
            "render_shard jobs"
        )
    shards = [json.loads(Path(m).read_text()) for m in shard_markers]
    levels = np.asarray(root["rms"][:], dtype=np.float64)
    presets = root["presets"]
    finite = all(np.isfinite(np.asarray(root["embeddings"][k][:])).all() for k in root["embeddings"].array_keys())
    if not finite or not np.isfinite(levels).all():
        raise StoreError(f"{store_path}: the store holds NaN values although every chunk is marked done")
    # Statistics come from the per-chunk records, not the shard markers: a resumed or re-run shard only
    # renders its missing chunks, but the split's figures must cover every chunk.
    cs = np.asarray(root["chunk_stats"][:], dtype=np.float64)
    known = np.isfinite(cs).all(axis=1)
    col = {name: cs[known, i].sum() for i, name in enumerate(CHUNK_STATS)}
    reasons = {k: int(col[k]) for k in ("too_quiet", "too_loud", "non_finite") if col[k]}
    wall = float(col["wall_seconds"])
    rendered = int(sum(e - s for c, s, e in chunk_ranges(0, plan.size, plan.chunk_rows) if known[c]))
    stats = {
        "synth": plan.synth, "split": plan.split, "presets": int(presets.shape[0]),
        "params": int(presets.shape[1]), "spec_hash": plan.spec.hash,
        "rejections": int(np.asarray(root["attempts"][:], dtype=np.int64).sum()),
        "rejections_by_reason": reasons,
        "chunks_without_stats": int((~known).sum()),
        "rms_mean": float(levels.mean()), "rms_std": float(levels.std()),
        "rms_min": float(levels.min()), "rms_max": float(levels.max()),
        "shards": len(shards), "render_seconds": round(float(col["render_seconds"]), 3),
        "embed_seconds": round(float(col["embed_seconds"]), 3), "wall_seconds": round(wall, 3),
        "presets_per_second_per_job": round(rendered / wall, 3) if wall > 0 and rendered else None,
        "embeddings": {k: list(root["embeddings"][k].shape) for k in root["embeddings"].array_keys()},
    }
    root.attrs.update({"complete": True, "stats": stats})
    write_json_atomic(out, stats)
    return stats
