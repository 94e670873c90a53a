"""Resonant 2-pole low-pass filter applied to harmonic amplitudes (paper 2, Sec. III-C-1).

Instead of filtering audio recursively (IIR), the synthesizer multiplies each partial's amplitude by
the magnitude response of an analog 2-pole low-pass at the partial's frequency (official
``harmor.low_pass``)::

    H(s) = 1 / (s² + s/Q + 1),   s = j · f / fc
    |H(f)| = 1 / sqrt((1 − r²)² + (r / Q)²),   r = f / fc

so ``|H| = Q`` at ``f = fc``, ``|H| → 1`` for ``f ≪ fc`` and ``|H| ≈ (fc / f)²`` for ``f ≫ fc``.
The response is computed in real arithmetic (no complex tensors). The filter acts at the control
rate, before the partial amplitudes are upsampled (as in the official code).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from synthproxy.ddsp.core import ParamRange, Processor

CUTOFF_RANGE = ParamRange(30.0, 8000.0, "log")  # official: 30 Hz … sample_rate / 2
Q_RANGE = ParamRange(0.1, 2.0, "linear")


def lowpass_response(freq_hz: Tensor, cutoff_hz: Tensor, q: Tensor) -> Tensor:
    """Magnitude ``|1 / (s² + s/Q + 1)|`` at ``s = j f / fc``; all inputs broadcast together."""
    r = freq_hz / cutoff_hz
    return torch.rsqrt((1.0 - r * r).square() + (r / q).square())


class HarmonicLowpass(Processor):
    """Low-pass as a multiplier of partial amplitudes.

    Scaled controls: ``cutoff`` (Hz, log) and ``q`` (linear).
    ``get_signal(partial_amps (B, F, O, K), partial_freqs (B, F|1, O, K), cutoff (B, F|1, 1), q (B, 1, 1))``
    returns the filtered partial amplitudes ``(B, F, O, K)``.
    """

    def __init__(self, *, ranges: Mapping[str, ParamRange] | None = None) -> None:
        super().__init__(ranges)

    def default_ranges(self) -> dict[str, ParamRange]:
        return {"cutoff": CUTOFF_RANGE, "q": Q_RANGE}

    def get_signal(  # type: ignore[override]
        self, partial_amps: Tensor, partial_freqs: Tensor, cutoff: Tensor, q: Tensor
    ) -> Tensor:
        response = lowpass_response(partial_freqs, cutoff.unsqueeze(-1), q.unsqueeze(-1))
        return partial_amps * response
