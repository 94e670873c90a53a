"""The ``vst`` engine: any VST2/VST3 plugin hosted by DawDreamer, parameters matched by name.

amSynth (Debian's ``amsynth``), Diva, TAL-NoiseMaker, ... Every render runs on a pristine plugin instance:
plugins keep voices, reverb buffers and parameter smoothers alive between renders, so re-using an instance
would make a preset's audio depend on what was rendered before it. Two ways to get one: fork a loaded,
untouched instance per render (:mod:`.forked`, the default on Linux) or create a new instance per render
(:class:`VSTEngine`, anywhere).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import numpy as np

from synthproxy.errors import PluginNotFoundError, SpecError
from synthproxy.synths.engines.base import Engine, RenderSettings
from synthproxy.synths.spec import SynthSpec

log = logging.getLogger("synthproxy.synths")


@contextlib.contextmanager
def quiet_native_output():
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


def plugin_parameters(spec: SynthSpec, plugin_path: str | None) -> dict[str, int]:
    """The plugin's parameter indices by name; a spec naming a parameter the plugin lacks raises SpecError."""
    import dawdreamer

    path = str(check_plugin_path(plugin_path or spec.plugin, spec.name))
    engine = dawdreamer.RenderEngine(44100, 128)  # must outlive the processor
    with quiet_native_output():
        try:
            proc = engine.make_plugin_processor("probe", path)
        except Exception as exc:  # DawDreamer raises a bare RuntimeError
            raise PluginNotFoundError(f"could not load plugin {path}: {exc}") from exc
    reported = {d["name"]: d["index"] for d in proc.get_parameters_description()}
    del proc, engine
    missing = [p.name for p in spec.params if p.name not in reported]
    if missing:
        raise SpecError(f"{spec.source_path}: spec names parameter(s) that the plugin {path} lacks: {missing}. "
                        f"The plugin reports: {sorted(reported)}")
    return reported


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
        with quiet_native_output():
            try:
                return self._engine.make_plugin_processor("synth", self.plugin_path)
            except Exception as exc:  # DawDreamer raises a bare RuntimeError
                raise PluginNotFoundError(f"could not load plugin {self.plugin_path}: {exc}") from exc

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


ISOLATION = os.environ.get("SYNTHPROXY_VST_ISOLATION", "auto")
"""How each render is isolated from the previous ones: ``fork`` (a pristine instance forked per render, Linux),
``fresh`` (a new plugin instance per render, in this process), ``auto`` (fork where supported, else fresh).
Both give the audio of a fresh instance; fork is ~5x faster and also isolates plugin-global state (amSynth's
noise generator). Set with the environment variable ``SYNTHPROXY_VST_ISOLATION``."""


def make_vst_engine(spec: SynthSpec, settings: RenderSettings, plugin_path: str | None) -> Engine:
    """The ``vst`` engine: forked renders where possible (see :data:`ISOLATION`), else a fresh instance each."""
    from synthproxy.synths.engines.forked import ForkingVSTEngine, ZygoteError, fork_supported

    path = str(check_plugin_path(plugin_path or spec.plugin, spec.name))
    mode = ISOLATION if ISOLATION in ("auto", "fork", "fresh") else "auto"
    if mode != "fresh" and fork_supported():
        try:
            return ForkingVSTEngine(spec, settings, path)  # type: ignore[return-value]
        except ZygoteError as exc:
            if "lacks" in str(exc):
                raise SpecError(str(exc)) from None
            if mode == "fork":
                raise
            log.warning("%s; rendering with a fresh plugin instance per preset instead", exc)
    return VSTEngine(spec, settings, path)
