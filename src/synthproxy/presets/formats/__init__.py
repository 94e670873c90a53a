"""Preset file formats behind a registry: ``dx7_sysex`` (Dexed / DX7) and ``amsynth_bank`` (amSynth).

Each format reads a folder of hand-crafted presets and writes preset vectors as a file the real synth loads
(:class:`~synthproxy.presets.formats.base.PresetFormat`). The config names a format
(``handcrafted.synths.<synth>.format``); :func:`get_format` finds it; :func:`register_format` adds one.
"""

from __future__ import annotations

from synthproxy.errors import ConfigError
from synthproxy.presets.formats.amsynth_bank import AmsynthBankFormat
from synthproxy.presets.formats.base import Collected, FileOutcome, PresetFormat
from synthproxy.presets.formats.dx7_sysex import DX7SysexFormat

_FORMATS: dict[str, PresetFormat] = {}


def register_format(fmt: PresetFormat) -> None:
    _FORMATS[fmt.name] = fmt


def available_formats() -> list[str]:
    return sorted(_FORMATS)


def get_format(name: str) -> PresetFormat:
    """The registered format ``name``; an unknown name lists the valid ones."""
    if name not in _FORMATS:
        raise ConfigError(f"unknown preset format '{name}'; valid formats: {available_formats()}")
    return _FORMATS[name]


register_format(DX7SysexFormat())
register_format(AmsynthBankFormat())

__all__ = ["Collected", "FileOutcome", "PresetFormat", "available_formats", "get_format", "register_format"]
