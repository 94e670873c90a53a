"""Training a sound-matching estimator with a neural proxy (paper 1 Sec. 8; official ``ssm/train.py``).

The estimator hears a sound (log-mel features of the real synth's render) and predicts a preset (one logit
vector, :class:`~synthproxy.nn.heads.PresetHead`). Its loss combines the parameter loss and the audio-embedding
loss computed through the frozen proxy (:mod:`synthproxy.matching.losses`), weighted over training by a
strategy (PLoss, Mix, Switch: :mod:`synthproxy.matching.schedules`). AdamW with a linear warm-up and
ReduceLROnPlateau on the validation ``a_mean``; every ``validate_every`` epochs the validation presets are
predicted, *rendered on the real synth* and scored (:class:`~synthproxy.matching.evaluate.Judge`), and the
checkpoint with the best ``a_mean`` is kept. Everything runs through the one training loop
(:func:`synthproxy.training.loop.fit`): resumable, deterministic, NaN-stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from synthproxy import __version__
from synthproxy.errors import ConfigError
from synthproxy.matching.datasets import MatchingPlan, load_split, store_scaler
from synthproxy.matching.estimator import CHECKPOINT_FORMAT, EstimatorSettings, make_estimator
from synthproxy.matching.evaluate import Judge, predict_logits
from synthproxy.matching.losses import ProxyEmbeddingLoss, parameter_loss
from synthproxy.matching.schedules import Strategy
from synthproxy.proxy.train import load_checkpoint
from synthproxy.training.loop import FitSettings, Selection, StepInfo, fit
from synthproxy.training.runtime import resolve_device, seeded_runtime
from synthproxy.training.schedule import WarmupPlateauSchedule
from synthproxy.training.settings import same_settings_check

log = logging.getLogger("synthproxy.matching")
HISTORY_COLUMNS = ["epoch", "train_loss", "val_a_mean", "val_stft", "val_mstft", "val_mel", "val_mfccd",
                   "val_num_l1", "val_bin_acc", "val_cat_acc", "lr", "seconds", "steps"]


def train_estimator(plan: MatchingPlan, store: Path, proxy_checkpoint: Path | None, strategy: Strategy,
                    relaxation: str, settings: EstimatorSettings, out_dir: Path, model_name: str) -> dict[str, Any]:
    """Train (or resume) one estimator; returns its summary (best validation scores, checkpoint paths)."""
    s = settings
    device = resolve_device(s.device)
    scaler = store_scaler(store)
    train = load_split(store, "train", scaler)
    val = load_split(store, "val", scaler, s.val_presets)
    needs_proxy = "audio" in strategy.uses
    if needs_proxy and proxy_checkpoint is None:
        raise ConfigError(f"strategy '{strategy.name}' uses the audio loss: it needs a proxy checkpoint")
    if len(train.features) < 2:
        raise ConfigError(f"{store}: the training split has {len(train.features)} presets; need at least 2")
    bs = min(s.batch_size, len(train.features))
    steps_per_epoch = len(train.features) // bs
    total = steps_per_epoch * s.epochs
    x_train = torch.from_numpy(train.features)
    p_train, a_train = torch.from_numpy(train.presets), torch.from_numpy(train.embedding)
    judge = Judge(plan, tuple(plan.m["evaluation"]["metrics"]))
    val_target = judge.render(val.presets)  # rendered once: the targets do not change

    with seeded_runtime(s.seed, True, s.threads, device):
        model = make_estimator(s, plan).to(device)
        head = model.head
        audio_loss = None
        if needs_proxy:
            proxy = load_checkpoint(proxy_checkpoint, expect_spec_hash=plan.spec.hash, expect_embedding=plan.key,
                                    map_location=device).model
            audio_loss = ProxyEmbeddingLoss(proxy, head, relaxation).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=s.lr, betas=s.betas, weight_decay=s.weight_decay)
        sched = WarmupPlateauSchedule(s.lr, s.warmup_steps, "val_a_mean", s.factor, s.patience)

        def batches(epoch: int):
            order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(s.seed * 100003 + epoch))
            for b in range(steps_per_epoch):
                idx = order[b * bs:(b + 1) * bs]
                yield x_train[idx, None], p_train[idx], a_train[idx]

        def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, ...], info: StepInfo) -> tuple[torch.Tensor, int]:
            x, p, a = (t.to(device) for t in batch)
            logits = m(x)
            w = strategy.weights_at(info.step, total)
            loss = w.get("param", 0.0) * parameter_loss(head, logits, p, s.label_smoothing, s.cat_weight)
            if audio_loss is not None and w.get("audio", 0.0) != 0.0:
                loss = loss + w["audio"] * audio_loss(logits, a)
            return loss, len(x)

        def validate(m: nn.Module) -> dict[str, float]:
            logits = predict_logits(m, val.features, device)
            pred = head.decode_hard(logits).numpy()
            scores = judge.scores(val_target, judge.render(pred))
            out = {f"val_{k}": float(np.nanmean(v)) for k, v in scores.items()}
            out |= {f"val_{k}": v for k, v in head.parameter_metrics(logits, torch.from_numpy(val.presets)).items()}
            return {k: v for k, v in out.items() if np.isfinite(v)}

        meta = {"format": CHECKPOINT_FORMAT, "version": 1, "synth": plan.synth, "spec_name": plan.spec.name,
                "spec_hash": plan.spec.hash, "param_names": plan.spec.names, "model_name": model_name,
                "strategy": strategy.name, "relaxation": relaxation if needs_proxy else None,
                "strategy_weights": {t: list(c.points) for t, c in strategy.weights.items()},
                "proxy": str(proxy_checkpoint) if needs_proxy else None, "scaler": scaler.state(),
                "features": plan.features.settings(), "sample_rate": plan.sample_rate, "n_samples": plan.n_samples,
                "embedding": plan.key, "hyperparameters": s.to_dict(), "synthproxy_version": __version__}

        check_resumable = same_settings_check(
            meta, ("spec_hash", "strategy_weights", "relaxation", "proxy", "scaler", "features", "hyperparameters"))

        result = fit(model, opt, sched, batches, loss_fn, validate,
                     FitSettings(epochs=s.epochs, out_dir=out_dir, on_stale_checkpoint="archive",
                                 validate_every=s.validate_every, train_loss_name="train_loss",
                                 checkpoint_format=CHECKPOINT_FORMAT),
                     [Selection("best", "val_a_mean", "min")], meta, check_resumable, HISTORY_COLUMNS,
                     steps_per_epoch=steps_per_epoch)
    judge.close()
    return {"synth": plan.synth, "model": model_name, "strategy": strategy.name, "relaxation": meta["relaxation"],
            "checkpoint": str(out_dir / "best.pt"), "best_val_a_mean": result.best["val_a_mean"],
            "best_epoch": result.best["val_a_mean_epoch"], "epochs_done": result.epochs_done,
            "n_train": len(train.features), "n_val": len(val.features),
            "n_params": sum(p.numel() for p in model.parameters())}
