"""Additive saw/square oscillators (paper 2, Sec. III-C-1, eq. (1)-(2); official ``Harmor``).

Signal path of one oscillator ``o`` with fundamental ``f_o`` (Hz), amplitude ``a_o`` and saw/square
mix ``m_o``:

1. harmonic distribution ``d_k = (1 − m_o) · 2/(πk) + m_o · 4/(πk) · [k odd]``, ``k = 1..K``;
2. partial amplitudes ``a_o · d_k`` at the control rate, shape ``(B, F, O, K)`` — the filter
   (:mod:`synthproxy.ddsp.filters`) multiplies these by its response before rendering;
3. rendering: amplitudes linearly upsampled to the audio rate, fundamental phase by cumulative sum
   of the frequency, partial ``k`` at phase ``k · φ_o``; partials at or above Nyquist are zeroed
   sample by sample; all partials of all oscillators summed to ``(B, T)``.

Memory: a naive render holds several ``B × T × O·K`` tensors (64 × 64 000 × 48 floats = 786 MB each)
plus as many again for backward. :func:`render_partials` therefore works on time chunks of at most
``max_chunk_elements`` partial-samples, in a custom autograd function whose backward recomputes
``sin``/``cos`` chunk by chunk; only ``(B, T, O)`` phases and ``(B, F, O·K)`` amplitudes are kept for
backward, so a batch of 64 four-second clips stays well below 1 GB of live tensors.

Deviation from the official code: the phase starts at 0 on the first sample (exclusive cumulative
sum, so every partial starts at a zero crossing) and is accumulated in float64 and wrapped to [0, 1)
before the partial phases are formed, which keeps float32 renders accurate over 4 s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from synthproxy.ddsp.core import ParamRange, Processor, interp_indices, upsample_frames

F0_RANGE = ParamRange(32.5, 1980.0, "log")  # official WIDE_RANGE: C1 … B6, within CREPE's range
F0_MULT_RANGE = ParamRange(1.0, 8.0, "linear")
OSC_MIX_RANGE = ParamRange(0.0, 1.0, "linear")
AMPLITUDE_RANGE = ParamRange(0.0, 1.0, "linear")
N_HARMONICS = 24  # official Harmor default (not overridden by any paper-2 config)


def saw_square_partials(n_harmonics: int, *, dtype: torch.dtype, device: torch.device | str) -> tuple[Tensor, Tensor]:
    """Fourier sine amplitudes ``(K,)`` of the saw (``2/(πk)``) and the square (``4/(πk)``, odd k only)."""
    k = torch.arange(1, n_harmonics + 1, dtype=dtype, device=device)
    saw = 2.0 / (math.pi * k)
    square = torch.where(k % 2 == 1, 4.0 / (math.pi * k), torch.zeros_like(k))
    return saw, square


def harmonic_distribution(osc_mix: Tensor, n_harmonics: int) -> Tensor:
    """Saw/square interpolation: ``osc_mix (...,)`` in [0, 1] (0 = saw, 1 = square) → ``(..., K)``."""
    saw, square = saw_square_partials(n_harmonics, dtype=osc_mix.dtype, device=osc_mix.device)
    mix = osc_mix.unsqueeze(-1)
    return (1.0 - mix) * saw + mix * square


def harmonic_frequencies(f0_hz: Tensor, n_harmonics: int) -> Tensor:
    """Integer multiples of the fundamental: ``(...,)`` → ``(..., K)`` (Hz)."""
    k = torch.arange(1, n_harmonics + 1, dtype=f0_hz.dtype, device=f0_hz.device)
    return f0_hz.unsqueeze(-1) * k


def accumulate_phase(f0_hz: Tensor, n_samples: int, sample_rate: float) -> Tensor:
    """Fundamental phase in cycles, wrapped to [0, 1): ``(B, T or 1, O)`` Hz → ``(B, T, O)``.

    ``φ[n] = Σ_{m<n} f[m] / sample_rate`` (exclusive cumulative sum, ``φ[0] = 0``); a constant
    frequency (time length 1) uses the closed form ``f · n / sample_rate``. Accumulated in float64 and
    cast back to the input dtype after wrapping; differentiable w.r.t. ``f0_hz``.
    """
    f64 = f0_hz.to(torch.float64) / sample_rate
    if f64.shape[1] == 1:
        n = torch.arange(n_samples, dtype=torch.float64, device=f0_hz.device)[None, :, None]
        phase = f64 * n
    else:
        if f64.shape[1] != n_samples:
            raise ValueError(f"f0 has {f64.shape[1]} samples, expected 1 or {n_samples}")
        phase = torch.cumsum(f64, dim=1) - f64
    return torch.frac(phase).to(f0_hz.dtype)


class _PartialSum(torch.autograd.Function):
    """``y[b, n] = Σ_m A[b, n, m] · sin(2π · k_m · φ[b, n, o_m])`` with ``A`` the linearly upsampled
    control-rate amplitudes, zeroed where ``k_m · f_o ≥ Nyquist``.

    Evaluated in time chunks both ways, writing into preallocated outputs: the forward keeps no
    ``B × T × M`` tensor, the backward recomputes ``sin``/``cos`` chunk by chunk (the same maths as
    autograd through the chunked forward, without holding its graph).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, amps: Tensor, phase: Tensor, f0_t: Tensor, left: Tensor, weight: Tensor, chunk: int,
        nyquist: float,
    ) -> Tensor:
        batch, n_samples, _ = phase.shape
        out = amps.new_empty(batch, n_samples)
        for start in range(0, n_samples, chunk):
            sl = slice(start, min(n_samples, start + chunk))
            amps_t, angle, _ = _chunk_terms(amps, phase, f0_t, left, weight, sl, nyquist)
            torch.sum(amps_t * torch.sin(angle), dim=-1, out=out[:, sl])
        ctx.save_for_backward(amps, phase, f0_t, left, weight)
        ctx.chunk, ctx.nyquist = chunk, nyquist
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        amps, phase, f0_t, left, weight = ctx.saved_tensors
        batch, n_frames, n_partials = amps.shape
        n_osc = phase.shape[-1]
        n_harm = n_partials // n_osc
        need_amps, need_phase = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_amps = torch.zeros_like(amps) if need_amps else None
        grad_phase = torch.empty_like(phase) if need_phase else None
        two_pi_k = (2.0 * math.pi) * torch.arange(1, n_harm + 1, dtype=amps.dtype, device=amps.device)
        for start in range(0, phase.shape[1], ctx.chunk):
            sl = slice(start, min(phase.shape[1], start + ctx.chunk))
            amps_t, angle, above = _chunk_terms(amps, phase, f0_t, left, weight, sl, ctx.nyquist)
            g = grad_out[:, sl].unsqueeze(-1)  # (B, T', 1)
            if grad_amps is not None:
                sin = torch.sin(angle)
                if above is not None:
                    sin = sin.masked_fill(above, 0.0)
                if n_frames == 1:
                    grad_amps += (sin * g).sum(1, keepdim=True)
                else:
                    w = weight[sl][None, :, None]
                    grad_amps.index_add_(1, left[sl], sin * (g * (1.0 - w)))
                    grad_amps.index_add_(1, left[sl] + 1, sin * (g * w))
            if grad_phase is not None:
                # dy/dφ_o = Σ_k 2πk · A_ok · cos(2πk φ_o): the weighted sum over k as a mat-vec
                a_cos = (amps_t * torch.cos(angle)).view(batch, -1, n_osc, n_harm)
                torch.mul(torch.matmul(a_cos, two_pi_k), g, out=grad_phase[:, sl])
        return grad_amps, grad_phase, None, None, None, None, None


def _above(f0_t: Tensor, sl: slice, n_harm: int, nyquist: float) -> Tensor:
    """Mask ``(B, T' or 1, O·K)`` of the partials at or above Nyquist."""
    f0_c = f0_t if f0_t.shape[1] == 1 else f0_t[:, sl]
    k = torch.arange(1, n_harm + 1, dtype=f0_t.dtype, device=f0_t.device)
    return (f0_c.unsqueeze(-1) * k >= nyquist).flatten(-2)


def _chunk_terms(
    amps: Tensor, phase: Tensor, f0_t: Tensor, left: Tensor, weight: Tensor, sl: slice, nyquist: float
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Upsampled amplitudes and partial angles ``2π k φ`` of one chunk, each ``(B, T', M)``, and, for a
    time-varying f0, the mask ``(B, T', M)`` of the partials at or above Nyquist (already applied to the
    amplitudes; None for a constant f0, whose partials the caller masks at the frame level)."""
    n_osc = phase.shape[-1]
    n_harm = amps.shape[-1] // n_osc
    if amps.shape[1] == 1:
        amps_t = amps.expand(-1, sl.stop - sl.start, -1)
    else:
        w = weight[sl][None, :, None]
        amps_t = torch.lerp(amps.index_select(1, left[sl]), amps.index_select(1, left[sl] + 1), w)
    above = None
    if f0_t.shape[1] != 1:  # time-varying f0: mask sample by sample (constant f0: masked at the frame level)
        above = _above(f0_t, sl, n_harm, nyquist)
        amps_t = amps_t.masked_fill(above, 0.0)
    k = torch.arange(1, n_harm + 1, dtype=phase.dtype, device=phase.device)
    angle = ((2.0 * math.pi) * phase[:, sl].unsqueeze(-1) * k).flatten(-2)
    return amps_t, angle, above


def render_partials(
    partial_amps: Tensor,
    f0_hz: Tensor,
    n_samples: int,
    *,
    sample_rate: float,
    frame_rate: float,
    max_chunk_elements: int = 1 << 22,
) -> Tensor:
    """Sum of harmonic partials of ``O`` oscillators.

    Args:
        partial_amps: control-rate partial amplitudes ``(B, F, O, K)`` (``F = 1``: constant).
        f0_hz: fundamental of each oscillator, ``(B, 1, O)`` (constant) or ``(B, F, O)`` (frame-wise,
            upsampled linearly like the amplitudes).
        n_samples: output length ``T``.
        sample_rate, frame_rate: rates of the audio and of the control frames.
        max_chunk_elements: bound on ``B · T' · O · K`` processed at once (memory).

    Returns:
        ``(B, T)`` audio; partial ``k`` of oscillator ``o`` is ``A_ok(t) · sin(2π k φ_o(t))``, zero
        whenever ``k · f_o(t) ≥ sample_rate / 2``. Differentiable w.r.t. ``partial_amps`` and ``f0_hz``
        (through the phase; the Nyquist mask is piecewise constant).
    """
    batch, n_frames, n_osc, n_harm = partial_amps.shape
    # (B, 1, O) constant, or (B, T, O) upsampled like the amplitudes
    f0_t = f0_hz if f0_hz.shape[1] == 1 else upsample_frames(f0_hz, n_samples, frame_rate, sample_rate)
    phase = accumulate_phase(f0_t, n_samples, sample_rate)  # (B, T, O)
    left, weight = interp_indices(
        0, n_samples, n_frames, frame_rate, sample_rate, device=partial_amps.device, dtype=partial_amps.dtype
    )
    chunk = max(64, max_chunk_elements // max(1, batch * n_osc * n_harm))
    amps = partial_amps.reshape(batch, n_frames, n_osc * n_harm)
    if f0_t.shape[1] == 1:
        amps = amps.masked_fill(_above(f0_t.detach(), slice(0, 1), n_harm, sample_rate / 2.0), 0.0)
    out: Tensor = _PartialSum.apply(amps, phase, f0_t.detach(), left, weight, chunk, sample_rate / 2.0)
    return out


class SawSquareOscillators(Processor):
    """``O`` additive oscillators, each a saw/square mix with its own amplitude (official ``Harmor``
    with ``sep_amp=True``; the filter is a separate module applied between :meth:`partials` and
    :meth:`get_signal`).

    Scaled controls (``get_controls``): ``f0`` (Hz, log), ``f0_mult`` (ratio of oscillator 2..O to
    oscillator 1, linear, ≥ 1 keeps the oscillators ordered), ``osc_mix`` and ``amplitude`` (linear).
    """

    def __init__(
        self,
        n_oscillators: int = 2,
        n_harmonics: int = N_HARMONICS,
        *,
        sample_rate: float = 16000,
        frame_rate: float = 60,
        ranges: Mapping[str, ParamRange] | None = None,
        max_chunk_elements: int = 1 << 22,
    ) -> None:
        super().__init__(ranges)
        self.n_oscillators = n_oscillators
        self.n_harmonics = n_harmonics
        self.sample_rate = sample_rate
        self.frame_rate = frame_rate
        self.max_chunk_elements = max_chunk_elements

    def default_ranges(self) -> dict[str, ParamRange]:
        return {"f0": F0_RANGE, "f0_mult": F0_MULT_RANGE, "osc_mix": OSC_MIX_RANGE, "amplitude": AMPLITUDE_RANGE}

    @staticmethod
    def ordered_frequencies(f0_hz: Tensor, f0_mult: Tensor) -> Tensor:
        """Oscillator fundamentals ``(B, F|1, O)`` from oscillator 1's ``(B, F|1, 1)`` and the
        multipliers ``(B, 1, O − 1)`` of the others: ``f_1 = f0``, ``f_o = f0 · mult_o``."""
        return torch.cat([f0_hz, f0_hz * f0_mult], dim=-1)

    def partials(self, amplitude: Tensor, osc_mix: Tensor, f0_hz: Tensor) -> tuple[Tensor, Tensor]:
        """Control-rate partial amplitudes and frequencies.

        Args:
            amplitude: ``(B, F, O)`` (physical, here = unit).
            osc_mix: ``(B, 1 or F, O)`` in [0, 1].
            f0_hz: ``(B, 1 or F, O)`` oscillator fundamentals in Hz.

        Returns:
            amplitudes ``(B, F, O, K)`` and frequencies ``(B, 1 or F, O, K)`` (Hz).
        """
        amps = amplitude.unsqueeze(-1) * harmonic_distribution(osc_mix, self.n_harmonics)
        return amps, harmonic_frequencies(f0_hz, self.n_harmonics)

    def get_signal(self, partial_amps: Tensor, f0_hz: Tensor, n_samples: int) -> Tensor:  # type: ignore[override]
        """Render ``(B, F, O, K)`` partial amplitudes at fundamentals ``(B, 1 or F, O)`` → ``(B, T)``."""
        return render_partials(
            partial_amps, f0_hz, n_samples, sample_rate=self.sample_rate, frame_rate=self.frame_rate,
            max_chunk_elements=self.max_chunk_elements,
        )
