"""Control-rate modulators: the differentiable ADSR envelope (paper 2, eq. (3)) and a sine LFO.

ADSR
----
With the note on at ``t = 0``, attack ``t_a``, decay ``t_d``, sustain ``s`` (a fraction of the
peak-to-floor swing), release ``t_r`` and note-off ``N_off``, the envelope *shape* is the clamped
three-stage sum of eq. (3), normalised to a peak of 1::

    A(t) = min(t / t_a, 1)                                        ∈ [0, 1]
    D(t) = clamp((s − 1) · (t − t_a) / t_d,   s − 1, 0)
    R(t) = clamp(−s · (t − N_off) / t_r,      −s,    0)
    v(t) = floor + (A + D + R) · (peak − floor),  then clamped to the level range

so ``v(0) = floor``, ``v(t_a) = peak``, ``v = floor + s · (peak − floor)`` once the decay is over and
``v = floor`` after ``N_off + t_r``; the final clamp handles a note-off during attack or decay.

Parametrisation (official ``ADSREnvelope`` as wired in ``configs/synth/h2of*_env.yaml``): the attack
control is scaled by the note-off time (``t_a ∈ [0, N_off]``), decay and release by the clip
duration (``t_d, t_r ∈ [0, duration]``); floor and peak are scaled to the level range (amplitude
envelopes: [0, 0.6] with the floor fixed at 0; cutoff envelope: [0, 1], a unit control that the
filter maps to Hz). The lower clamps of ``D`` and ``R`` are the official soft clamp (temperature 100
on the normalised shape) unless ``soft_clamp=None`` (the paper's hard clamp).

Deviations from the official code: frame ``i`` is evaluated at ``i / frame_rate`` s and rendered at
that time (the official code evaluates ``int(frame_rate · duration)`` frames spread over
``[0, duration]`` and then upsamples them as if they were centred in their cells, so its stage times
are off by up to about half a frame, ~8 ms); a zero stage duration is guarded by ``max(t, 1e-4 s)``
instead of ``+1e-5`` (no NaN at ``t_a = 0``); the official additive envelope noise (``noise_mag``,
fixed at 0 in paper 2) is not implemented.

LFO
---
``level · sin(2π · rate · t)`` at the control frames, phase 0 at ``t = 0`` (official ``LFO``; paper 2
fixes rate = 1 Hz and level = 1 for the chorus).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from synthproxy.ddsp.core import ParamRange, Processor, frame_times, safe_divide, soft_clamp_min

SOFT_CLAMP_TEMPERATURE = 100.0  # official soft_clamp_min(T=100)
MIN_STAGE_SECONDS = 1e-4


def adsr_shape(
    t: Tensor,
    attack: Tensor,
    decay: Tensor,
    sustain: Tensor,
    release: Tensor,
    note_off: float | Tensor,
    *,
    soft_clamp: float | None = SOFT_CLAMP_TEMPERATURE,
) -> Tensor:
    """Normalised ADSR shape ``A + D + R`` (eq. (3) with peak 1, before the level clamp).

    Args:
        t: frame times in seconds ``(F,)``.
        attack, decay, release: stage durations in seconds ``(B, C)``.
        sustain: sustain fraction ``(B, C)``.
        note_off: note-off time in seconds (scalar or ``(B, C)``).
        soft_clamp: temperature of the smooth lower clamps, or None for hard clamps.

    Returns:
        ``(B, F, C)``.
    """
    t = t[None, :, None]
    attack, decay, sustain, release = (x.unsqueeze(1) for x in (attack, decay, sustain, release))
    if isinstance(note_off, Tensor):
        note_off = note_off.unsqueeze(1)
    stage_a = torch.clamp(safe_divide(t, attack, MIN_STAGE_SECONDS), max=1.0)
    stage_d = torch.clamp(safe_divide((t - attack) * (sustain - 1.0), decay, MIN_STAGE_SECONDS), max=0.0)
    stage_d = soft_clamp_min(stage_d, sustain - 1.0, soft_clamp)
    stage_r = torch.clamp(safe_divide(-(t - note_off) * sustain, release, MIN_STAGE_SECONDS), max=0.0)
    stage_r = soft_clamp_min(stage_r, -sustain, soft_clamp)
    return stage_a + stage_d + stage_r


class ADSR(Processor):
    """Multi-channel ADSR envelope at the control rate.

    Scaled controls (``get_controls``, all linear): ``floor`` and ``peak`` → ``level_range``;
    ``attack`` → [0, note_off] s; ``decay``, ``release`` → [0, duration] s; ``sustain`` → [0, 1].
    ``get_signal(floor, peak, attack, decay, sustain, release)`` with each ``(B, C)`` returns
    ``(B, n_frames, C)`` clamped to ``level_range``.
    """

    def __init__(
        self,
        channels: int,
        *,
        note_off: float,
        duration: float,
        frame_rate: float,
        n_frames: int,
        level_range: tuple[float, float] = (0.0, 1.0),
        soft_clamp: float | None = SOFT_CLAMP_TEMPERATURE,
        ranges: Mapping[str, ParamRange] | None = None,
    ) -> None:
        self.level_range = (float(level_range[0]), float(level_range[1]))
        self.note_off = float(note_off)
        self.duration = float(duration)
        super().__init__(ranges)
        self.channels = channels
        self.frame_rate = frame_rate
        self.n_frames = n_frames
        self.soft_clamp = soft_clamp

    def default_ranges(self) -> dict[str, ParamRange]:
        lo, hi = self.level_range
        return {
            "floor": ParamRange(lo, hi),
            "peak": ParamRange(lo, hi),
            "attack": ParamRange(0.0, self.note_off),
            "decay": ParamRange(0.0, self.duration),
            "sustain": ParamRange(0.0, 1.0),
            "release": ParamRange(0.0, self.duration),
        }

    def get_signal(  # type: ignore[override]
        self, floor: Tensor, peak: Tensor, attack: Tensor, decay: Tensor, sustain: Tensor, release: Tensor
    ) -> Tensor:
        t = frame_times(self.n_frames, self.frame_rate, dtype=attack.dtype, device=attack.device)
        shape = adsr_shape(t, attack, decay, sustain, release, self.note_off, soft_clamp=self.soft_clamp)
        level = floor.unsqueeze(1) + shape * (peak - floor).unsqueeze(1)
        return torch.clamp(level, self.level_range[0], self.level_range[1])


class SineLFO(Processor):
    """Free-running sine LFO with fixed rate (Hz) and level: ``get_signal(batch, like)`` → ``(B, n_frames, 1)``."""

    def __init__(self, *, rate_hz: float, level: float, frame_rate: float, n_frames: int) -> None:
        super().__init__()
        self.rate_hz = float(rate_hz)
        self.level = float(level)
        self.frame_rate = frame_rate
        self.n_frames = n_frames

    def get_signal(self, batch: int, like: Tensor) -> Tensor:  # type: ignore[override]
        """``like`` only supplies dtype and device."""
        t = frame_times(self.n_frames, self.frame_rate, dtype=like.dtype, device=like.device)
        wave = self.level * torch.sin(2.0 * math.pi * self.rate_hz * t)
        return wave[None, :, None].expand(batch, -1, 1)
