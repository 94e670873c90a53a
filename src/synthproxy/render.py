"""The render core: preset → audio → finite/RMS check → embeddings. Every stage renders through it.

:class:`RenderEmbedder` is built from a synth's spec, the render settings and the audio models to embed with.
It owns one engine per sample rate the models need (the first model's rate is the *primary* rate, on which the
RMS filter is applied), renders plugin vectors, checks them (non-finite, too quiet, too loud: paper Sec.
4.1.2), and embeds batches of audio with every model, a few clips at a time so that models sharing an STFT
reuse it while it is in cache. Synthetic datasets, hand-crafted presets, the ranking evaluation and the
evaluation of sound-matching predictions all call it, so a preset sounds the same in every stage.

Shapes: a render is ``(n_samples,)`` float32 mono; a batch to embed is ``{sample_rate: (B, n_samples)}``;
embeddings are ``{key: (B, D)}`` float32.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from synthproxy.audio.representations import Representation
from synthproxy.errors import ConfigError
from synthproxy.synths.engines import Engine, RenderSettings, make_engine, rms
from synthproxy.synths.spec import SynthSpec

REJECTION_REASONS = ("too_quiet", "too_loud", "non_finite")
"""Why the check refuses a render, in the order the statistics columns list them."""


@dataclass(frozen=True)
class RenderConfig:
    """The config's ``render`` section: MIDI note and durations, host block size, the final fade-out and the RMS
    filter. The official renderer (pcmbs/synth-proxy) hosts plugins with block size 128 and fades the last
    0.1 s out linearly before the RMS check; both are the defaults here."""

    note: int = 60
    velocity: int = 100
    note_duration: float = 2.0
    duration: float = 5.0
    block_size: int = 128
    rms_min: float = 0.01
    rms_max: float = 1.0
    max_attempts: int = 64
    fade_out: float = 0.1

    @classmethod
    def from_config(cls, render: Mapping[str, Any]) -> RenderConfig:
        return cls(**{k: render[k] for k in cls.__dataclass_fields__ if k in render})

    def settings(self, sample_rate: int) -> RenderSettings:
        return RenderSettings(sample_rate=int(sample_rate), note=self.note, velocity=self.velocity,
                              note_duration=self.note_duration, duration=self.duration, block_size=self.block_size)

    def meta(self, keys: tuple[str, ...]) -> dict[str, Any]:
        """The settings ``keys`` as a dict, for store attributes."""
        return {k: getattr(self, k) for k in keys}


def fade_out(audio: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """Multiply the last ``seconds`` of ``audio`` by a linear ramp from 1 to 0 (in place; returns ``audio``).

    As the official renderer: ``n = int(sample_rate * seconds)`` samples times ``linspace(1, 0, n)``.
    """
    n = min(int(sample_rate * seconds), len(audio))
    if n > 0:
        audio[-n:] = (audio[-n:] * np.linspace(1.0, 0.0, n)).astype(audio.dtype)
    return audio


@dataclass(frozen=True)
class Check:
    """Outcome of the render check: ``reason`` is None when the render is kept."""

    reason: str | None
    level: float

    @property
    def ok(self) -> bool:
        return self.reason is None


class RenderEmbedder:
    """Renders presets of one synth, checks them and embeds them with a set of audio models.

    Args:
        spec: the synth's parameter spec (its ``engine`` picks the engine).
        render: MIDI/duration settings and the RMS range of the check.
        representations: ``{key: (model, reduction)}``, e.g. from ``representations_from_config``.
        plugin: plugin file for engines that need one.
        sample_rates: rates to render at when there are no representations (e.g. listening renders);
            by default the models' rates, primary first.

    ``spec=None`` gives the check and the embedding of audio rendered elsewhere (the differentiable synth
    renders whole batches itself); :meth:`render` then has no engine.
    """

    def __init__(self, spec: SynthSpec | None, render: RenderConfig,
                 representations: Mapping[str, tuple[Representation, str]] | None = None,
                 plugin: str | None = None, sample_rates: list[int] | None = None) -> None:
        self.spec = spec
        self.render_config = render
        self.representations = dict(representations or {})
        rates = [rep.sample_rate for rep, _ in self.representations.values()]
        self.sample_rates = list(dict.fromkeys(rates or sample_rates or [44100]))
        self.primary = self.sample_rates[0]
        self.plugin = plugin
        self._engines: dict[int, Engine] = {}
        self.render_seconds = 0.0
        self.embed_seconds = 0.0

    def n_samples(self, sample_rate: int | None = None) -> int:
        return self.render_config.settings(sample_rate or self.primary).n_samples

    def engine(self, sample_rate: int | None = None) -> Engine:
        """The engine rendering at ``sample_rate`` (built on first use: plugins load only when needed)."""
        sr = sample_rate or self.primary
        if self.spec is None:
            raise ConfigError("this render core has no synth spec, so no engine: it only checks and embeds audio")
        if sr not in self._engines:
            self._engines[sr] = make_engine(self.spec, self.render_config.settings(sr), self.plugin)
        return self._engines[sr]

    # ---- render and check --------------------------------------------------------------------------
    def render(self, plugin_vector: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """Render one full plugin vector at ``sample_rate`` (default: the primary rate)."""
        engine = self.engine(sample_rate)
        t0 = time.perf_counter()
        audio = engine.render(plugin_vector)
        self.render_seconds += time.perf_counter() - t0
        return fade_out(audio, engine.settings.sample_rate, self.render_config.fade_out)

    def check(self, audio: np.ndarray) -> Check:
        """Non-finite, quieter than ``rms_min`` or louder than ``rms_max`` → refused, with the reason."""
        if not np.all(np.isfinite(audio)):
            return Check("non_finite", float("nan"))
        level = rms(audio)
        if level < self.render_config.rms_min:
            return Check("too_quiet", level)
        if level > self.render_config.rms_max:
            return Check("too_loud", level)
        return Check(None, level)

    def render_checked(self, plugin_vector: np.ndarray) -> tuple[Check, dict[int, np.ndarray] | None]:
        """Render at the primary rate and check; if kept, also render the other rates.

        Returns the check and ``{sample_rate: audio}`` (None when the render was refused).
        """
        audio = self.render(plugin_vector)
        check = self.check(audio)
        if not check.ok:
            return check, None
        audios = {self.primary: audio}
        for sr in self.sample_rates[1:]:
            audios[sr] = self.render(plugin_vector, sr)
        return check, audios

    # ---- embed -------------------------------------------------------------------------------------
    def embed(self, audios: Mapping[int, np.ndarray], checked: bool = True) -> dict[str, np.ndarray]:
        """Embed a batch ``{sample_rate: (B, T)}`` with every model → ``{key: (B, D)}`` float32.

        Blocks (the models' own CPU block size) are the outer loop so that models sharing an STFT (mel128,
        mfcc40) reuse the same block's power spectrogram while it is still in cache. ``checked`` says the
        clips already passed :meth:`check` (no second NaN scan).
        """
        t0 = time.perf_counter()
        batches = {sr: torch.from_numpy(np.ascontiguousarray(a)) for sr, a in audios.items()}  # no copy
        n = len(next(iter(audios.values())))
        block = min((rep.cpu_block or n for rep, _ in self.representations.values()), default=n) or 1
        parts: dict[str, list[np.ndarray]] = {key: [] for key in self.representations}
        for b0 in range(0, n, block):
            blocks = {sr: x[b0:b0 + block] for sr, x in batches.items()}
            for key, (rep, red) in self.representations.items():
                out = rep(blocks[rep.sample_rate], red, check_input=not checked)
                parts[key].append(np.asarray(out, dtype=np.float32))
        self.embed_seconds += time.perf_counter() - t0
        return {key: np.concatenate(p) for key, p in parts.items()}

    def dims(self) -> dict[str, int]:
        """Embedding size of every model for this render length."""
        return {key: rep.dim(self.n_samples(rep.sample_rate), red) for key, (rep, red) in self.representations.items()}

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()
