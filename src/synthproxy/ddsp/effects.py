"""Audio effects of the FX variants (paper 2, Sec. III-C-2): chorus, then reverb.

Chorus (official ``ModulatedDelay`` driven by an ``LFO``)
---------------------------------------------------------
A single delay line whose delay is modulated by the control-rate LFO ``m(t) ∈ [−1, 1]``::

    d(t) = D · (1 + depth · m(t))          (D = delay_ms · sample_rate / 1000 samples)
    y(t) = mix · x(t − d(t)) + (1 − mix) · x(t)

The fractional delay is read with ``torch.nn.functional.grid_sample`` (linear interpolation, zeros
before the first sample), which is differentiable w.r.t. the audio and the delay. Paper 2 fixes the
LFO at 1 Hz and depth = 0.25; ``delay_ms ∈ [1, 10]`` and ``mix ∈ [0, 1]`` are estimated.

Deviation (``delay_mapping``): the official code's behaviour differs from its own documentation in
two ways: the LFO output is rescaled as if it were a [0, 1] control (``m → 2m − 1``), and its
grid-sample offset makes the effective delay ``2 · 10 ms − d(t)`` instead of ``d(t)`` (so a larger
``delay_ms`` gives a *shorter* delay, 7.5–20 ms overall). ``delay_mapping="nominal"`` (default)
implements the documented behaviour above; ``delay_mapping="official"`` reproduces the official
delays (up to a factor ``(T − 1) / T`` on the delay).

Reverb (official ``DecayReverb``)
---------------------------------
A fixed-length FIR: ``h[n] = gain · exp(−decay · n / sample_rate) · noise[n]`` with ``noise`` uniform
in [−1, 1) and ``noise[0] = 0`` (no dry tap), 1 s long; ``y = x + h * x`` (causal FFT convolution
cropped to the input length). ``gain ∈ [0, 0.25]`` on the official power scale
``0.25 · u ** ln(10)``, ``decay ∈ [10, 25]`` 1/s (linear).

Deviations: the official noise is drawn from the global RNG when the module is built; ours comes
from a ``torch.Generator`` seeded with ``seed`` (same seed → same impulse response on any device,
independent of the global RNG). The official IR time axis is ``linspace(0, 1, 16000)`` (0.006 %
longer than ``n / sample_rate``) and its gain has a 1e-7 floor; ours use ``n / sample_rate`` and no
floor (gain 0 leaves the input bit-identical).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from synthproxy.ddsp.core import ParamRange, Processor, fft_convolve, upsample_frames

CHORUS_DELAY_RANGE = ParamRange(1.0, 10.0, "linear")  # ms
CHORUS_MIX_RANGE = ParamRange(0.0, 1.0, "linear")
CHORUS_DEPTH = 0.25  # official MD_DEPTH (fixed), relative to the delay
DELAY_MAPPINGS = ("nominal", "official")
REVERB_GAIN_RANGE = ParamRange(0.0, 0.25, "power", exponent=math.log(10.0))
REVERB_DECAY_RANGE = ParamRange(10.0, 25.0, "linear")  # 1/s
REVERB_SECONDS = 1.0


def variable_delay(audio: Tensor, delay_samples: Tensor) -> Tensor:
    """``y[n] = x[n − d[n]]`` with linear interpolation and zeros before the start.

    Args:
        audio: ``(B, T)``.
        delay_samples: ``(B, T)`` or ``(B, 1)`` delay in samples (fractional, ≥ 0).

    Returns:
        ``(B, T)``.
    """
    batch, n_samples = audio.shape
    n = torch.arange(n_samples, dtype=audio.dtype, device=audio.device)
    read_pos = n - delay_samples.expand(batch, n_samples)  # (B, T) in samples
    # align_corners=True: normalised x = −1 is sample 0 and x = 1 is sample T − 1
    grid_x = read_pos * (2.0 / max(1, n_samples - 1)) - 1.0
    grid = torch.stack([grid_x, torch.zeros_like(grid_x)], dim=-1)[:, None]  # (B, 1, T, 2)
    out = torch.nn.functional.grid_sample(
        audio[:, None, None, :], grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return out[:, 0, 0, :]


class Chorus(Processor):
    """LFO-modulated delay mixed with the dry signal.

    Scaled controls: ``delay`` (ms, linear) and ``mix`` (linear).
    ``get_signal(audio (B, T), delay (B, 1) ms, mix (B, 1), modulation (B, F, 1) | None)`` → ``(B, T)``;
    ``modulation`` is the control-rate LFO in [−1, 1] (None: unmodulated).
    """

    def __init__(
        self,
        *,
        sample_rate: float,
        frame_rate: float,
        depth: float = CHORUS_DEPTH,
        delay_mapping: str = "nominal",
        ranges: Mapping[str, ParamRange] | None = None,
    ) -> None:
        super().__init__(ranges)
        if delay_mapping not in DELAY_MAPPINGS:
            raise ValueError(f"delay_mapping must be one of {DELAY_MAPPINGS}, got {delay_mapping!r}")
        self.sample_rate = sample_rate
        self.frame_rate = frame_rate
        self.depth = float(depth)
        self.delay_mapping = delay_mapping

    def default_ranges(self) -> dict[str, ParamRange]:
        return {"delay": CHORUS_DELAY_RANGE, "mix": CHORUS_MIX_RANGE}

    def delay_samples(self, delay_ms: Tensor, modulation: Tensor | None, n_samples: int) -> Tensor:
        """Delay in samples, ``(B, T)`` (or ``(B, 1)`` without modulation)."""
        center = delay_ms * (self.sample_rate / 1000.0)  # (B, 1)
        if modulation is None:
            mod = torch.zeros_like(center)
        else:
            mod = upsample_frames(modulation[..., 0], n_samples, self.frame_rate, self.sample_rate)  # (B, T)
        if self.delay_mapping == "official":
            mod = 2.0 * mod - 1.0
        delay = center * (1.0 + self.depth * mod)
        if self.delay_mapping == "official":
            max_delay = 2.0 * self.ranges["delay"].high * self.sample_rate / 1000.0
            delay = max_delay - delay
        return delay

    def get_signal(  # type: ignore[override]
        self, audio: Tensor, delay: Tensor, mix: Tensor, modulation: Tensor | None = None
    ) -> Tensor:
        wet = variable_delay(audio, self.delay_samples(delay, modulation, audio.shape[-1]))
        return mix * wet + (1.0 - mix) * audio


def decaying_noise_source(length: int, seed: int) -> Tensor:
    """Seeded uniform noise in [−1, 1), ``(length,)`` float64, first tap 0 (no dry path in the IR)."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    noise = torch.rand(length, generator=generator, dtype=torch.float64) * 2.0 - 1.0
    noise[0] = 0.0
    return noise


class DecayReverb(Processor):
    """Exponentially decaying noise FIR reverb added to the dry signal.

    Scaled controls: ``gain`` (power scale) and ``decay`` (1/s, linear).
    ``get_signal(audio (B, T), gain (B, 1), decay (B, 1))`` → ``(B, T)``.
    """

    noise: Tensor

    def __init__(
        self,
        *,
        sample_rate: float,
        seconds: float = REVERB_SECONDS,
        seed: int = 0,
        ranges: Mapping[str, ParamRange] | None = None,
    ) -> None:
        super().__init__(ranges)
        self.sample_rate = sample_rate
        self.seed = int(seed)
        self.ir_length = max(1, round(seconds * sample_rate))
        self.register_buffer("noise", decaying_noise_source(self.ir_length, self.seed), persistent=False)

    def default_ranges(self) -> dict[str, ParamRange]:
        return {"gain": REVERB_GAIN_RANGE, "decay": REVERB_DECAY_RANGE}

    def impulse_response(self, gain: Tensor, decay: Tensor) -> Tensor:
        """``(B, 1)`` gain and decay (physical) → ``(B, L)`` impulse response, dtype/device of ``gain``."""
        noise = self.noise.to(dtype=gain.dtype, device=gain.device)
        t = torch.arange(self.ir_length, dtype=gain.dtype, device=gain.device) / self.sample_rate
        return gain * torch.exp(-decay * t) * noise

    def get_signal(self, audio: Tensor, gain: Tensor, decay: Tensor) -> Tensor:  # type: ignore[override]
        return audio + fft_convolve(audio, self.impulse_response(gain, decay))
