"""The registry of audio models: a name in the config → a :class:`Representation`.

Hand-crafted representations (``mel128``, ``mfcc40``, ``mstft``; paper App. 11.1; ``mel16k``, a log-mel at the
DDSP synth's 16 kHz) and the EfficientAT models (``mn04`` ... ``mn40``) are registered here; :func:`register` adds
another model (a factory taking the config's ``options``). This module sits above both model modules, so neither
imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from synthproxy.audio.learned import LEARNED_MODELS, efficientat_factory
from synthproxy.audio.representations import MFCC, MelSpectrogram, MultiResolutionSTFT, Representation
from synthproxy.errors import ConfigError

MEL16K_SETTINGS: dict[str, Any] = {"name": "mel16k", "sample_rate": 16000, "n_fft": 1024, "hop": 256, "n_mels": 128}
"""``mel16k``: the STFT grid of paper 2's estimator input (Masuda & Saito Sec. V-C: 16 kHz, FFT 1024, hop 256,
128 bands) with mel128's compression (``log(power mel + 1e-5)``, Slaney filters, zero-padded centred STFT), so a
log-mel at the DDSP synth's rate can serve as a proxy target; its ``settings()`` record the rate, FFT and hop."""


def mel16k(**options: Any) -> MelSpectrogram:
    """The ``mel16k`` representation; config ``options`` override :data:`MEL16K_SETTINGS` (except the name)."""
    return MelSpectrogram(**{**MEL16K_SETTINGS, **options, "name": "mel16k"})


_REGISTRY: dict[str, Callable[..., Representation]] = {
    "mel128": MelSpectrogram,
    "mel16k": mel16k,
    "mfcc40": MFCC,
    "mstft": MultiResolutionSTFT,
    **{name: efficientat_factory(name) for name in LEARNED_MODELS},
}


def register(name: str, factory: Callable[..., Representation]) -> None:
    """Add an audio model to the registry (factories receive the representation's config options)."""
    _REGISTRY[name] = factory


def available() -> list[str]:
    return sorted(_REGISTRY)


def get_representation(name: str, **options: Any) -> Representation:
    """Instantiate a registered representation by name; unknown names list the valid ones."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown audio representation '{name}'; available: {available()}")
    return _REGISTRY[name](**options)


def embedding_key(rep: dict[str, Any]) -> str:
    """Name of a representation's array in a data store: ``<name>_<reduction>``, e.g. ``mel128_avg``."""
    return f"{rep['name']}_{rep['reduction']}"


def representations_from_config(entries: list[dict[str, Any]]) -> dict[str, tuple[Representation, str]]:
    """``{embedding_key: (representation, reduction)}`` for the config's ``representations`` list, in order."""
    return {embedding_key(r): (get_representation(r["name"], **r.get("options", {})), r["reduction"]) for r in entries}
