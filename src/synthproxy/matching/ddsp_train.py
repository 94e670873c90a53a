"""Sound matching with the differentiable synth (paper 2 Sec. III, V): estimator training and evaluation.

The estimator (Conv1d+GRU, :class:`~synthproxy.nn.estimators.GRUEstimator`) hears the log-mel of a sound and
predicts the variant's static parameters (last frame) and frame-wise controls; the DDSP synth renders the
prediction, so the multi-scale spectral loss (eq. 4) has exact gradients. Loss terms, weighted over training by a
strategy (:mod:`synthproxy.matching.schedules`; P-loss, Synth, Real, Mixed, Fig. 6):

* ``param``: L1 of the static and dynamic parameters × ``param_scale`` (paper: 20), in-domain only;
* ``spectral``: multi-scale spectral loss between the target and the synth's render of the prediction;
* ``embedding``: L1 between an embedding of the prediction and of the target, through a :class:`PresetEmbedding`
  (the frozen proxy, or the exact synth + representation; the proxy-gradient study, FX-Env only).

Real switches to out-of-domain sounds for the second half; Mixed alternates in-domain and out-of-domain batches
(the parameter loss is zero on out-of-domain sounds, which have no parameters). Adam with an exponential decay
per epoch (paper: lr 0.005, 0.99); the checkpoint with the best validation spectral loss is kept. Training runs
through :func:`synthproxy.training.loop.fit`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from synthproxy import __version__
from synthproxy.data.atomic import write_json_atomic
from synthproxy.data.audio_store import open_audio_store, split_rows
from synthproxy.data.rows import ChunkedRows, resident_bytes
from synthproxy.ddsp.core import resample_frames
from synthproxy.errors import ConfigError, StoreError
from synthproxy.matching.datasets import fit_clips, out_of_domain_audio
from synthproxy.matching.ddsp_benchmark import parameter_frame
from synthproxy.matching.ddsp_data import DDSPPlan, DDSPSet, DDSPSplit, load_ddsp_split, pitch_track
from synthproxy.matching.schedules import Strategy
from synthproxy.metrics.audio import compute_audio_metrics
from synthproxy.metrics.spectral import MultiScaleSpectralLoss
from synthproxy.nn.estimators import build_estimator
from synthproxy.nn.stable import stable_l1
from synthproxy.training.checkpoint import read_checkpoint
from synthproxy.training.loop import FitSettings, Selection, StepInfo, fit
from synthproxy.training.runtime import resolve_device, seeded_runtime
from synthproxy.training.schedule import ExponentialDecaySchedule
from synthproxy.training.settings import same_settings_check, settings_from_dict

log = logging.getLogger("synthproxy.matching")
CHECKPOINT_FORMAT = "synthproxy-ddsp-estimator-checkpoint"
TERMS = ("param", "spectral", "embedding")
EFFECTS = ("chorus_delay", "chorus_mix", "reverb_gain", "reverb_decay")
HISTORY = ["epoch", "train_loss", "val_spectral", "val_param_l1", "lr", "seconds", "steps"]


@dataclass
class DDSPTrainSettings:
    """``ddsp.train``; paper values in brackets (the official code uses lr 5e-4 and other weights)."""

    epochs: int = 40
    """[400]"""
    batch_size: int = 32
    """[64]"""
    lr: float = 5e-3
    decay: float = 0.99
    param_scale: float = 20.0
    validate_every: int = 5
    val_size: int | None = 64
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    estimator: str = "gru"
    estimator_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DDSPTrainSettings:
        return settings_from_dict(cls, data, "ddsp.train")


class Estimate:
    """An estimator's prediction split into what the synth takes."""

    def __init__(self, out: Any, synth: nn.Module) -> None:
        self.static = out.static if hasattr(out, "static") else out
        dyn = getattr(out, "dynamic", None)
        self.dynamic = resample_frames(dyn, synth.n_frames) if synth.n_dynamic and dyn is not None else None


def make_estimator(settings: DDSPTrainSettings, plan: DDSPPlan) -> nn.Module:
    synth = plan.synth
    kwargs = {"n_static": len(synth.static_names)} | dict(settings.estimator_options)
    if settings.estimator == "gru":
        kwargs |= {"n_dynamic": synth.n_dynamic, "n_mels": plan.features.n_mels}
    elif synth.n_dynamic:
        raise ConfigError(f"estimator '{settings.estimator}' predicts static parameters only; variant "
                          f"'{plan.variant}' needs frame-wise controls (use gru)")
    else:
        kwargs |= {"n_mels": plan.features.n_mels, "n_frames": plan.features.n_frames(plan.n_samples)}
    return build_estimator(settings.estimator, **kwargs)


def param_l1(est: Estimate, static: torch.Tensor, dynamic: torch.Tensor | None) -> torch.Tensor:
    """Mean L1 over every static and dynamic parameter value (eq. 5's parameter loss)."""
    parts = [(est.static - static).abs().flatten(1)]
    if dynamic is not None and est.dynamic is not None:
        parts.append((est.dynamic - dynamic).abs().flatten(1))
    return torch.cat(parts, dim=1).mean()


def train_ddsp_estimator(plan: DDSPPlan, data_dir: Path, ood_store: Path | None, strategy: Strategy,
                         settings: DDSPTrainSettings, out_dir: Path, model_name: str,
                         embedding: nn.Module | None = None, embedding_name: str | None = None) -> dict[str, Any]:
    """Train (or resume) one paper-2 estimator; returns its summary."""
    s = settings
    device = resolve_device(s.device)
    train = load_ddsp_split(plan, Path(data_dir) / "train.zarr")
    val = load_ddsp_split(plan, Path(data_dir) / "val.zarr", s.val_size)
    ood = None
    if strategy.needs_out_of_domain:
        if ood_store is None:
            raise ConfigError(f"strategy '{strategy.name}' trains on out-of-domain sounds: configure out_of_domain")
        ood = ood_set(plan, ood_store, "train", None, embedding_targets="embedding" in strategy.uses)
    if "embedding" in strategy.uses and embedding is None:
        raise ConfigError(f"strategy '{strategy.name}' uses the embedding loss: give a proxy or the exact embedding")
    synth = plan.synth.to(device)
    mss = MultiScaleSpectralLoss()
    bs = min(s.batch_size, len(train))
    steps = len(train) // bs
    total = steps * s.epochs

    def render(m: nn.Module, x: torch.Tensor, f0: torch.Tensor | None) -> tuple[Estimate, torch.Tensor]:
        est = Estimate(m(x), synth)
        return est, synth(est.static, est.dynamic, f0)

    with seeded_runtime(s.seed, True, s.threads, device):
        model = make_estimator(s, plan).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=s.lr)
        sched = ExponentialDecaySchedule(s.lr, s.decay, steps)

        def batches(epoch: int):
            gen = torch.Generator().manual_seed(s.seed * 7919 + epoch)
            order = train.order(gen)
            ood_order = ood.order(gen) if ood is not None else None
            for b in range(steps):
                rows = order[b * bs:(b + 1) * bs]
                o_rows = None if ood_order is None else ood_order[(b * bs) % len(ood_order):][:bs]
                yield rows, o_rows

        def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor | None], info: StepInfo):
            rows, o_rows = batch
            source = strategy.source_at(info.step, total)
            if source == "alternate":
                source = "in_domain" if info.step % 2 == 0 else "out_of_domain"
            w = strategy.weights_at(info.step, total)
            data, idx = (train, rows) if source == "in_domain" or o_rows is None else (ood, o_rows)
            b = data.batch(idx)
            x = b.features[:, None].to(device) if s.estimator == "conv2d" else b.features.to(device)
            f0 = b.f0.to(device) if b.f0 is not None else None
            need_audio = w.get("spectral", 0.0) != 0.0
            if need_audio:
                est, audio_hat = render(m, x, f0)
            else:
                est, audio_hat = Estimate(m(x), synth), None
            loss = x.new_zeros(())
            if data is train and w.get("param", 0.0):
                dyn = b.dynamic.to(device) if b.dynamic is not None else None
                loss = loss + w["param"] * s.param_scale * param_l1(est, b.static.to(device), dyn)
            if need_audio:
                loss = loss + w["spectral"] * mss(b.audio.to(device), audio_hat)
            if w.get("embedding", 0.0) and embedding is not None:
                loss = loss + w["embedding"] * stable_l1(embedding(est.static), b.embedding.to(device))
            return loss, len(idx)

        def validate(m: nn.Module) -> dict[str, float]:
            m.eval()
            losses, p_l1 = [], []
            with torch.no_grad():
                for b in val.batches(bs):
                    x = b.features.to(device)
                    x = x[:, None] if s.estimator == "conv2d" else x
                    est, audio_hat = render(m, x, b.f0.to(device) if b.f0 is not None else None)
                    losses.append(float(mss.per_example(b.audio.to(device), audio_hat).sum()))
                    dyn = b.dynamic.to(device) if b.dynamic is not None else None
                    p_l1.append(float(param_l1(est, b.static.to(device), dyn)) * len(b))
            m.train()
            n = len(val)
            return {"val_spectral": sum(losses) / n, "val_param_l1": sum(p_l1) / n}

        meta = {"format": CHECKPOINT_FORMAT, "version": 1, "variant": plan.variant, "model_name": model_name,
                "strategy": strategy.name, "strategy_weights": {t: list(c.points) for t, c in strategy.weights.items()},
                "strategy_data": list(strategy.data), "embedding": embedding_name, "features": plan.features.settings(),
                "sample_rate": plan.sample_rate, "hyperparameters": dataclasses.asdict(s),
                "synthproxy_version": __version__}

        check_resumable = same_settings_check(
            meta, ("strategy_weights", "strategy_data", "embedding", "features", "hyperparameters"))

        result = fit(model, opt, sched, batches, loss_fn, validate,
                     FitSettings(epochs=s.epochs, out_dir=out_dir, on_stale_checkpoint="archive",
                                 validate_every=s.validate_every, train_loss_name="train_loss",
                                 checkpoint_format=CHECKPOINT_FORMAT),
                     [Selection("best", "val_spectral", "min")], meta, check_resumable, HISTORY, steps_per_epoch=steps)
    return {"variant": plan.variant, "model": model_name, "strategy": strategy.name, "embedding": embedding_name,
            "checkpoint": str(Path(out_dir) / "best.pt"), "best_val_spectral": result.best["val_spectral"],
            "best_epoch": result.best["val_spectral_epoch"], "epochs_done": result.epochs_done,
            "n_train": len(train), "n_params": sum(p.numel() for p in model.parameters())}


def ood_set(plan: DDSPPlan, store: Path, split: str, limit: int | None, embedding_targets: bool = False,
            resident: int | None = None) -> DDSPSplit:
    """Out-of-domain clips at the synth's rate and length, with features (and f0 tracks for f0 variants, and the
    representation's embeddings as targets when asked). Resident when the clips fit ``resident`` bytes (default
    :func:`~synthproxy.data.rows.resident_bytes`); else
    streamed, with f0 tracks and embeddings computed per batch and kept (a few KB per clip)."""
    root = open_audio_store(store)
    rows = split_rows(root, split)[:limit]
    if not len(rows):
        raise StoreError(f"{store}: the out-of-domain {split} split is empty")
    sr_in = int(root.attrs["sample_rate"])
    if len(rows) * plan.n_samples * 4 <= (resident_bytes() if resident is None else resident):
        audio, _ = out_of_domain_audio(store, split, plan.sample_rate, plan.n_samples, limit)
        f0 = torch.from_numpy(pitch_track(audio, plan.sample_rate, plan.synth.n_frames)) \
            if plan.synth.external_f0 else None
        x = torch.from_numpy(audio)
        emb = torch.from_numpy(plan.core().embed({plan.sample_rate: audio})[plan.key]) if embedding_targets else None
        return DDSPSplit(len(x), resident=DDSPSet(plan.features(x), None, None, f0, x, emb))
    f0_cache: dict[int, np.ndarray] = {}
    emb_cache: dict[int, np.ndarray] = {}

    def cached(cache: dict[int, np.ndarray], idx: np.ndarray, audio: np.ndarray,
               fn: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
        todo = [j for j, i in enumerate(idx) if int(i) not in cache]
        if todo:
            for j, v in zip(todo, fn(audio[todo]), strict=True):
                cache[int(idx[j])] = v
        return torch.from_numpy(np.stack([cache[int(i)] for i in idx]))

    def make(idx: np.ndarray, d: dict[str, np.ndarray]) -> DDSPSet:
        audio = fit_clips(d["audio"], sr_in, plan.sample_rate, plan.n_samples)
        f0 = cached(f0_cache, idx, audio, lambda a: pitch_track(a, plan.sample_rate, plan.synth.n_frames)) \
            if plan.synth.external_f0 else None
        emb = cached(emb_cache, idx, audio, lambda a: plan.core().embed({plan.sample_rate: a})[plan.key]) \
            if embedding_targets else None
        x = torch.from_numpy(audio)
        return DDSPSet(plan.features(x), None, None, f0, x, emb)

    return DDSPSplit(len(rows), rows=ChunkedRows({"audio": root["audio"]}, rows, resident_limit=0), make=make)


def load_ddsp_estimator(path: Path, plan: DDSPPlan, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    ckpt = read_checkpoint(path, device, CHECKPOINT_FORMAT)
    if ckpt["variant"] != plan.variant:
        raise ConfigError(f"{path} is an estimator of variant {ckpt['variant']}, not {plan.variant}")
    settings = DDSPTrainSettings.from_dict(ckpt["hyperparameters"])
    with torch.random.fork_rng(devices=[]):
        model = make_estimator(settings, plan)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt | {"settings": settings}


def _predict(model: nn.Module, data: DDSPSplit, plan: DDSPPlan, conv2d: bool, device: torch.device,
             metrics: list[str], batch: int = 32) -> tuple[torch.Tensor, dict[str, np.ndarray], np.ndarray | None]:
    """Predictions for every row in batches: static parameters ``(N, P)``, the audio metrics of their renders
    against the targets (per row), and the parameter L1 per row when the split has parameters. Only one
    batch of audio is held at a time."""
    statics, scores, errors = [], [], []
    with torch.no_grad():
        for b in data.batches(batch):
            x = b.features.to(device)
            x = x[:, None] if conv2d else x
            est = Estimate(model(x), plan.synth)
            audio = plan.synth(est.static, est.dynamic, b.f0.to(device) if b.f0 is not None else None)
            scores.append(compute_audio_metrics(b.audio.numpy(), audio.cpu().numpy(), plan.sample_rate, metrics))
            statics.append(est.static.cpu())
            if b.static is not None:
                err = [(est.static.cpu() - b.static).abs().flatten(1)]
                if est.dynamic is not None and b.dynamic is not None:
                    err.append((est.dynamic.cpu() - b.dynamic).abs().flatten(1))
                errors.append(torch.cat(err, dim=1).numpy())
    merged = {k: np.concatenate([s[k] for s in scores]) for k in scores[0]}
    return torch.cat(statics), merged, (np.concatenate(errors) if errors else None)


def evaluate_ddsp_estimator(path: Path, plan: DDSPPlan, data_dir: Path, ood_store: Path | None, out_json: Path,
                            device: torch.device) -> dict[str, Any]:
    """LSD, MCD and loudness L1 (+ parameter L1 in-domain) on the test splits; effect parameters out of domain."""
    model, ckpt = load_ddsp_estimator(path, plan, device)
    conv2d = ckpt["settings"].estimator == "conv2d"
    metrics = list(plan.d["evaluation"]["metrics"])
    plan.synth.to(device)
    result: dict[str, Any] = {"variant": plan.variant, "model": ckpt["model_name"], "strategy": ckpt["strategy"],
                              "embedding": ckpt.get("embedding"), "checkpoint": str(path),
                              "pitch_tracker": plan.d["pitch_tracker"] if plan.synth.external_f0 else None}
    test = load_ddsp_split(plan, Path(data_dir) / "test.zarr")
    static, scores, err = _predict(model, test, plan, conv2d, device, metrics)
    result["in_domain"] = _summary(scores) | {"param_l1": {"mean": float(err.mean()), "n": len(static)}}
    if ood_store is not None:
        ood = ood_set(plan, ood_store, "test", plan.d["evaluation"]["out_of_domain"])
        o_static, o_scores, _ = _predict(model, ood, plan, conv2d, device, metrics)
        result["out_of_domain"] = _summary(o_scores)
        effects = [e for e in EFFECTS if e in plan.synth.static_names]
        if effects:  # the effect-use table and figure read these (unit and physical values per sound)
            frame = parameter_frame({ckpt["model_name"]: o_static.numpy()}, plan.synth.cpu(), effects)
            result["effects"] = {e: {"value": part["value"].tolist(), "physical": part["physical"].tolist(),
                                     "unit": str(part["physical_unit"].iloc[0])}
                                 for e, part in frame.groupby("param", sort=False)}
    write_json_atomic(out_json, result)
    return result


def _summary(values: dict[str, np.ndarray]) -> dict[str, Any]:
    return {k: {"mean": float(np.nanmean(v)), "std": float(np.nanstd(v)), "n": int(np.isfinite(v).sum())}
            for k, v in values.items()}
