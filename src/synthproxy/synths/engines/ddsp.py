"""The ``ddsp`` engine: this project's differentiable subtractive synth (paper 2) as a synth like any other.

A spec with ``engine: ddsp`` and ``variant: <name>`` (``config/synths/ddsp_*.yaml``, written by
``tools/write_ddsp_specs.py``) lists the variant's static parameters in :attr:`DDSPSynth.static_names` order, all
numerical in [0, 1]; the plugin vector is the synth's static input. Variants whose sound needs frame-wise
controls or an external f0 (Raw, FX, the f0 variants, Unordered) have no preset of fixed size and cannot be an
engine: their spec is refused. The render honours the render settings: sample rate, clip duration and the
note-off time (``note_duration``); the MIDI note and velocity do not apply (f0 is a parameter). Rendering is
deterministic (the reverb's noise is seeded) and stateless, so no isolation is needed.
"""

from __future__ import annotations

import numpy as np

from synthproxy.errors import SpecError
from synthproxy.synths.engines.base import Engine, RenderSettings
from synthproxy.synths.spec import SynthSpec


class DDSPEngine(Engine):
    """Renders plugin vectors with :class:`synthproxy.ddsp.DDSPSynth` (CPU, float32, one preset at a time)."""

    def __init__(self, spec: SynthSpec, settings: RenderSettings) -> None:
        super().__init__(spec, settings)
        import torch

        from synthproxy.ddsp import DDSPSynth

        if not spec.variant:
            raise SpecError(f"{spec.source_path}: a ddsp spec needs 'variant' (e.g. fx_env)")
        self._torch = torch
        self.synth = DDSPSynth(spec.variant, sample_rate=settings.sample_rate, duration=settings.duration,
                               note_off=settings.note_duration)
        if self.synth.n_dynamic or self.synth.external_f0:
            raise SpecError(f"{spec.source_path}: ddsp variant '{spec.variant}' needs frame-wise controls or an "
                            "external f0, so it has no fixed-size preset; use raw_env or fx_env as an engine")
        names = [p.name for p in spec.params]
        if names != list(self.synth.static_names):
            raise SpecError(f"{spec.source_path}: the parameters must be the variant's static parameters in order "
                            f"{list(self.synth.static_names)}; got {names} (regenerate with tools/write_ddsp_specs.py)")

    def render(self, plugin_vector: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.no_grad():
            static = torch.as_tensor(np.asarray(plugin_vector, dtype=np.float32))[None]
            audio = self.synth(static)[0]
        return np.ascontiguousarray(audio.numpy(), dtype=np.float32)
