"""Real synthesizer engines behind one interface, found by name in a registry.

* ``dexed``: the DX7 engine of Dexed through ``dexed-py`` (:mod:`.dexed`).
* ``vst``: any VST2/VST3 plugin hosted by DawDreamer (:mod:`.vst`, forked renders :mod:`.forked`), e.g. amSynth.
* ``ddsp``: this project's differentiable synth of paper 2 (:mod:`.ddsp`, static variants raw_env and fx_env).

A spec's ``engine`` key names its engine; :func:`make_engine` builds it. A new engine registers itself
with :func:`register_engine` (a factory ``(spec, settings, plugin_path) -> Engine`` and whether it needs a
plugin file); nothing else in the package changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from synthproxy.errors import SpecError
from synthproxy.synths.engines.base import Engine, RenderSettings, check_audio, rms
from synthproxy.synths.engines.ddsp import DDSPEngine
from synthproxy.synths.engines.dexed import DEXED_PARAMETERS, DexedEngine, dexed_plugin_to_voice
from synthproxy.synths.engines.vst import (
    VSTEngine,
    check_plugin_path,
    make_vst_engine,
    plugin_parameters,
    quiet_native_output,
)
from synthproxy.synths.spec import SynthSpec

EngineFactory = Callable[[SynthSpec, RenderSettings, "str | None"], Engine]


@dataclass(frozen=True)
class EngineType:
    """A registered engine: how to build it, whether it renders a plugin file, and how to check a spec cheaply."""

    factory: EngineFactory
    needs_plugin: bool = False
    validate: Callable[[SynthSpec, str | None], None] | None = None


_ENGINES: dict[str, EngineType] = {}


def register_engine(name: str, factory: EngineFactory, needs_plugin: bool = False,
                    validate: Callable[[SynthSpec, str | None], None] | None = None) -> None:
    """Add an engine under ``name`` (the value of a spec's ``engine`` key); ``validate(spec, plugin)`` raises a
    :class:`SpecError` for a spec the engine cannot render (checked when the workflow starts)."""
    _ENGINES[name] = EngineType(factory, needs_plugin, validate)


def validate_engine(spec: SynthSpec, plugin_path: str | None = None) -> None:
    """Run the engine's spec check (parameter names against the engine/plugin) before anything is written."""
    check = engine_type(spec).validate
    if check is not None:
        check(spec, plugin_path)


def available_engines() -> list[str]:
    return sorted(_ENGINES)


def engine_type(spec: SynthSpec) -> EngineType:
    """The registered engine of ``spec``; an unknown name lists the valid ones."""
    if spec.engine not in _ENGINES:
        raise SpecError(
            f"{spec.source_path}: unknown engine '{spec.engine}'; valid engines: {available_engines()}"
        )
    return _ENGINES[spec.engine]


def plugin_path_for(spec: SynthSpec, plugin_path: str | None, synth: str | None = None) -> str | None:
    """The plugin file a synth renders (config path, else the spec's), checked to exist; None if none needed."""
    if not engine_type(spec).needs_plugin:
        return None
    return str(check_plugin_path(plugin_path or spec.plugin, synth or spec.name))


def make_engine(spec: SynthSpec, settings: RenderSettings, plugin_path: str | None = None) -> Engine:
    """Build the engine a spec asks for."""
    return engine_type(spec).factory(spec, settings, plugin_path or spec.plugin)


register_engine("dexed", lambda spec, settings, _plugin: DexedEngine(spec, settings),
                validate=lambda spec, _plugin: DexedEngine(spec, RenderSettings()) and None)
register_engine("vst", make_vst_engine, needs_plugin=True,
                validate=lambda spec, plugin: plugin_parameters(spec, plugin) and None)
register_engine("ddsp", lambda spec, settings, _plugin: DDSPEngine(spec, settings),
                validate=lambda spec, _plugin: DDSPEngine(spec, RenderSettings(sample_rate=16000)) and None)

__all__ = [
    "DEXED_PARAMETERS", "DDSPEngine", "Engine", "EngineType", "RenderSettings", "VSTEngine", "available_engines",
    "check_audio", "check_plugin_path", "dexed_plugin_to_voice", "engine_type", "make_engine",
    "plugin_path_for", "quiet_native_output", "register_engine", "rms", "validate_engine",
]
