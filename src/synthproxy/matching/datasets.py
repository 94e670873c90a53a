"""Sound-matching data: in-domain presets with their estimator features, and out-of-domain test sounds.

* In-domain (paper 1 Sec. 8): the hand-crafted presets' splits (by source file). Each chosen preset is rendered
  by the real synth through the render core at the proxy's audio-model rate and turned into the estimator's
  input features (:class:`~synthproxy.audio.features.LogMel`); the proxy representation's stored embedding is the
  audio-loss target. Written chunk by chunk into ``results/data/<synth>/matching.zarr``
  (:mod:`synthproxy.data.matching_store`); the training split's scalar min/max scale the estimator's input.
* Out-of-domain: clips of the out-of-domain set (:mod:`synthproxy.soundsets`), resampled to the proxy's rate and
  padded/trimmed to the render length (as the official code does with NSynth), features computed on the fly.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from synthproxy.audio.features import LogMel, MinMaxScaler
from synthproxy.audio.representations import resample
from synthproxy.data.atomic import write_json_atomic
from synthproxy.data.audio_store import iter_audio_batches, open_audio_store
from synthproxy.data.matching_store import create_matching_store, feature_stats, open_matching_store, split_rows
from synthproxy.data.store import SPLITS, open_store, require_embedding
from synthproxy.errors import ConfigError, StoreError
from synthproxy.pipeline.plan import SynthPlan

log = logging.getLogger("synthproxy.matching")


@dataclass
class MatchingPlan(SynthPlan):
    """A synth's sound-matching settings: the proxy's representation (rate, embedding key) and the features."""

    def __post_init__(self) -> None:
        if "matching" not in self.cfg or self.synth not in self.cfg["matching"]["synths"]:
            raise ConfigError(f"matching.synths has no entry for '{self.synth}'")
        super().__post_init__()
        self.m = self.cfg["matching"]
        self.key = self.cfg["training"]["representation"]
        if self.key not in self.reps:
            raise ConfigError(f"training.representation '{self.key}' is not among the representations")
        rep, _ = self.reps[self.key]
        self.sample_rate = rep.sample_rate
        self.n_samples = self.render.settings(self.sample_rate).n_samples
        self.features = LogMel.from_config(dict(self.m["features"]), self.sample_rate)
        self.chunk_rows = int(self.m["chunk_rows"])

    @property
    def feature_shape(self) -> tuple[int, int]:
        return self.features.n_mels, self.features.n_frames(self.n_samples)

    def meta(self, handcrafted_fingerprint: str | None, counts: dict[str, int]) -> dict[str, Any]:
        return {"synth": self.synth, **self.spec_meta(), "embedding": self.key, "sample_rate": self.sample_rate,
                "n_samples": self.n_samples, "features": self.features.settings(), "counts": counts,
                "render": self.render.meta(("note", "velocity", "note_duration", "duration", "block_size", "fade_out")),
                "handcrafted_fingerprint": handcrafted_fingerprint, "presets": dict(self.m["presets"])}

    def strategies(self) -> dict[str, Any]:
        from synthproxy.matching.losses import TERMS
        from synthproxy.matching.schedules import strategies_from_config

        return strategies_from_config(self.m["strategies"], TERMS, "matching.strategies")

    def models(self) -> dict[str, tuple[str, str | None]]:
        """Estimators to train: ``{name: (strategy, relaxation)}``; a strategy without audio loss is trained once."""
        return matching_models(self.m)

    def estimator_settings(self, device: str | None = None, threads: int | None = None) -> dict[str, Any]:
        """``matching.train`` with the synth's overrides, the estimator choice and the run's device/threads."""
        out = dict(self.m.get("train", {})) | dict(self.m["synths"][self.synth] or {})
        out |= {"estimator": self.m["estimator"]["name"], "estimator_options": dict(self.m["estimator"]["options"])}
        if device:
            out["device"] = device
        if threads:
            out["threads"] = threads
        return out

    def core(self):
        """The render core at the proxy's rate, without representations (the features are computed here)."""
        from synthproxy.render import RenderEmbedder

        return RenderEmbedder(self.spec, self.render, None, self.synth_cfg.get("plugin"), [self.sample_rate])


def matching_models(m: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """``{model name: (strategy, relaxation)}`` of a ``matching`` config section (names: ``ploss``, ``mix_hard``,
    ...): every strategy with an audio loss once per relaxation, the others once (no proxy, no relaxation)."""
    out: dict[str, tuple[str, str | None]] = {}
    for name, entry in m["strategies"].items():
        weights = entry.get("weights", {})
        audio = weights.get("audio", 0.0)
        uses_audio = any(w != 0 for _, w in audio) if isinstance(audio, list) else audio != 0
        if uses_audio:
            out |= {f"{name}_{r}": (name, r) for r in m["relaxations"]}
        else:
            out[name] = (name, None)
    return out


def _choose(rows: np.ndarray, limit: int | None, seed: int, tag: str) -> np.ndarray:
    """At most ``limit`` of ``rows``, a deterministic seeded subset kept in store order."""
    if limit is None or len(rows) <= limit:
        return rows
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}/{tag}".encode()).digest()[:8], "little"))
    return np.sort(rng.choice(rows, int(limit), replace=False))


def build_in_domain(plan: MatchingPlan, handcrafted_store: Path, out_store: Path, marker: Path) -> dict[str, Any]:
    """Render the chosen hand-crafted presets and write their features (resumable); statistics into ``marker``."""
    hc = open_store(handcrafted_store)
    if hc.attrs.get("complete") is not True:
        raise StoreError(f"{handcrafted_store} is incomplete: run the workflow's finalize_handcrafted step")
    if hc.attrs.get("spec_hash") != plan.spec.hash:
        raise StoreError(f"{handcrafted_store} holds presets of another spec ({hc.attrs.get('spec_hash')} vs "
                         f"{plan.spec.hash}); rerun import_handcrafted")
    valid = np.asarray(hc["valid"][:]).astype(bool)
    split = np.asarray(hc["split"][:])
    chosen, codes = [], []
    for code, name in enumerate(SPLITS):
        rows = _choose(np.flatnonzero(valid & (split == code)), plan.m["presets"][name], plan.cfg["seed"],
                       f"matching/{plan.synth}/{name}")
        chosen.append(rows)
        codes.append(np.full(len(rows), code, dtype=np.uint8))
    rows = np.concatenate(chosen)
    if not all(len(c) for c in chosen):
        raise StoreError(f"{handcrafted_store}: a split has no valid preset ({[len(c) for c in chosen]} for "
                         f"{list(SPLITS)}); import more hand-crafted presets")
    counts = {name: len(c) for name, c in zip(SPLITS, chosen, strict=True)}
    arrays = {"presets": np.asarray(hc["presets"].get_orthogonal_selection((rows, slice(None))), dtype=np.float32),
              "embedding": np.asarray(require_embedding(hc, plan.key, handcrafted_store).get_orthogonal_selection(
                  (rows, slice(None))), dtype=np.float32),
              "split": np.concatenate(codes), "source_row": rows.astype(np.int32)}
    root = create_matching_store(out_store, arrays, plan.feature_shape, plan.chunk_rows,
                                 plan.meta(hc.attrs.get("fingerprint"), counts))
    done = np.asarray(root["chunk_done"][:])
    core = plan.core()
    n = len(rows)
    todo = [c for c in range(len(done)) if not done[c]]
    with tqdm(total=sum(min(n, (c + 1) * plan.chunk_rows) - c * plan.chunk_rows for c in todo),
              desc=f"{plan.synth} matching features", unit="preset", mininterval=5.0) as bar:
        for c in todo:
            s, e = c * plan.chunk_rows, min(n, (c + 1) * plan.chunk_rows)
            plugin = plan.spec.to_plugin(arrays["presets"][s:e])
            audio = np.stack([core.render(v) for v in plugin])
            bar.update(e - s)
            if not np.isfinite(audio).all():
                raise StoreError(f"{plan.synth}: a hand-crafted preset rendered non-finite audio (rows {s}..{e})")
            root["features"][s:e] = plan.features(audio).numpy()
            root["chunk_done"][c] = 1
    core.close()
    stats = feature_stats(root, split_rows(root, "train"))
    root.attrs.update({"complete": True, "stats": stats})
    info = {"synth": plan.synth, "store": str(out_store), "counts": counts, "stats": stats,
            "feature_shape": list(plan.feature_shape), "render_seconds": round(core.render_seconds, 3)}
    write_json_atomic(marker, info)
    return info


@dataclass
class InDomain:
    """The rows of one split of a matching store, in memory: scaled features, presets, target embeddings."""

    features: np.ndarray
    presets: np.ndarray
    embedding: np.ndarray
    rows: np.ndarray


def load_split(store: Path, split: str, scaler: MinMaxScaler | None = None, limit: int | None = None) -> InDomain:
    """Features (scaled when ``scaler`` is given), presets and embeddings of ``split`` (the first ``limit``)."""
    root = open_matching_store(store)
    rows = split_rows(root, split)[:limit]
    if not len(rows):
        raise StoreError(f"{store}: the {split} split is empty")
    feats = np.asarray(root["features"].get_orthogonal_selection((rows, slice(None), slice(None))), np.float32)
    if scaler is not None:
        feats = scaler(feats)
    return InDomain(feats, np.asarray(root["presets"].get_orthogonal_selection((rows, slice(None)))),
                    np.asarray(root["embedding"].get_orthogonal_selection((rows, slice(None)))), rows)


def store_scaler(store: Path) -> MinMaxScaler:
    stats = open_matching_store(store).attrs["stats"]
    return MinMaxScaler(float(stats["low"]), float(stats["high"]))


def fit_clips(audio: np.ndarray, sr_in: int, sample_rate: int, n_samples: int) -> np.ndarray:
    """Clips ``(B, T)`` at ``sr_in`` resampled to ``sample_rate`` and zero-padded/trimmed to ``n_samples``."""
    x = resample(np.asarray(audio, dtype=np.float32), sr_in, sample_rate)
    out = np.zeros((len(x), n_samples), dtype=np.float32)
    m = min(n_samples, x.shape[1])
    out[:, :m] = x[:, :m]
    return out


def out_of_domain_audio(store: Path, split: str, sample_rate: int, n_samples: int, limit: int | None = None
                        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Clips of ``split`` of the out-of-domain set at ``sample_rate``, padded/trimmed to ``n_samples``.

    Returns ``(audio (N, n_samples) float32, metadata columns)``; NSynth-style metadata (note ids, families).
    """
    root = open_audio_store(store)
    sr_in = int(root.attrs["sample_rate"])
    parts, rows_all = [], []
    for rows, audio in iter_audio_batches(root, split, batch_size=64):
        if limit is not None and sum(len(r) for r in rows_all) >= limit:
            break
        parts.append(fit_clips(audio, sr_in, sample_rate, n_samples))
        rows_all.append(np.asarray(rows))
    if not parts:
        raise StoreError(f"{store}: the out-of-domain {split} split is empty")
    audio = np.concatenate(parts)[:limit]
    rows = np.concatenate(rows_all)[:limit]
    meta = {k: np.asarray(root[k].get_orthogonal_selection((rows,))) for k in ("note_id", "instrument_family")}
    return audio, meta | {"rows": rows}
