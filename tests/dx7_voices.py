"""DX7 voices made in the tests with known field values, through dexed-py's own ``Patch`` API.

dexed-py (a port of Dexed's cartridge code) is independent of this package's sysex reader/writer and of its
Dexed parameter table, so voices built and read back here are an outside reference for both: a field is set
by its meaning (``patch.op[0].output_level`` is OP1's output level), never by a byte offset.
"""

from __future__ import annotations

import numpy as np
from dexed import DexedSynth, Patch

# Dexed plugin controls that are not part of a DX7 voice (output filter, gain, tuning, operator switches).
DEXED_CONTROLS = {"cutoff", "resonance", "output", "master_tune_adj", *(f"op{n}_switch" for n in range(1, 7))}


def make_patch(i: int, name: str | None = None) -> Patch:
    """An audible voice whose every field is a known function of ``i`` (distinct voices for distinct ``i``)."""
    p = Patch(name if name is not None else f"VOICE {i:02d}")
    p.algorithm = i % 32
    p.feedback = i % 8
    p.osc_key_sync = bool(i % 2)
    p.transpose = 22 + i % 5
    p.lfo.speed = (7 * i + 3) % 100
    p.lfo.delay = (11 * i) % 100
    p.lfo.pitch_mod_depth = (3 * i) % 20
    p.lfo.amp_mod_depth = (5 * i) % 30
    p.lfo.sync = bool(i % 3 == 0)
    p.lfo.wave = i % 5  # no sample & hold: its random state would make renders differ
    p.pitch_mod_sensitivity = i % 8
    p.pitch_envelope.rates = [99 - (i + j) % 20 for j in range(4)]
    p.pitch_envelope.levels = [50 + (i + j) % 5 - 2 for j in range(4)]
    for k, op in enumerate(p.op):  # op[0] is OP1
        op.envelope.rates = [90 - (i + k) % 30, 70 - (2 * i + k) % 25, 60 - (i + 3 * k) % 20, 50 + (i + k) % 40]
        op.envelope.levels = [99, 95 - (i + k) % 10, 90 - (i + 2 * k) % 15, 0]
        op.output_level = 99 - (5 * i + 3 * k) % 25
        op.frequency_mode = 0
        op.frequency_coarse = 1 + (i + k) % 8
        op.frequency_fine = (13 * i + 7 * k) % 100
        op.detune = (i + 2 * k) % 15
        op.velocity_sensitivity = (i + k) % 8
        op.amp_mod_sensitivity = (i + k) % 4
        op.rate_scaling = (2 * i + k) % 8
        op.breakpoint = (11 * i + k) % 100
        op.left_depth = (5 * i + 3 * k) % 30  # shallow key scaling: every voice stays audible at note 60
        op.right_depth = (7 * i + k) % 30
        op.left_curve = (i + k) % 4
        op.right_curve = (i + 2 * k) % 4
    return p


def vced(patch: Patch) -> np.ndarray:
    """The 155 VCED values of a patch, as dexed-py lays them out (OP6 first, name last)."""
    return np.frombuffer(patch.to_sysex()[:155], dtype=np.uint8).copy()


def named_values(patch: Patch) -> dict[str, tuple[int, int]]:
    """Dexed plugin parameter name -> (the patch's value, the DX7 maximum), read from the patch's attributes."""
    out = {
        "algorithm": (patch.algorithm, 31), "feedback": (patch.feedback, 7),
        "osc_key_sync": (int(patch.osc_key_sync), 1), "lfo_speed": (patch.lfo.speed, 99),
        "lfo_delay": (patch.lfo.delay, 99), "lfo_pm_depth": (patch.lfo.pitch_mod_depth, 99),
        "lfo_am_depth": (patch.lfo.amp_mod_depth, 99), "lfo_key_sync": (int(patch.lfo.sync), 1),
        "lfo_wave": (patch.lfo._wave, 5), "p_mode_sens": (patch.pitch_mod_sensitivity, 7),
        "middle_c": (patch.transpose, 48),
    }
    for j in range(4):
        out[f"pitch_eg_rate_{j + 1}"] = (patch.pitch_envelope.rates[j], 99)
        out[f"pitch_eg_level_{j + 1}"] = (patch.pitch_envelope.levels[j], 99)
    for n in range(1, 7):
        op = patch.op[n - 1]
        for j in range(4):
            out[f"op{n}_eg_rate_{j + 1}"] = (op.envelope.rates[j], 99)
            out[f"op{n}_eg_level_{j + 1}"] = (op.envelope.levels[j], 99)
        out |= {
            f"op{n}_output_level": (op.output_level, 99), f"op{n}_mode": (op.frequency_mode, 1),
            f"op{n}_f_coarse": (op.frequency_coarse, 31), f"op{n}_f_fine": (op.frequency_fine, 99),
            f"op{n}_osc_detune": (op.detune, 14), f"op{n}_break_point": (op.breakpoint, 99),
            f"op{n}_l_scale_depth": (op.left_depth, 99), f"op{n}_r_scale_depth": (op.right_depth, 99),
            f"op{n}_l_key_scale": (op._left_curve, 3), f"op{n}_r_key_scale": (op._right_curve, 3),
            f"op{n}_rate_scaling": (op.rate_scaling, 7), f"op{n}_a_mod_sens": (op.amp_mod_sensitivity, 3),
            f"op{n}_key_velocity": (op.velocity_sensitivity, 7),
        }
    return out


def dexed_py_render(patch: Patch, sample_rate: int, note: int, velocity: int, note_duration: float,
                    duration: float) -> np.ndarray:
    """dexed-py's own path: a fresh synth, ``load_patch``, ``render``."""
    synth = DexedSynth(sample_rate=float(sample_rate))
    synth.load_patch(patch)
    return np.asarray(synth.render(note, velocity, note_duration, duration), dtype=np.float32)
