"""The DDSP stage's studies, composed from the parts (steps ``ddsp-benchmark``, ``ddsp-proxy``, ``proxy-gradients``).

* :func:`run_benchmark`: paper 2 Sec. IV on the configured static variant: every parameter swept around the
  typical preset, the multi-scale spectral loss and its analytic gradient
  (:func:`~synthproxy.matching.ddsp_benchmark.spectral_benchmark`);
* :func:`train_study_proxy`: a preset encoder for the DDSP FX-Env synth, trained by the proxy stage's own
  :func:`~synthproxy.proxy.train.train_encoder` on the in-domain data stores (which have the dataset layout), with
  the architecture ``ddsp.proxy.arch`` (``best``: the one with the highest mean validation MRR across the proxy
  stage's synths) and that architecture's settings from the ``training`` section;
* :func:`embedding_for`: the embedding an estimator's embedding loss goes through: the frozen proxy, or the exact
  synth + representation (no fade: the DDSP data is stored unfaded, so its embeddings are of the raw render);
* :func:`run_gradient_study`: the proxy's and the exact gradients of that loss on held-out presets (the test split)
  and targets at controlled L∞ distances (``ddsp.proxy.radii``; r >= 1: an independent test preset).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from synthproxy.data.atomic import write_text_atomic
from synthproxy.data.store import open_store
from synthproxy.ddsp import DDSPSynth
from synthproxy.errors import ConfigError, StoreError
from synthproxy.matching.ddsp_benchmark import benchmark_summary, spectral_benchmark
from synthproxy.matching.ddsp_data import DDSPPlan
from synthproxy.matching.gradients import ProxyEmbedding, SynthEmbedding, gradient_comparison, summary, target_pairs
from synthproxy.proxy.train import TrainSettings, load_checkpoint, run_summary, train_encoder

log = logging.getLogger("synthproxy.matching")
STUDY_VARIANT = "fx_env"
PROXY_DEFAULTS: dict[str, Any] = {"arch": "best", "pairs": 64, "radii": [0.05, 0.1, 0.2, 0.4, 1.0], "batch": 16}
"""``ddsp.proxy`` keys of the study itself; any other key overrides a training setting of the proxy
(``epochs``, ``batch_size``, ``lr``, ``val_k``, ...)."""
STUDY_KEYS = frozenset({"arch", "pairs", "radii", "batch", "strategy"})


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    write_text_atomic(path, df.to_csv(index=False))


def summary_path(csv: Path) -> Path:
    """Where a study's summary sits beside its full table (``x.csv`` → ``x.summary.csv``)."""
    return Path(csv).with_suffix(".summary.csv")


# ---- Sec. IV benchmark --------------------------------------------------------------------------------
def run_benchmark(cfg: dict[str, Any], out_csv: Path) -> pd.DataFrame:
    """The sweep of every parameter of ``ddsp.benchmark.variant`` (rows: parameter × point) to ``out_csv`` and
    its per-parameter summary (:func:`benchmark_summary`) to :func:`summary_path`; returns the sweep."""
    d = cfg["ddsp"]
    b = d["benchmark"]
    synth = DDSPSynth(b["variant"], sample_rate=int(d["sample_rate"]), duration=float(d["duration"]),
                      note_off=float(d["note_off"]))
    df = spectral_benchmark(synth, steps=int(b["steps"]))
    _write_csv(df, out_csv)
    _write_csv(benchmark_summary(df), summary_path(out_csv))
    return df


# ---- the proxy ----------------------------------------------------------------------------------------
def proxy_options(cfg: dict[str, Any]) -> dict[str, Any]:
    return PROXY_DEFAULTS | dict(cfg["ddsp"].get("proxy") or {})


def choose_arch(cfg: dict[str, Any], summaries: list[Path]) -> str:
    """``ddsp.proxy.arch``, or for ``best`` the architecture with the highest mean validation MRR over the proxy
    stage's synths (``summaries``: their ``results/models/<synth>/<arch>/summary.json``)."""
    arch = proxy_options(cfg)["arch"]
    archs = dict(cfg["training"]["archs"])
    if arch != "best":
        if arch not in archs:
            raise ConfigError(f"ddsp.proxy.arch: '{arch}' is not in training.archs {sorted(archs)} (or 'best')")
        return arch
    scores: dict[str, list[float]] = {}
    for p in summaries:
        p = Path(p)
        if not p.is_file():
            raise StoreError(f"{p}: proxy training summary not found (run the workflow's train_encoder step)")
        scores.setdefault(p.parent.name, []).append(float(json.loads(p.read_text())["best_mrr"]))
    if not scores:
        raise ConfigError("ddsp.proxy.arch: best: no proxy training summary given")
    return max(sorted(scores), key=lambda a: float(np.mean(scores[a])))


def study_train_settings(cfg: dict[str, Any], arch: str, data_dir: Path, out_dir: Path, threads: int | None
                         ) -> TrainSettings:
    """The proxy-stage settings of ``arch`` (``training.settings``, ``epochs``, ``seed``, ``val_k``, ``device``,
    the arch's encoder, batch size and lr), overridden by ``ddsp.proxy``'s training keys and fitted to the data."""
    tr = cfg["training"]
    a = tr["archs"][arch]
    plan = DDSPPlan(cfg, STUDY_VARIANT)
    settings: dict[str, Any] = dict(tr.get("settings", {}))
    settings.update(epochs=tr["epochs"], seed=tr["seed"], val_k=tr["val_k"], device=tr["device"])
    for key in ("encoder", "batch_size", "lr"):
        if a.get(key):
            settings[key] = a[key]
    settings |= {k: v for k, v in proxy_options(cfg).items() if k not in STUDY_KEYS and k not in PROXY_DEFAULTS}
    n_train, n_val = plan.sizes["train"], plan.sizes["val"]
    settings["val_k"] = min(int(settings["val_k"]), n_val)
    if settings.get("batch_size"):
        settings["batch_size"] = min(int(settings["batch_size"]), n_train)
    settings |= {"train_store": Path(data_dir) / "train.zarr", "val_store": Path(data_dir) / "val.zarr",
                 "embedding": plan.key, "arch": arch, "out_dir": Path(out_dir), "threads": threads,
                 "on_stale_checkpoint": "archive"}
    s = TrainSettings.from_dict(settings)
    if s.batch_size > n_train:
        s.batch_size = n_train
    return s


def train_study_proxy(cfg: dict[str, Any], summaries: list[Path], data_dir: Path, out_dir: Path,
                      threads: int | None) -> dict[str, Any]:
    """Train (or resume) the study's proxy on the FX-Env data; its summary (``run_summary`` + embedding, spec)."""
    arch = choose_arch(cfg, summaries)
    settings = study_train_settings(cfg, arch, data_dir, out_dir, threads)
    log.info("ddsp proxy: %s on %s (%s), %d epochs", arch, data_dir, settings.embedding, settings.epochs)
    result = train_encoder(settings)
    plan = DDSPPlan(cfg, STUDY_VARIANT)
    return run_summary(result, settings) | {"embedding": settings.embedding, "spec_hash": plan.spec_hash,
                                            "variant": STUDY_VARIANT, "chosen_from": [str(p) for p in summaries]}


def load_study_proxy(proxy_summary: Path, plan: DDSPPlan, device: torch.device | str = "cpu") -> ProxyEmbedding:
    """The trained proxy (best validation L1) as a frozen :class:`ProxyEmbedding`, checked against ``plan``."""
    path = Path(proxy_summary)
    if not path.is_file():
        raise StoreError(f"{path}: the DDSP proxy's summary is missing (run the workflow's ddsp_proxy step)")
    info = json.loads(path.read_text())
    ckpt = load_checkpoint(info["checkpoints"]["best_l1"], expect_spec_hash=plan.spec_hash,
                           expect_embedding=plan.key, map_location=device)
    return ProxyEmbedding(ckpt.model, device)


def exact_embedding(plan: DDSPPlan) -> SynthEmbedding:
    """Synth + representation, as the data's embeddings were made (the DDSP data is not faded)."""
    return SynthEmbedding(plan.synth, plan.rep, plan.reduction, fade_seconds=0.0)


def embedding_for(kind: str, plan: DDSPPlan, proxy_summary: Path | None) -> Any:
    """The :class:`~synthproxy.matching.gradients.PresetEmbedding` of an estimator's embedding loss."""
    if kind == "exact":
        return exact_embedding(plan)
    if kind == "proxy":
        if proxy_summary is None:
            raise ConfigError("the proxy embedding loss needs --proxy (the ddsp_proxy step's summary.json)")
        return load_study_proxy(proxy_summary, plan)
    raise ConfigError(f"unknown embedding '{kind}': proxy or exact")


# ---- gradient fidelity --------------------------------------------------------------------------------
def run_gradient_study(cfg: dict[str, Any], proxy_summary: Path, data_dir: Path, out_csv: Path) -> pd.DataFrame:
    """Per pair (held-out preset x, target x_j at radius r): cosine and sign agreement of the proxy's and the exact
    gradient of ``L1(embedding(x), exact(x_j))``; full table to ``out_csv``, summary per radius beside it."""
    opts = proxy_options(cfg)
    plan = DDSPPlan(cfg, STUDY_VARIANT)
    test = open_store(Path(data_dir) / "test.zarr")
    if test.attrs.get("complete") is not True:
        raise StoreError(f"{data_dir}/test.zarr is incomplete: run the workflow's ddsp_data step")
    presets = torch.from_numpy(np.asarray(test["presets"][:], dtype=np.float32))
    n = min(int(opts["pairs"]), len(presets))
    if n < 1:
        raise ConfigError("ddsp.proxy.pairs: the test split holds no preset")
    radii = [float(r) for r in opts["radii"]]
    pairs = target_pairs(n, presets.shape[1], radii, seed=int(cfg["seed"]), base=presets[:n], pool=presets)
    df = gradient_comparison(load_study_proxy(proxy_summary, plan), exact_embedding(plan), pairs.presets,
                             target_presets=pairs.target_presets, radius=pairs.radius, batch=int(opts["batch"]),
                             names=list(plan.synth.static_names))
    _write_csv(df, out_csv)
    _write_csv(summary(df), summary_path(out_csv))
    return df
