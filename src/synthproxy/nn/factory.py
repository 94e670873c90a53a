"""Build preset encoders by name, count their parameters and pick their default batch size.

The architecture names are the lower-case, underscore versions of the paper's (Table 2): ``mlp_oh``,
``hn_oh``, ``hn_pt``, ``hn_ptgru`` and ``tfm``. Constructor defaults are the Table 2 hyperparameters, so
``build_encoder(arch, layout, 192)`` builds the encoder the paper evaluated; ``**overrides`` change
individual hyperparameters (e.g. ``d_hidden=1024``) and are validated against the constructor, so a
misspelt key in a config fails loudly with the list of valid keys instead of being ignored.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from synthproxy.errors import ConfigError
from synthproxy.nn.encoders import (
    HNOHEncoder,
    HNPTEncoder,
    HNPTGRUEncoder,
    MLPOHEncoder,
    PresetEncoder,
    TFMEncoder,
)
from synthproxy.synths.layout import PresetLayout

ARCHITECTURES: dict[str, type[PresetEncoder]] = {
    "mlp_oh": MLPOHEncoder,
    "hn_oh": HNOHEncoder,
    "hn_pt": HNPTEncoder,
    "hn_ptgru": HNPTGRUEncoder,
    "tfm": TFMEncoder,
}
"""Architecture name -> encoder class, in the order of Table 2."""

PAPER_PARAMETER_COUNTS_M: dict[str, dict[str, float]] = {
    "dexed": {"mlp_oh": 4.9, "hn_oh": 6.2, "hn_pt": 6.0, "hn_ptgru": 7.1, "tfm": 4.8},
    "diva": {"mlp_oh": 5.4, "hn_oh": 6.4, "hn_pt": 8.4, "hn_ptgru": 7.2, "tfm": 4.9},
    "talnm": {"mlp_oh": 4.8, "hn_oh": 6.1, "hn_pt": 4.7, "hn_ptgru": 7.1, "tfm": 4.8},
}
"""Parameter counts (millions) reported in Table 2 with a 192-dimensional audio embedding."""

_BATCH_SIZES: dict[str, int] = {"tfm": 256}
_DEFAULT_BATCH_SIZE = 512


def _check_arch(arch: str) -> type[PresetEncoder]:
    try:
        return ARCHITECTURES[arch]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown preset encoder architecture {arch!r}; valid architectures: {', '.join(ARCHITECTURES)}"
        ) from None


def encoder_hyperparameters(arch: str) -> dict[str, Any]:
    """Overridable hyperparameters of ``arch`` and their (Table 2) defaults."""
    cls = _check_arch(arch)
    params = inspect.signature(cls.__init__).parameters
    return {name: p.default for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_encoder(arch: str, layout: PresetLayout, out_dim: int, **overrides: Any) -> nn.Module:
    """Build the preset encoder ``arch`` for ``layout`` with an ``out_dim``-dimensional output.

    Args:
        arch: one of :data:`ARCHITECTURES` (``mlp_oh``, ``hn_oh``, ``hn_pt``, ``hn_ptgru``, ``tfm``).
        layout: column kinds and cardinalities of the synthesizer's presets.
        out_dim: size of the audio embedding the encoder is trained to predict (192 in the paper).
        **overrides: hyperparameters replacing the Table 2 defaults, see :func:`encoder_hyperparameters`.

    Raises:
        ConfigError: for an unknown architecture, an unknown override key or an invalid value.
    """
    cls = _check_arch(arch)
    valid = encoder_hyperparameters(arch)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown hyperparameter(s) {', '.join(map(repr, unknown))} for encoder {arch!r}; "
            f"valid: {', '.join(valid)}"
        )
    return cls(layout, out_dim, **overrides)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (all of them by default, as reported in Table 2)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def default_batch_size(arch: str) -> int:
    """Training batch size used in the paper: 256 for TFM, 512 for every other encoder (Sec. 6.1.3)."""
    _check_arch(arch)
    return _BATCH_SIZES.get(arch, _DEFAULT_BATCH_SIZE)


def parameter_count_table(layouts: Mapping[str, PresetLayout], out_dim: int = 192) -> list[dict[str, Any]]:
    """One row ``{"synth", "arch", "params"}`` per (synthesizer, architecture), for printing.

    Models are built with default hyperparameters inside :func:`torch.random.fork_rng`, so computing the
    table does not disturb the caller's random stream (and hence seeded training runs).
    """
    rows: list[dict[str, Any]] = []
    with torch.random.fork_rng(devices=[]):
        for synth, layout in layouts.items():
            for arch in ARCHITECTURES:
                model = build_encoder(arch, layout, out_dim)
                rows.append({"synth": synth, "arch": arch, "params": count_parameters(model)})
                del model
    return rows
