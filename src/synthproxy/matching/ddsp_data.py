"""In-domain data of the differentiable synth (paper 2 Sec. V-D): uniformly sampled parameters, rendered, checked.

Per variant, ``ddsp.size`` candidates' worth of sounds are split 80/10/10 into ``results/ddsp/data/<variant>/
{train,val,test}.zarr``. Each chunk of rows is generated from its own seeded generator
(``(seed, variant, split, chunk)``): candidates are drawn with :meth:`DDSPSynth.sample_params`, rendered in one
batch, checked by the render core (finite, RMS within ``render.rms_min``/``rms_max``: "silent ones removed"), and
kept until the chunk is full, so a split is the same however it is resumed. The stores have the dataset layout
(:mod:`synthproxy.data.store`: ``presets`` = the static parameters, ``rms``, ``embeddings/<key>`` of the proxy
study's representation, ``chunk_done``) plus ``audio (N, T)``, ``dynamic (N, frames, D)`` for frame-wise
variants and ``f0 (N, frames)`` for external-f0 variants (the pitch tracker's track, librosa pyin), so preset
encoders train on them like on any synth's dataset.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from synthproxy.audio.features import LogMel
from synthproxy.audio.registry import embedding_key, get_representation
from synthproxy.data.atomic import write_json_atomic
from synthproxy.data.rows import ChunkedRows, epoch_order
from synthproxy.data.store import SPLITS, StoreLayout, add_arrays, chunk_ranges, create_store, open_store
from synthproxy.ddsp import DDSPSynth
from synthproxy.errors import ConfigError, StoreError
from synthproxy.render import RenderConfig, RenderEmbedder

log = logging.getLogger("synthproxy.matching")
FRACTIONS = (0.8, 0.1, 0.1)


@dataclass
class DDSPPlan:
    """One DDSP variant of the ``ddsp`` config section: synth, sizes, representation, features."""

    cfg: dict[str, Any]
    variant: str

    def __post_init__(self) -> None:
        if "ddsp" not in self.cfg:
            raise ConfigError("the config has no 'ddsp' section")
        self.d = self.cfg["ddsp"]
        if self.variant not in self.d["variants"]:
            raise ConfigError(f"ddsp variant '{self.variant}' is not in ddsp.variants {self.d['variants']}")
        self.sample_rate = int(self.d["sample_rate"])
        self.synth = DDSPSynth(self.variant, sample_rate=self.sample_rate, duration=float(self.d["duration"]),
                               note_off=float(self.d["note_off"]))
        self.render = RenderConfig.from_config(self.cfg["render"])
        rep = dict(self.d["representation"])
        self.key = embedding_key(rep)
        self.rep = get_representation(rep["name"], **rep.get("options", {}))
        self.reduction = rep["reduction"]
        if self.rep.sample_rate != self.sample_rate:
            raise ConfigError(f"ddsp.representation: '{rep['name']}' runs at {self.rep.sample_rate} Hz, the DDSP synth "
                              f"at {self.sample_rate} Hz; choose a representation at the synth's rate (e.g. mel16k)")
        self.features = LogMel.from_config(dict(self.d["features"]), self.sample_rate)
        self.chunk_rows = int(self.d["chunk_rows"])
        size = int(self.d["size"])
        n_val = n_test = max(1, round(size * FRACTIONS[1]))
        self.sizes = {"train": size - n_val - n_test, "val": n_val, "test": n_test}

    @property
    def n_samples(self) -> int:
        return self.synth.n_samples

    def spec_meta(self) -> dict[str, Any]:
        names = list(self.synth.static_names)
        return {"synth": f"ddsp_{self.variant}", "spec_name": f"ddsp_{self.variant}", "spec_hash": self.spec_hash,
                "param_names": names, "param_kinds": ["num"] * len(names), "cardinalities": [0] * len(names)}

    @property
    def spec_hash(self) -> str:
        """The hash of ``config/synths/ddsp_<variant>.yaml`` when it exists (so proxies match), else our own."""
        from synthproxy.synths.spec import load_spec

        path = Path("config/synths") / f"ddsp_{self.variant}.yaml"
        if path.is_file():
            return load_spec(path).hash
        return hashlib.sha256(f"ddsp/{self.variant}/{list(self.synth.static_names)}".encode()).hexdigest()[:16]

    def meta(self, split: str) -> dict[str, Any]:
        return {**self.spec_meta(), "kind": "ddsp", "engine": "ddsp", "variant": self.variant, "split": split,
                "seed": int(self.cfg["seed"]), "size": self.sizes[split], "chunk_rows": self.chunk_rows,
                "sample_rate": self.sample_rate, "duration": float(self.d["duration"]),
                "note_off": float(self.d["note_off"]), "n_frames": self.synth.n_frames,
                "render": self.render.meta(("rms_min", "rms_max", "fade_out")),
                "sample_rates": [self.sample_rate],
                "representations": {self.key: self.rep.settings() | {"reduction": self.reduction}},
                "pitch_tracker": self.d["pitch_tracker"] if self.synth.external_f0 else None}

    def core(self) -> RenderEmbedder:
        return RenderEmbedder(None, self.render, {self.key: (self.rep, self.reduction)})

    def models(self) -> dict[str, dict[str, Any]]:
        """Estimators of this variant: ``{name: {strategy, estimator, embedding}}`` (see :func:`ddsp_models`)."""
        return ddsp_models(self.d, self.variant)

    def generator(self, split: str, chunk: int) -> torch.Generator:
        digest = hashlib.sha256(f"ddsp/{self.cfg['seed']}/{self.variant}/{split}/{chunk}".encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


PROXY_STRATEGY = {"weights": {"param": [[0.125, 1.0], [0.5, 0.5]], "embedding": [[0.125, 0.0], [0.5, 1.0]]}}
"""The proxy-gradient study's schedule (in-domain; the embedding loss joins the parameter loss, as Mixed)."""
STATIC_VARIANTS = ("raw_env", "fx_env")


def ddsp_models(d: dict[str, Any], variant: str) -> dict[str, dict[str, Any]]:
    """Estimators of a variant: one per strategy (GRU), the Conv2D baseline (P-loss) for the envelope variants,
    and for FX-Env with a ``proxy`` section the two embedding-loss estimators of the proxy-gradient study
    (``proxy_emb``: through the frozen proxy; ``exact_emb``: through the synth and the representation)."""
    out = {name: {"strategy": name, "estimator": d["estimator"]["name"], "embedding": None} for name in d["strategies"]}
    if variant in STATIC_VARIANTS:
        out["conv2d"] = {"strategy": "ploss" if "ploss" in d["strategies"] else next(iter(d["strategies"])),
                         "estimator": "conv2d", "embedding": None}
    if variant == "fx_env" and d.get("proxy"):
        for kind in ("proxy", "exact"):
            out[f"{kind}_emb"] = {"strategy": f"{kind}_emb", "estimator": d["estimator"]["name"], "embedding": kind}
    return out


def ddsp_strategies(d: dict[str, Any]) -> dict[str, Any]:
    """The configured strategies plus the proxy study's (named ``proxy_emb`` and ``exact_emb``)."""
    from synthproxy.matching.schedules import strategies_from_config

    raw = dict(d["strategies"])
    study = dict(d.get("proxy", {}).get("strategy", PROXY_STRATEGY))
    raw |= {"proxy_emb": study, "exact_emb": study}
    return strategies_from_config(raw, ("param", "spectral", "embedding"), "ddsp.strategies")


def pitch_track(audio: np.ndarray, sample_rate: int, n_frames: int) -> np.ndarray:
    """f0 tracks ``(N, n_frames)`` in Hz with librosa's pyin (unvoiced frames filled from the nearest voiced ones,
    clips with no voiced frame at the track's median range: 220 Hz)."""
    import librosa

    out = np.empty((len(audio), n_frames), dtype=np.float32)
    for i, clip in enumerate(audio):
        f0, voiced, _ = librosa.pyin(clip, fmin=32.5, fmax=1980.0, sr=sample_rate, frame_length=2048)
        f0 = np.asarray(f0, dtype=np.float64)
        good = np.isfinite(f0) & np.asarray(voiced)
        if not good.any():
            out[i] = 220.0
            continue
        idx = np.arange(len(f0))
        filled = np.interp(idx, idx[good], f0[good])
        out[i] = np.interp(np.linspace(0, len(f0) - 1, n_frames), idx, filled)
    return out


def _generate_chunk(plan: DDSPPlan, core: RenderEmbedder, split: str, chunk: int, n: int, max_rounds: int = 64
                    ) -> dict[str, np.ndarray]:
    """``n`` checked rows of one chunk: parameters, audio, RMS, attempts (rejected candidates before each row)."""
    gen = plan.generator(split, chunk)
    kept: dict[str, list[np.ndarray]] = {"presets": [], "audio": [], "rms": [], "attempts": []}
    if plan.synth.n_dynamic:
        kept["dynamic"] = []
    if plan.synth.external_f0:
        kept["f0_hz"] = []
    rejected = 0
    for _ in range(max_rounds):
        params = plan.synth.sample_params(n, gen)
        with torch.no_grad():
            audio = plan.synth(params.static, params.dynamic, params.f0_hz).numpy()
        for i in range(n):
            check = core.check(audio[i])
            if not check.ok:
                rejected += 1
                continue
            kept["presets"].append(params.static[i].numpy())
            kept["audio"].append(audio[i])
            kept["rms"].append(np.float32(check.level))
            kept["attempts"].append(np.uint16(min(rejected, 65535)))
            rejected = 0
            if params.dynamic is not None:
                kept["dynamic"].append(params.dynamic[i].numpy())
            if params.f0_hz is not None:
                kept["f0_hz"].append(params.f0_hz[i].numpy())
            if len(kept["presets"]) == n:
                return {k: np.stack(v) for k, v in kept.items()}
    raise StoreError(f"ddsp {plan.variant}/{split} chunk {chunk}: too few sounds pass the RMS check in {max_rounds} "
                     "rounds; check render.rms_min/max")


def build_ddsp_split(plan: DDSPPlan, split: str, store: Path, progress: tqdm | None = None) -> dict[str, Any]:
    """Fill (or resume) one split's store; returns its statistics."""
    n = plan.sizes[split]
    if n < 1:
        raise ConfigError(f"ddsp.size is too small: the {split} split would be empty")
    core = plan.core()
    layout = StoreLayout(n, len(plan.synth.static_names), plan.chunk_rows,
                         {plan.key: plan.rep.dim(plan.n_samples, plan.reduction)})
    root = create_store(store, layout, plan.meta(split))
    c = plan.chunk_rows
    extra = {"audio": ((n, plan.n_samples), (c, plan.n_samples), "float32")}
    if plan.synth.n_dynamic:
        extra["dynamic"] = ((n, plan.synth.n_frames, plan.synth.n_dynamic), (c, plan.synth.n_frames,
                                                                              plan.synth.n_dynamic), "float32")
    if plan.synth.external_f0:
        extra["f0"] = ((n, plan.synth.n_frames), (c, plan.synth.n_frames), "float32")
    add_arrays(root, extra)
    done = np.asarray(root["chunk_done"][:])
    for ci, s, e in chunk_ranges(0, n, c):
        if done[ci]:
            continue
        rows = _generate_chunk(plan, core, split, ci, e - s)
        emb = core.embed({plan.sample_rate: rows["audio"]})[plan.key]
        root["presets"][s:e] = rows["presets"]
        root["audio"][s:e] = rows["audio"]
        root["rms"][s:e] = rows["rms"]
        root["attempts"][s:e] = rows["attempts"]
        root["embeddings"][plan.key][s:e] = emb
        if "dynamic" in rows:
            root["dynamic"][s:e] = rows["dynamic"]
        if plan.synth.external_f0:
            root["f0"][s:e] = pitch_track(rows["audio"], plan.sample_rate, plan.synth.n_frames)
        root["chunk_done"][ci] = 1
        if progress is not None:
            progress.update(e - s)
    attempts = np.asarray(root["attempts"][:], dtype=np.int64)
    stats = {"variant": plan.variant, "split": split, "presets": n, "rejections": int(attempts.sum()),
             "rms_mean": float(np.asarray(root["rms"][:]).mean())}
    root.attrs.update({"complete": True, "stats": stats})
    return stats


def build_ddsp_data(plan: DDSPPlan, out_dir: Path, marker: Path) -> dict[str, Any]:
    """Every split of a variant's in-domain data; statistics into ``marker``."""
    out: dict[str, Any] = {"variant": plan.variant, "splits": {}}
    with tqdm(total=sum(plan.sizes.values()), desc=f"ddsp {plan.variant} data", unit="sound", mininterval=5) as bar:
        for split in SPLITS:
            out["splits"][split] = build_ddsp_split(plan, split, Path(out_dir) / f"{split}.zarr", bar)
    write_json_atomic(marker, out)
    return out


@dataclass
class DDSPSet:
    """Rows of a split: features ``(B, bands, frames)``, static ``(B, P)``, dynamic, f0, audio ``(B, T)``,
    embedding targets ``(B, D)``; ``None`` for what the split does not have."""

    features: torch.Tensor
    static: torch.Tensor | None
    dynamic: torch.Tensor | None
    f0: torch.Tensor | None
    audio: torch.Tensor
    embedding: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.audio)

    def select(self, idx: torch.Tensor) -> DDSPSet:
        return DDSPSet(*(None if t is None else t[idx] for t in (
            self.features, self.static, self.dynamic, self.f0, self.audio, self.embedding)))


class DDSPSplit:
    """A split read in batches, resident or streamed (:mod:`synthproxy.data.rows`).

    Resident (at most :func:`~synthproxy.data.rows.resident_bytes`): read once, features computed once, epochs
    fully shuffled. Streamed: rows come from the Zarr chunks through a bounded cache, ``make`` turns them into a
    :class:`DDSPSet` (features per batch), and epochs follow the chunk-aware :func:`~synthproxy.data.rows.epoch_order`.
    """

    def __init__(self, n: int, resident: DDSPSet | None = None, rows: ChunkedRows | None = None,
                 make: Callable[[np.ndarray, dict[str, np.ndarray]], DDSPSet] | None = None) -> None:
        if (resident is None) == (rows is None):
            raise ValueError("a DDSPSplit is either resident or streamed")
        self.n, self.resident, self.rows, self.make = n, resident, rows, make

    def __len__(self) -> int:
        return self.n

    def batch(self, idx: torch.Tensor) -> DDSPSet:
        if self.resident is not None:
            return self.resident.select(idx)
        idx_np = np.asarray(idx, dtype=np.int64)
        return self.make(idx_np, self.rows.take(idx_np))

    def order(self, generator: torch.Generator) -> torch.Tensor:
        """One epoch's row order (a pure function of the generator's state)."""
        if self.resident is not None:
            return torch.randperm(self.n, generator=generator)
        return epoch_order(self.rows, generator)

    def batches(self, size: int) -> Iterator[DDSPSet]:
        """Consecutive batches in row order (validation, evaluation)."""
        for b in range(0, self.n, size):
            yield self.batch(torch.arange(b, min(b + size, self.n)))


def load_ddsp_split(plan: DDSPPlan, store: Path, limit: int | None = None,
                    resident: int | None = None) -> DDSPSplit:
    """The in-domain split ``store`` (its first ``limit`` rows), resident when it fits ``resident`` bytes
    (default :func:`~synthproxy.data.rows.resident_bytes`), else streamed."""
    root = open_store(store)
    if root.attrs.get("complete") is not True:
        raise StoreError(f"{store} is incomplete: run the workflow's ddsp_data step")
    n = root["presets"].shape[0] if limit is None else min(limit, root["presets"].shape[0])
    arrays = {"audio": root["audio"], "static": root["presets"], "embedding": root["embeddings"][plan.key]}
    arrays |= {k: root[k] for k in ("dynamic", "f0") if k in root}
    rows = ChunkedRows(arrays, np.arange(n) if n < root["presets"].shape[0] else None, resident)

    def make(_: np.ndarray, d: dict[str, np.ndarray]) -> DDSPSet:
        t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in d.items()}
        audio = t["audio"].to(torch.float32)
        return DDSPSet(plan.features(audio), t["static"], t.get("dynamic"), t.get("f0"), audio, t["embedding"])

    if rows.resident:
        return DDSPSplit(n, resident=make(np.arange(n), rows.everything()))
    return DDSPSplit(n, rows=rows, make=make)
