"""Sound-matching estimators: their settings, how one is built from a synth's layout, and loading a checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthproxy.audio.features import MinMaxScaler
from synthproxy.errors import ConfigError
from synthproxy.matching.datasets import MatchingPlan
from synthproxy.nn.estimators import build_estimator
from synthproxy.nn.heads import PresetHead
from synthproxy.training.checkpoint import read_checkpoint
from synthproxy.training.settings import settings_from_dict

CHECKPOINT_FORMAT = "synthproxy-estimator-checkpoint"


@dataclass
class EstimatorSettings:
    """Estimator training (``matching.train`` with the synth's overrides); official Dexed values in brackets."""

    epochs: int = 30
    """[600]"""
    batch_size: int = 64
    lr: float = 7e-3
    betas: tuple[float, float] = (0.86, 0.98)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    factor: float = 0.5
    patience: int = 5
    validate_every: int = 5
    """[10] epochs between validations on real-synth renders (the last epoch is always validated)"""
    val_presets: int | None = 64
    label_smoothing: float = 0.0
    """[0.02 for Dexed]"""
    cat_weight: float = 0.01
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    estimator: str = "cnn"
    estimator_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EstimatorSettings:
        s = settings_from_dict(cls, data, "matching.train")
        s.betas = (float(s.betas[0]), float(s.betas[1]))
        return s

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"betas": list(self.betas)}


@dataclass
class Estimator:
    """A loaded estimator: the network (eval mode), its head, input scaler and what it was trained on."""

    model: nn.Module
    head: PresetHead
    scaler: MinMaxScaler
    meta: dict[str, Any]


def make_estimator(settings: EstimatorSettings, plan: MatchingPlan) -> nn.Module:
    """The estimator network of ``settings`` for the synth's preset layout."""
    return build_estimator(settings.estimator, layout=plan.spec.layout, **settings.estimator_options)


def load_estimator(path: Path, plan: MatchingPlan, map_location: str | torch.device = "cpu") -> Estimator:
    """Rebuild an estimator from its checkpoint; refuses one trained on another spec."""
    ckpt = read_checkpoint(path, map_location, CHECKPOINT_FORMAT)
    if ckpt["spec_hash"] != plan.spec.hash:
        raise ConfigError(f"estimator {path} was trained on spec {ckpt['spec_name']!r} with hash {ckpt['spec_hash']}, "
                          f"but synth '{plan.synth}' now has spec hash {plan.spec.hash}: retrain it")
    settings = EstimatorSettings.from_dict(ckpt["hyperparameters"])
    with torch.random.fork_rng(devices=[]):
        model = make_estimator(settings, plan)
    model.load_state_dict(ckpt["model"])
    model.to(map_location).eval()
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "scheduler", "rng", "history")}
    return Estimator(model, model.head, MinMaxScaler(**ckpt["scaler"]), meta)
