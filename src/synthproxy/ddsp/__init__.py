"""Differentiable (DDSP) subtractive synthesizer of Masuda & Saito (TASLP 2023), in torch.

Layers (imports go one way only)::

    core  ←  oscillators, filters, envelopes, effects  ←  variants  ←  synth

- :mod:`~synthproxy.ddsp.core`: parameter ranges, the ``Processor`` base (``get_controls`` /
  ``get_signal``), frame → audio interpolation, safe ops, FFT convolution;
- :mod:`~synthproxy.ddsp.oscillators`: additive saw/square oscillators;
- :mod:`~synthproxy.ddsp.filters`: resonant low-pass on harmonic amplitudes;
- :mod:`~synthproxy.ddsp.envelopes`: ADSR (eq. (3)) and sine LFO at the control rate;
- :mod:`~synthproxy.ddsp.effects`: chorus (modulated delay) and decaying-noise reverb;
- :mod:`~synthproxy.ddsp.variants`: the seven variants of Table I as data (``variants.yaml``);
- :mod:`~synthproxy.ddsp.synth`: :class:`DDSPSynth`.
"""

from synthproxy.ddsp.synth import DDSPSynth, SynthParams
from synthproxy.ddsp.variants import ParamGroup, VariantSpec, get_variant, variant_names

__all__ = ["DDSPSynth", "ParamGroup", "SynthParams", "VariantSpec", "get_variant", "variant_names"]
