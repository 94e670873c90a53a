"""The ``dexed`` engine: the Dexed/MSFA DX7 engine through the ``dexed-py`` package.

Preset values follow the Dexed plugin's own normalisation (``dx7 = min(floor(x * steps), steps - 1)``), so
a preset vector means the same thing here as in the Dexed plugin. Every render uses a freshly initialised
synth: no voice or envelope state is carried from one preset to the next.

Difference to the paper's renders: dexed-py renders the bare DX7 voice, while the official code hosts the
Dexed VST (whose output filter, gain and master tune are held transparent here, see ``_DEXED_NEUTRAL``).
"""

from __future__ import annotations

import math

import numpy as np

from synthproxy.errors import SpecError
from synthproxy.synths.engines.base import Engine, RenderSettings
from synthproxy.synths.spec import SynthSpec


def _dexed_parameter_table() -> dict[str, tuple[int, int]]:
    """Dexed plugin parameter name -> (VCED byte offset, steps), in Dexed's own parameter order.

    Facts from Dexed's ``DexedAudioProcessor::initCtrl``: operators are listed OP1..OP6 while the
    sysex stores OP6 first, hence ``(6 - op) * 21``. Offsets < 0 are plugin-level controls that are not
    part of a DX7 voice (-1..-4) or the operator on/off switches (-10 - op).
    """
    t: dict[str, tuple[int, int]] = {
        "cutoff": (-1, 0), "resonance": (-2, 0), "output": (-3, 0), "master_tune_adj": (-4, 0),
        "algorithm": (134, 32), "feedback": (135, 8), "osc_key_sync": (136, 2), "lfo_speed": (137, 100),
        "lfo_delay": (138, 100), "lfo_pm_depth": (139, 100), "lfo_am_depth": (140, 100),
        "lfo_key_sync": (141, 2), "lfo_wave": (142, 6), "middle_c": (144, 49), "p_mode_sens": (143, 8),
    }
    for j in range(4):
        t[f"pitch_eg_rate_{j + 1}"] = (126 + j, 100)
    for j in range(4):
        t[f"pitch_eg_level_{j + 1}"] = (130 + j, 100)
    op_fields = [
        *[(f"eg_rate_{j + 1}", j, 100) for j in range(4)],
        *[(f"eg_level_{j + 1}", 4 + j, 100) for j in range(4)],
        ("output_level", 16, 100), ("mode", 17, 2), ("f_coarse", 18, 32), ("f_fine", 19, 100),
        ("osc_detune", 20, 15), ("break_point", 8, 100), ("l_scale_depth", 9, 100),
        ("r_scale_depth", 10, 100), ("l_key_scale", 11, 4), ("r_key_scale", 12, 4),
        ("rate_scaling", 13, 8), ("a_mod_sens", 14, 4), ("key_velocity", 15, 8),
    ]
    for op in range(1, 7):
        base = (6 - op) * 21
        for name, off, steps in op_fields:
            t[f"op{op}_{name}"] = (base + off, steps)
        t[f"op{op}_switch"] = (-10 - op, 2)
    return t


DEXED_PARAMETERS = _dexed_parameter_table()
# dexed-py renders the bare DX7 voice: Dexed's output filter, output gain and master tune are not part
# of it, so those plugin-level controls are only valid at the values that make them transparent.
_DEXED_NEUTRAL = {"cutoff": 1.0, "resonance": 0.0, "output": 1.0, "master_tune_adj": 0.5}


def dexed_plugin_to_voice(plugin_vector: np.ndarray, names: list[str]) -> bytes:
    """Convert a Dexed plugin vector to the 156-byte VCED voice (+ operator-enable byte) dexed-py loads."""
    voice = bytearray(156)
    voice[145:155] = b"SYNTHPROXY"
    op_enable = 0
    for name, x in zip(names, plugin_vector, strict=True):
        offset, steps = DEXED_PARAMETERS[name]
        if offset >= 0:
            voice[offset] = min(math.floor(float(x) * steps), steps - 1)
        elif offset <= -11 and float(x) >= 0.5:  # operator switch: bit 0 is OP6 as in the sysex order
            op_enable |= 1 << (6 - (-10 - offset))
    voice[155] = op_enable
    return bytes(voice)


class DexedEngine(Engine):
    """The DX7 engine of Dexed through ``dexed-py``."""

    def __init__(self, spec: SynthSpec, settings: RenderSettings) -> None:
        super().__init__(spec, settings)
        import dexed  # deferred: only synths that use it need the package

        self._dexed = dexed
        names = [p.name for p in spec.params]
        unknown = [n for n in names if n not in DEXED_PARAMETERS]
        if unknown:
            raise SpecError(
                f"{spec.source_path}: spec names parameter(s) the Dexed engine lacks: {unknown}; valid names "
                f"are Dexed's plugin parameters, e.g. {list(DEXED_PARAMETERS)[:6]} ..."
            )
        for p in spec.params:
            if p.name in _DEXED_NEUTRAL and (not p.excluded or p.default != _DEXED_NEUTRAL[p.name]):
                raise SpecError(
                    f"{spec.source_path}: parameter '{p.name}' is a Dexed plugin control that dexed-py does "
                    f"not model; it must be excluded with default {_DEXED_NEUTRAL[p.name]}"
                )
        self._names = names

    def render(self, plugin_vector: np.ndarray) -> np.ndarray:
        s = self.settings
        synth = self._dexed.DexedSynth(sample_rate=float(s.sample_rate))  # fresh: no state carried over
        synth._synth.load_sysex(dexed_plugin_to_voice(plugin_vector, self._names))
        audio = synth.render(s.note, s.velocity, s.note_duration, s.duration)
        return np.ascontiguousarray(audio[: s.n_samples], dtype=np.float32)
