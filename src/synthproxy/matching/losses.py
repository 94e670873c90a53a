"""Loss terms of sound-matching training (paper 1 Sec. 8; official ``SSMLitModule``).

* ``param``: ``L1(num) + BCE(bin) + cat_weight · Σ CE(cat, label smoothing)`` (official ``cat_weight`` 0.01,
  label smoothing 0.02 for Dexed), on in-domain sounds whose presets are known;
* ``audio``: ``L1(proxy(prediction), g(target audio))``: the frozen proxy's embedding of the predicted preset
  against the audio model's embedding of the target. How the prediction reaches the proxy is the relaxation:
  ``hard`` (official: sigmoid / round / argmax, so only numerical parameters get an audio gradient) or ``soft``
  (ours: sigmoid probabilities for binaries, softmax-weighted category tokens, so the audio loss also steers
  discrete parameters).

A strategy (:mod:`synthproxy.matching.schedules`) weights the terms over training.
"""

from __future__ import annotations

import torch
from torch import nn

from synthproxy.errors import ConfigError
from synthproxy.nn.heads import PresetHead
from synthproxy.nn.stable import stable_l1

RELAXATIONS = ("hard", "soft")
TERMS = ("param", "audio")


def parameter_loss(head: PresetHead, logits: torch.Tensor, presets: torch.Tensor, label_smoothing: float,
                   cat_weight: float) -> torch.Tensor:
    """The paper-1 parameter loss (a scalar): ``num + bin + cat_weight · cat``."""
    parts = head.parameter_losses(logits, presets, label_smoothing)
    return parts["num"] + parts["bin"] + cat_weight * parts["cat"]


class ProxyEmbeddingLoss(nn.Module):
    """``L1(proxy(relaxed prediction), target embedding)`` through a frozen preset encoder.

    The proxy is put in eval mode and its weights do not require gradients: only the estimator learns, but
    gradients flow through the proxy to the estimator's logits.
    """

    def __init__(self, proxy: nn.Module, head: PresetHead, relaxation: str = "hard") -> None:
        super().__init__()
        if relaxation not in RELAXATIONS:
            raise ConfigError(f"unknown relaxation '{relaxation}'; valid: {list(RELAXATIONS)}")
        self.proxy = proxy.eval()
        for p in self.proxy.parameters():
            p.requires_grad_(False)
        self.head = head
        self.relaxation = relaxation

    def train(self, mode: bool = True) -> ProxyEmbeddingLoss:  # the proxy stays frozen in eval mode
        super().train(mode)
        self.proxy.eval()
        return self

    def embed(self, logits: torch.Tensor) -> torch.Tensor:
        """The proxy's embedding ``(B, D)`` of the relaxed prediction."""
        if self.relaxation == "hard":
            return self.proxy(self.head.decode_hard(logits))
        noncat, cat_probs = self.head.decode_soft(logits)
        return self.proxy.forward_soft(noncat, cat_probs)

    def forward(self, logits: torch.Tensor, target_embedding: torch.Tensor) -> torch.Tensor:
        return stable_l1(self.embed(logits), target_embedding)
