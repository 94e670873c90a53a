"""Shared building blocks of the DDSP synthesizer: parameter ranges, the processor base class,
control-rate → audio-rate interpolation and a few numerically safe operations.

This module is the bottom layer of :mod:`synthproxy.ddsp`; it imports nothing from the package.

Conventions used throughout the package
---------------------------------------
- Time: control frame ``i`` sits at ``t = i / frame_rate`` seconds, audio sample ``n`` at
  ``t = n / sample_rate``. A clip of ``duration`` seconds has ``floor(duration · frame_rate) + 1``
  control frames, so the last frame lies at or just before the end of the clip.
- Shapes: ``B`` batch, ``T`` audio samples, ``F`` control frames, ``C`` channels of a control,
  ``O`` oscillators, ``K`` harmonics per oscillator.
- Controls: every module receives *unit controls* in [0, 1] and maps them to physical units in its
  ``get_controls`` step with the :class:`ParamRange` objects it owns (``Processor.ranges``); its
  ``get_signal`` step only ever sees physical units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

SCALES = ("linear", "log", "power")


@dataclass(frozen=True)
class ParamRange:
    """Mapping of a unit control ``u`` in [0, 1] to a physical value in [``low``, ``high``].

    Scales:

    - ``linear``: ``low + (high − low) · u``;
    - ``log``: ``low · (high / low) ** u`` — linear in log-frequency, the same as the official code's
      MIDI-linear ``unit_to_hz`` (``low`` and ``high`` must be > 0);
    - ``power``: ``low + (high − low) · u ** exponent`` — the official "exp_sigmoid" scale of the
      reverb gain uses ``exponent = ln 10``.

    Inputs outside [0, 1] are extrapolated, not clipped (as in the official code): clamp upstream if
    you need hard bounds.
    """

    low: float
    high: float
    scale: str = "linear"
    exponent: float = 1.0

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"unknown scale {self.scale!r}; expected one of {SCALES}")
        if self.scale == "log" and not (self.low > 0 and self.high > 0):
            raise ValueError(f"a log range needs positive bounds, got [{self.low}, {self.high}]")
        if self.scale == "power" and self.exponent <= 0:
            raise ValueError(f"a power range needs a positive exponent, got {self.exponent}")

    def to_physical(self, unit: Tensor) -> Tensor:
        """Unit control(s), any shape → physical value(s), same shape, dtype and device."""
        if self.scale == "linear":
            return self.low + (self.high - self.low) * unit
        if self.scale == "log":
            return self.low * torch.exp(unit * math.log(self.high / self.low))
        return self.low + (self.high - self.low) * unit.pow(self.exponent)

    def to_unit(self, value: Tensor) -> Tensor:
        """Inverse of :meth:`to_physical` (for making presets from physical values, and for tests)."""
        if self.scale == "linear":
            return (value - self.low) / (self.high - self.low)
        if self.scale == "log":
            return torch.log(value / self.low) / math.log(self.high / self.low)
        return ((value - self.low) / (self.high - self.low)).clamp_min(0.0).pow(1.0 / self.exponent)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": self.low, "high": self.high, "scale": self.scale}
        if self.scale == "power":
            out["exponent"] = self.exponent
        return out


class Processor(nn.Module):
    """Base class of the package's modules: ``forward(**unit) = get_signal(**get_controls(**unit))``.

    ``ranges`` maps the names of the module's scaled inputs to their :class:`ParamRange`. Subclasses
    declare their official ranges in ``default_ranges()`` and may be given overrides (e.g. from
    ``variants.yaml``) at construction.
    """

    def __init__(self, ranges: Mapping[str, ParamRange] | None = None) -> None:
        super().__init__()
        merged = dict(self.default_ranges())
        for name, rng in (ranges or {}).items():
            if name not in merged:
                raise ValueError(f"{type(self).__name__} has no scaled control {name!r} (has {sorted(merged)})")
            merged[name] = rng
        self.ranges: dict[str, ParamRange] = merged

    def default_ranges(self) -> dict[str, ParamRange]:
        return {}

    def get_controls(self, **unit: Tensor) -> dict[str, Tensor]:
        """Scale every input named in ``ranges`` from [0, 1] to physical units; pass the others through."""
        return {k: (self.ranges[k].to_physical(v) if k in self.ranges else v) for k, v in unit.items()}

    def get_signal(self, *args: Any, **kwargs: Any) -> Tensor:
        raise NotImplementedError

    def forward(self, **unit: Tensor) -> Tensor:
        return self.get_signal(**self.get_controls(**unit))


# --------------------------------------------------------------------------------------------------
# time grids and interpolation


def n_control_frames(duration: float, frame_rate: float) -> int:
    """Number of control frames covering ``[0, duration]`` at ``frame_rate`` (frame i at i / frame_rate)."""
    return math.floor(duration * frame_rate + 1e-9) + 1


def frame_times(n_frames: int, frame_rate: float, *, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    """Times in seconds of the control frames, shape ``(F,)``."""
    return torch.arange(n_frames, dtype=dtype, device=device) / frame_rate


def interp_indices(
    start: int, stop: int, n_frames: int, frame_rate: float, sample_rate: float, *, device: torch.device | str,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """Left frame index ``(T',)`` (int64) and weight of the right frame ``(T',)`` for samples ``start:stop``.

    Linear interpolation between the control frames around each sample; samples after the last frame
    hold its value. With a single frame, the weight is 0 and the index 0 (the frame is held).
    """
    n = torch.arange(start, stop, device=device, dtype=torch.float64)
    pos = n * (frame_rate / sample_rate)
    if n_frames == 1:
        return torch.zeros_like(pos, dtype=torch.int64), torch.zeros_like(pos, dtype=dtype)
    left = torch.clamp(torch.floor(pos), max=n_frames - 2)
    weight = torch.clamp(pos - left, 0.0, 1.0)
    return left.to(torch.int64), weight.to(dtype)


def upsample_frames(frames: Tensor, n_samples: int, frame_rate: float, sample_rate: float) -> Tensor:
    """Control-rate signal ``(B, F)`` or ``(B, F, C)`` → audio rate ``(B, T)`` or ``(B, T, C)`` (linear).

    Frame ``i`` is at ``i / frame_rate`` s, sample ``n`` at ``n / sample_rate`` s. A signal with ``F = 1``
    is held constant.
    """
    squeeze = frames.dim() == 2
    x = frames.unsqueeze(-1) if squeeze else frames
    n_frames = x.shape[1]
    left, w = interp_indices(0, n_samples, n_frames, frame_rate, sample_rate, device=x.device, dtype=x.dtype)
    if n_frames == 1:
        out = x.expand(-1, n_samples, -1)
    else:
        w = w[None, :, None]
        out = x.index_select(1, left) * (1.0 - w) + x.index_select(1, left + 1) * w
    return out.squeeze(-1) if squeeze else out


def resample_frames(frames: Tensor, n_out: int) -> Tensor:
    """Resample ``(B, L)`` or ``(B, L, C)`` to ``n_out`` points, first and last points aligned (linear).

    A helper for callers whose control signals (e.g. an estimator's frames or a pitch tracker's f0
    track) have another length than :attr:`DDSPSynth.n_frames`.
    """
    squeeze = frames.dim() == 2
    x = frames.unsqueeze(-1) if squeeze else frames
    if x.shape[1] == 1:
        out = x.expand(-1, n_out, -1)
    else:
        out = nn.functional.interpolate(x.transpose(1, 2), size=n_out, mode="linear", align_corners=True)
        out = out.transpose(1, 2)
    return out.squeeze(-1) if squeeze else out


# --------------------------------------------------------------------------------------------------
# safe ops


def safe_divide(num: Tensor, den: Tensor, eps: float) -> Tensor:
    """``num / max(den, eps)`` for non-negative denominators (durations)."""
    return num / torch.clamp(den, min=eps)


def soft_clamp_min(x: Tensor, minimum: Tensor, temperature: float | None) -> Tensor:
    """Lower clamp ``max(x, minimum)``; smooth when ``temperature`` is given.

    The smooth form (official ``soft_clamp_min``) is ``x + (m − x) · sigmoid((m − x) · temperature)``:
    equal to ``m`` at ``x = m``, tends to ``x`` above and to ``m`` below, and passes a small gradient
    to ``x`` in the clamped region. ``temperature=None`` gives the hard clamp of the paper's eq. (3).
    """
    if temperature is None:
        return torch.maximum(x, minimum)
    diff = minimum - x
    return x + diff * torch.sigmoid(diff * temperature)


def next_power_of_two(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, n))))


def fft_convolve(signal: Tensor, impulse_response: Tensor) -> Tensor:
    """Causal linear convolution by FFT, cropped to the input length.

    Args:
        signal: ``(B, T)``.
        impulse_response: ``(B, L)`` or ``(L,)`` (shared by the batch).

    Returns:
        ``(B, T)``: ``y[n] = Σ_m h[m] · x[n − m]`` for ``n < T`` (the tail beyond ``T`` is dropped).
    """
    n_samples = signal.shape[-1]
    n_fft = next_power_of_two(n_samples + impulse_response.shape[-1] - 1)
    spectrum = torch.fft.rfft(signal, n=n_fft) * torch.fft.rfft(impulse_response, n=n_fft)
    return torch.fft.irfft(spectrum, n=n_fft)[..., :n_samples]
