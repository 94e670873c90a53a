"""What every synthesizer engine is: full plugin vectors in, mono float32 audio out.

An engine renders one preset at a time at a fixed :class:`RenderSettings` (sample rate, MIDI note,
velocity, note and clip durations, host block size). Engines are registered by name (see
:mod:`synthproxy.synths.engines`) and a spec's ``engine`` key picks one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from synthproxy.errors import AudioError
from synthproxy.synths.spec import SynthSpec


@dataclass(frozen=True)
class RenderSettings:
    """MIDI and audio settings of a render (paper Sec. 4.1.2: note 60, velocity 100, 2 s held, 5 s)."""

    sample_rate: int = 44100
    note: int = 60
    velocity: int = 100
    note_duration: float = 2.0
    duration: float = 5.0
    block_size: int = 128

    @property
    def n_samples(self) -> int:
        return round(self.duration * self.sample_rate)


class Engine(ABC):
    """A synthesizer that renders mono float32 audio ``(n_samples,)`` from full plugin vectors."""

    def __init__(self, spec: SynthSpec, settings: RenderSettings) -> None:
        self.spec = spec
        self.settings = settings

    @abstractmethod
    def render(self, plugin_vector: np.ndarray) -> np.ndarray:
        """Render one preset (normalised value for every spec parameter) to mono audio."""

    def render_preset(self, preset: np.ndarray) -> np.ndarray:
        """Render a preset vector (used parameters only, categoricals as indices)."""
        return self.render(self.spec.to_plugin(preset[None, :])[0])

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release what the engine holds (processes, plugin instances)."""


def rms(audio: np.ndarray) -> float:
    """Root-mean-square level of a mono signal (float64 accumulation for reproducibility)."""
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def check_audio(audio: np.ndarray, what: str, min_rms: float = 0.0) -> None:
    """Raise AudioError for non-finite or (when ``min_rms`` > 0) silent audio."""
    if not np.all(np.isfinite(audio)):
        bad = int(np.argmax(~np.isfinite(audio)))
        raise AudioError(f"{what}: audio holds NaN/inf samples (first at sample {bad})")
    if min_rms > 0 and rms(audio) < min_rms:
        raise AudioError(f"{what}: audio is silent (RMS {rms(audio):.3g} < {min_rms})")
