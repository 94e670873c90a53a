"""Learned audio models (found by name through :mod:`synthproxy.audio.registry`).

EfficientAT MobileNetV3 models register as ``mn04``, ``mn05``, ``mn10``, ``mn20``, ``mn30``, ``mn40``.
Options (``representations[].options`` in the config): ``weights`` (local checkpoint path), ``cache_dir``
(where the official checkpoint is downloaded once), ``sha256`` (pin), ``allow_download``, ``with_mel``
(prepend the time-averaged mel: mn04 320 dims instead of 192), ``device`` (``cpu``/``cuda``/``auto``),
``random_weights`` (tests only: the official layout with random values).

Weights are resolved when the model is first used, so validating a config that names a model never
needs the weights; a step that embeds audio stops with a message saying which file to put where.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from synthproxy.audio.efficientat import EfficientATModel, resolve_weights
from synthproxy.audio.efficientat_net import MODEL_WIDTHS
from synthproxy.audio.representations import Representation

DEFAULT_CACHE = Path(os.environ.get("SYNTHPROXY_CACHE", "~/.cache/synthproxy")).expanduser() / "weights"


class EfficientATRepresentation(Representation):
    """An EfficientAT model as a representation (32 kHz input, one frame per 50 ms hop)."""

    sample_rate = 32000

    def __init__(self, name: str, weights: str | None = None, cache_dir: str | None = None,
                 sha256: str | None = None, allow_download: bool = True, with_mel: bool = False,
                 device: str = "auto", random_weights: bool = False) -> None:
        self.name = name
        self.options = {"weights": weights, "cache_dir": cache_dir, "sha256": sha256,
                        "allow_download": allow_download, "with_mel": with_mel, "device": device,
                        "random_weights": random_weights}
        self.min_samples = 2561
        self._model: EfficientATModel | None = None

    @property
    def model(self) -> EfficientATModel:
        if self._model is None:
            o = self.options
            device = o["device"]
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            path = None
            if not o["random_weights"]:
                path = resolve_weights(self.name, o["weights"], o["cache_dir"] or DEFAULT_CACHE, o["sha256"],
                                       o["allow_download"])
            self._model = EfficientATModel(self.name, path, device=device, with_mel=o["with_mel"])
        return self._model

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        model = self.model
        return model.embed(audio.to(model.device)).cpu()

    def settings(self) -> dict[str, Any]:
        o = self.options
        return super().settings() | {"with_mel": o["with_mel"], "sha256": o["sha256"],
                                     "random_weights": o["random_weights"], "hop": 1600, "window": 5120}


def efficientat_factory(name: str):
    """A factory ``(**options) -> EfficientATRepresentation`` for model ``name`` (e.g. ``mn04``)."""

    def make(**options: Any) -> EfficientATRepresentation:
        return EfficientATRepresentation(name, **options)

    return make


LEARNED_MODELS = tuple(MODEL_WIDTHS)
"""Names of the EfficientAT models: ``mn04``, ``mn05``, ``mn10``, ``mn20``, ``mn30``, ``mn40``."""
