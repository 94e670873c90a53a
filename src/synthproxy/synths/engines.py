"""Real synthesizer engines behind one interface.

* ``dexed``: the Dexed/MSFA DX7 engine through the ``dexed-py`` package. Preset values follow the
  Dexed plugin's own normalisation (``dx7 = min(floor(x * steps), steps - 1)``), so a preset vector
  means the same thing here as in the Dexed plugin.
* ``vst``: any VST2/VST3 plugin loaded by DawDreamer (amSynth from Debian's ``amsynth`` package, Diva,
  TAL-NoiseMaker, ...), parameters matched by the names the plugin reports.

Both engines render every preset on a freshly initialised instance: plugins keep voices, reverb
buffers and parameter smoothers alive between renders, so re-using an instance would make a preset's
audio depend on what was rendered before it.
"""

from __future__ import annotations

import contextlib
import math
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthproxy.errors import AudioError, PluginNotFoundError, SpecError
from synthproxy.synths.spec import SynthSpec


@dataclass(frozen=True)
class RenderSettings:
    """MIDI and audio settings of a render (paper Sec. 4.1.2: note 60, velocity 100, 2 s held, 5 s)."""

    sample_rate: int = 44100
    note: int = 60
    velocity: int = 100
    note_duration: float = 2.0
    duration: float = 5.0
    block_size: int = 512

    @property
    def n_samples(self) -> int:
        return round(self.duration * self.sample_rate)


class Engine(ABC):
    """A synthesizer that renders mono float32 audio from full plugin vectors."""

    def __init__(self, spec: SynthSpec, settings: RenderSettings) -> None:
        self.spec = spec
        self.settings = settings

    @abstractmethod
    def render(self, plugin_vector: np.ndarray) -> np.ndarray:
        """Render one preset (normalised value for every spec parameter) to mono audio."""

    def render_preset(self, preset: np.ndarray) -> np.ndarray:
        """Render a preset vector (used parameters only, categoricals as indices)."""
        return self.render(self.spec.to_plugin(preset[None, :])[0])


# ---------------------------------------------------------------------------------------------
# Dexed (dexed-py)
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# VST plugins (DawDreamer)
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_stdout():
    """Silence the C++ chatter DawDreamer and plugins print on stdout/stderr while loading."""
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def check_plugin_path(path: str | None, synth: str) -> Path:
    """Fail early, naming the path and the config key to set, when a plugin file is missing."""
    if not path:
        raise PluginNotFoundError(
            f"synth '{synth}' uses the vst engine but no plugin path is set; set 'synths.{synth}.plugin' "
            "in the config (or 'plugin' in its spec file)"
        )
    p = Path(path).expanduser()
    if not p.exists():
        raise PluginNotFoundError(
            f"plugin for synth '{synth}' not found: {p} — install it or set 'synths.{synth}.plugin' in the "
            "config to the plugin's path"
        )
    return p


class VSTEngine(Engine):
    """Any VST plugin hosted by DawDreamer; parameters matched by name."""

    def __init__(self, spec: SynthSpec, settings: RenderSettings, plugin_path: str | None) -> None:
        super().__init__(spec, settings)
        import dawdreamer  # deferred: importing it is slow and only VST synths need it

        self._daw = dawdreamer
        self.plugin_path = str(check_plugin_path(plugin_path, spec.name))
        self._engine = dawdreamer.RenderEngine(settings.sample_rate, settings.block_size)
        proc = self._new_processor()
        reported = {d["name"]: d["index"] for d in proc.get_parameters_description()}
        missing = [p.name for p in spec.params if p.name not in reported]
        if missing:
            raise SpecError(
                f"{spec.source_path}: spec names parameter(s) that the plugin {self.plugin_path} lacks: "
                f"{missing}. The plugin reports: {sorted(reported)}"
            )
        self._plugin_index = np.array([reported[p.name] for p in spec.params])

    def _new_processor(self):
        with _quiet_stdout():
            try:
                return self._engine.make_plugin_processor("synth", self.plugin_path)
            except Exception as exc:  # DawDreamer raises a bare RuntimeError
                raise PluginNotFoundError(f"could not load plugin {self.plugin_path}: {exc}") from exc

    def parameter_text(self, name: str, value: float) -> str:
        """The plugin's display text for a parameter value (used to derive discrete values)."""
        proc = self._new_processor()
        idx = int(self._plugin_index[[p.name for p in self.spec.params].index(name)])
        proc.set_parameter(idx, float(value))
        return proc.get_parameter_text(idx)

    def render(self, plugin_vector: np.ndarray) -> np.ndarray:
        s = self.settings
        proc = self._new_processor()  # fresh instance: reverb tails and voices never leak
        for idx, value in zip(self._plugin_index, plugin_vector, strict=True):
            proc.set_parameter(int(idx), float(value))
        self._engine.load_graph([(proc, [])])
        proc.add_midi_note(s.note, s.velocity, 0.0, s.note_duration)
        self._engine.render(s.duration)
        audio = self._engine.get_audio()
        mono = audio.mean(axis=0) if audio.ndim == 2 else audio
        return np.ascontiguousarray(mono[: s.n_samples], dtype=np.float32)


def make_engine(spec: SynthSpec, settings: RenderSettings, plugin_path: str | None = None) -> Engine:
    """Build the engine a spec asks for."""
    if spec.engine == "dexed":
        return DexedEngine(spec, settings)
    if spec.engine == "vst":
        return VSTEngine(spec, settings, plugin_path or spec.plugin)
    raise SpecError(f"{spec.source_path}: unknown engine '{spec.engine}'; valid engines: ['dexed', 'vst']")


def rms(audio: np.ndarray) -> float:
    """Root-mean-square level of a mono signal (float64 accumulation for reproducibility)."""
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def check_audio(audio: np.ndarray, what: str, min_rms: float = 0.0) -> None:
    """Raise AudioError for non-finite or (when ``min_rms`` > 0) silent audio."""
    if not np.all(np.isfinite(audio)):
        bad = int(np.argmax(~np.isfinite(audio)))
        raise AudioError(f"{what}: audio holds NaN/inf samples (first at sample {bad})")
    if min_rms > 0 and rms(audio) < min_rms:
        raise AudioError(f"{what}: audio is silent (RMS {rms(audio):.3g} < {min_rms})")
